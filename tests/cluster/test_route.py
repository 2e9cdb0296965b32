"""Where a request for a model goes, as plain decisions over node snapshots."""

from __future__ import annotations

from moc.cluster.model import NodeDevice, NodeInfo, NodeModel
from moc.cluster.route import LOCAL, Forward, Place, able_to_learn, best_fit, route

GIB = 1 << 30


def node(name: str, free: int, *models: tuple[str, str, int, bool], queued: int = 0) -> NodeInfo:
    return NodeInfo(
        name=name,
        url=f"http://{name}",
        at=0.0,
        devices=(NodeDevice("gpu0", "gpu", 80 * GIB, 80 * GIB - free, free),),
        models=tuple(NodeModel(*m) for m in models),
        queued=queued,
    )


def test_a_model_ready_here_is_served_here() -> None:
    here = node("n1", GIB, ("m", "ready", GIB, False))
    other = node("n2", GIB, ("m", "ready", GIB, False))
    assert route("m", here, [other]) is LOCAL


def test_else_the_least_loaded_holder_then_a_loader() -> None:
    here = node("n1", 10 * GIB, ("m", "stopped", GIB, False))
    busy = node("n2", GIB, ("m", "ready", GIB, False), queued=5)
    idle = node("n3", GIB, ("m", "ready", GIB, False), queued=1)
    assert route("m", here, [busy, idle]) == Forward(idle)
    loading = node("n4", GIB, ("m", "starting", GIB, False))
    assert route("m", here, [loading]) == Forward(loading)
    here_loading = node("n1", GIB, ("m", "starting", GIB, False))
    assert route("m", here_loading, [loading]) is LOCAL


def test_a_cold_model_is_placed_where_it_fits_with_the_shortest_queue() -> None:
    small = node("n1", 2 * GIB, ("m", "stopped", 8 * GIB, False))
    roomy = node("n2", 40 * GIB, ("m", "stopped", 8 * GIB, False), queued=3)
    roomier = node("n3", 60 * GIB, ("m", "stopped", 8 * GIB, False), queued=3)
    quiet = node("n4", 9 * GIB, ("m", "stopped", 8 * GIB, False), queued=0)
    assert route("m", small, [roomy, roomier]) == Place(roomier)  # same queue: most free
    assert route("m", small, [roomy, quiet]) == Place(quiet)  # shortest queue first
    # idle models count as room: they would be evicted
    crowded = node("n5", GIB, ("m", "stopped", 8 * GIB, False), ("idle", "ready", 9 * GIB, True))
    assert best_fit("m", [small, crowded]) == crowded
    busy = node("n6", GIB, ("m", "stopped", 8 * GIB, False), ("busy", "ready", 9 * GIB, False))
    assert best_fit("m", [small, busy]) is None


def test_a_model_no_node_knows_or_can_fit_is_answered_here() -> None:
    here = node("n1", GIB)
    assert route("unknown", here, [node("n2", GIB)]) is LOCAL
    too_big = node("n2", GIB, ("m", "stopped", 100 * GIB, False))
    assert route("m", here, [too_big]) is LOCAL


def test_a_learning_job_goes_to_a_node_that_has_what_it_names_the_largest_first() -> None:
    def learner(name: str, capacity_gib: int, *, bases: tuple[str, ...] = (),
                datasets: tuple[str, ...] = (), model: str | None = None) -> NodeInfo:  # fmt: skip
        return NodeInfo(
            name=name,
            url=f"http://{name}",
            at=0.0,
            devices=(NodeDevice("gpu0", "gpu", capacity_gib * GIB, 0, capacity_gib * GIB),),
            models=() if model is None else (NodeModel(model, "stopped", GIB, False),),
            bases=bases,
            datasets=datasets,
        )

    small = learner("n1", 8, bases=("llama",), datasets=("qa", "ds_1"))
    large = learner("n2", 80, bases=("llama",), datasets=("qa",))
    other_data = learner("n3", 160, bases=("llama",), datasets=("docs",), model="m")
    nodes = [small, large, other_data]
    assert able_to_learn("llama", None, "qa", nodes) == large
    assert able_to_learn("llama", None, "ds_1", nodes) == small
    assert able_to_learn(None, "m", None, nodes) == other_data
    assert able_to_learn("llama", None, None, nodes) == other_data
    assert able_to_learn("mistral", None, "qa", nodes) is None
    assert able_to_learn(None, None, "nowhere", nodes) is None
