"""A small question → passage set for measuring retrieval, written out here.

Forty short passages on distinct topics, each with one question that the
passage answers, mostly in other words than the question's own. Used by the
tests and the benchmark through :mod:`moc.learning.retrieval_eval`.

In :data:`_TEXT` each entry is a ``## id`` line, the question (one line, ``? …``)
and the passage (the lines after it).
"""

from __future__ import annotations

_TEXT = """
## honeybees
? How do bees communicate the location of food to the colony?
Honeybees tell their hive mates where flowers are by performing a waggle dance; the angle of the
run shows the direction relative to the sun and its length shows the distance.

## volcano
? What causes lava to come out of a mountain?
A volcano erupts when molten rock, called magma, rises through cracks in the crust because it is
lighter than the surrounding solid rock, and gas pressure pushes it out.

## photosynthesis
? How do green plants make sugar from light?
Plants use chlorophyll in their leaves to capture sunlight and turn carbon dioxide and water
into glucose, releasing oxygen as a by-product.

## tides
? Why does the sea level rise and fall twice a day?
Ocean tides are caused mainly by the gravitational pull of the Moon on the Earth's water, with
the Sun adding a smaller effect that makes spring and neap tides.

## sourdough
? What makes sourdough taste sour and rise without commercial yeast?
Sourdough bread is leavened with a starter of wild yeast and lactic acid bacteria, which ferment
the flour slowly and give the loaf its tangy flavour.

## chess
? What is the special move that lets the king and rook move together in a board game?
In chess, castling moves the king two squares toward a rook and places that rook on the other
side of the king; it is allowed only if neither piece has moved before.

## vaccines
? How does an immunization protect someone against a disease?
Vaccines train the immune system by exposing it to a harmless piece or weakened form of a
pathogen, so that memory cells can respond quickly to a real infection later.

## bitcoin
? How is the ledger of a cryptocurrency kept tamper-proof?
Bitcoin transactions are grouped into blocks that miners secure with proof of work, chaining
each block to the previous one by its hash so that history cannot be rewritten cheaply.

## penguins
? Which parent looks after the egg of the largest penguin species?
Emperor penguins breed during the Antarctic winter; the male keeps the single egg warm on his
feet under a fold of skin for about two months while the female feeds at sea.

## rainbows
? Why do we see bands of colour in the sky after rain?
A rainbow appears when sunlight enters raindrops, is refracted, reflected off the back of the
drop and refracted again, separating white light into its colours.

## pyramids
? For which Egyptian king was the biggest ancient tomb at Giza constructed?
The Great Pyramid of Giza was built for the pharaoh Khufu around 2560 BC from more than two
million limestone and granite blocks, and was the tallest structure in the world for millennia.

## coffee
? Why does a morning espresso make people feel more awake?
Coffee beans are the roasted seeds of the Coffea plant's cherries; roasting triggers Maillard
reactions that create the aromas, and caffeine acts as a stimulant by blocking adenosine
receptors.

## black_holes
? What is the boundary around a collapsed star beyond which light cannot get out?
A black hole is a region where gravity is so strong that nothing, not even light, can escape
once it crosses the event horizon; stellar black holes form when massive stars collapse.

## marathon
? Why is the long-distance running race such an odd number of kilometres?
The marathon distance of 42.195 kilometres was fixed at the 1908 London Olympics so that the
race could start at Windsor Castle and finish in front of the royal box.

## tcp
? How does the internet's main transport protocol make sure no data is lost?
TCP provides reliable delivery over IP by numbering bytes, acknowledging what arrives, and
retransmitting segments whose acknowledgements do not come back in time.

## jazz
? In which American city did the improvised music style with swing and blues roots begin?
Jazz grew up in New Orleans in the early twentieth century, mixing blues, ragtime and brass-band
music, with improvisation over chord changes at its heart.

## glaciers
? How do rivers of ice come into being and shape mountains?
Glaciers form where more snow falls each winter than melts in summer; the snow compacts into
ice, which flows slowly downhill under its own weight and carves U-shaped valleys.

## origami
? What is the craft of making paper birds by folding without scissors called?
Origami is the Japanese art of folding a single square sheet of paper into figures such as
cranes, usually without cutting or gluing it.

## hurricanes
? What fuels powerful tropical cyclones over the sea?
Hurricanes draw their energy from warm ocean water above about 26 degrees Celsius; evaporating
water releases heat as it condenses, feeding the storm's rotating winds.

## printing_press
? Who invented the machine with movable type that made books cheap in the fifteenth century?
Johannes Gutenberg's printing press of around 1440 combined movable metal type, oil-based ink
and a screw press, making books far cheaper and spreading literacy across Europe.

## octopus
? Which sea creature has several hearts and blue blood?
An octopus has three hearts and blue blood based on copper-carrying haemocyanin, and most of its
neurons are in its arms, which can taste and act on their own.

## compound_interest
? Why does money in a savings account grow faster over time?
Compound interest is interest earned on both the original principal and the interest already
added, so savings grow exponentially rather than in a straight line.

## mount_everest
? Who were the first climbers to stand on top of the highest mountain on Earth?
Mount Everest, on the border of Nepal and China, rises 8,849 metres above sea level; Tenzing
Norgay and Edmund Hillary first reached its summit in 1953.

## electric_cars
? How do battery-powered vehicles get back energy when they slow down?
Electric cars store energy in lithium-ion battery packs and drive the wheels with electric
motors, recovering some energy when braking through regenerative braking.

## dna
? Which molecule carries genetic information in its pairs of bases?
DNA is a double helix of two strands held together by base pairs, adenine with thymine and
cytosine with guanine, and its sequence encodes the instructions for building proteins.

## tea_ceremony
? What is the formal ritual for preparing whisked green tea in Japan?
The Japanese tea ceremony, chanoyu, is a ritual preparation of powdered green matcha tea,
whisked in a bowl and served with careful, prescribed movements.

## recycling_aluminium
? How much energy does reusing drink cans save compared with producing fresh metal?
Recycling aluminium cans saves about 95 percent of the energy needed to make new metal from
bauxite ore, and the metal can be recycled again and again without losing quality.

## sleep
? In which stage of the night's rest do people have their most vivid dreams?
During sleep the brain cycles through stages; rapid eye movement sleep, when most vivid dreams
occur, returns roughly every ninety minutes through the night.

## roman_aqueducts
? How did the ancient Romans bring water to their towns?
Roman aqueducts carried water into cities over long distances using a very slight, steady
downhill gradient, crossing valleys on arched stone bridges.

## lightning
? What produces the loud rumble during a storm?
Lightning is a giant electrical discharge between charged regions of a thundercloud or between
the cloud and the ground; the heated air expands explosively and makes thunder.

## violin
? What is put on the hair of a bow so it can make the strings of a fiddle sound?
A violin has four strings tuned in fifths, G, D, A and E, and is played with a bow strung with
horsehair that is rubbed with rosin to grip the strings.

## monarch_butterflies
? Where do orange migrating butterflies spend the winter?
Monarch butterflies migrate up to 4,000 kilometres from North America to overwinter in the
mountain forests of central Mexico, a journey no single butterfly completes both ways.

## solar_panels
? How do rooftop panels turn sunshine into electricity for a house?
Solar panels are made of photovoltaic cells, usually silicon, in which absorbed light frees
electrons and creates a direct current that an inverter turns into alternating current.

## cheese
? How is milk turned into a hard dairy product?
Cheese is made by curdling milk with rennet or acid, separating the solid curds from the liquid
whey, then salting, pressing and often ageing the curds.

## great_wall
? Which dynasty built most of the long defensive barrier that still stands in northern China?
The Great Wall of China is a series of fortifications built over centuries, most of the
surviving sections by the Ming dynasty, to defend against raids from the northern steppe.

## antibiotics
? How was the first antibiotic found by accident?
Alexander Fleming discovered penicillin in 1928 when he noticed that a mould, Penicillium, had
killed the bacteria growing around it on a culture plate.

## hash_tables
? Which data structure finds a value by its key in constant time on average?
A hash table stores key-value pairs in an array, using a hash function to turn each key into an
index, so lookups take constant time on average; collisions are handled by chaining or probing.

## olympics
? Who brought back the international sports festival in the late nineteenth century?
The ancient Olympic Games were held every four years at Olympia in honour of Zeus from 776 BC;
the modern Games were revived by Pierre de Coubertin in 1896 in Athens.

## camels
? What is actually inside the hump of a desert animal?
Camels store fat, not water, in their humps; they survive in deserts by losing little water,
tolerating dehydration and drinking up to a hundred litres at once.

## telescope
? Who first saw the large satellites of Jupiter through a spyglass?
Galileo Galilei improved the telescope in 1609 and used it to discover the four largest moons of
Jupiter, the phases of Venus and the craters of the Moon.
"""


def _parse(text: str) -> tuple[tuple[str, str, str], ...]:
    entries = []
    for block in text.strip().split("## ")[1:]:
        pid, question, *passage = block.strip().splitlines()
        if not question.startswith("? "):
            raise ValueError(f"retrieval set entry {pid}: its second line must be the question")
        entries.append((pid, " ".join(passage), question.removeprefix("? ")))
    return tuple(entries)


# (passage id, passage, question)
PASSAGES: tuple[tuple[str, str, str], ...] = _parse(_TEXT)
