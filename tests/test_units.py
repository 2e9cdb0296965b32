import pytest

from moc.units import GIB, MIB, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8GiB", 8 * GIB),
        ("512MB", 512_000_000),
        ("1.5 GiB", int(1.5 * GIB)),
        ("100", 100),
        ("64mib", 64 * MIB),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["8G", "lots", "-1GiB", "", "1e9", "GiB"])
def test_parse_size_rejects_with_the_accepted_units(text: str) -> None:
    with pytest.raises(ValueError, match="GiB"):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(8 * GIB) == "8.0 GiB"
    assert format_size(512) == "512 B"
    assert format_size(-3 * MIB) == "-3.0 MiB"
