"""``moc keys``' pieces without a daemon: durations, limits and times as the
table shows them, a table that fits 80 columns at its widest, and the key
option refusing what no header can carry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from moc import wire
from moc.cli.common import fail
from moc.cli.keys import keys_table, limits_text, parse_duration, relative
from moc.cli.main import app
from moc.errors import Unauthenticated


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("12h", 43_200), ("30d", 2_592_000), ("1.5h", 5400),
     ("2w", 1_209_600)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--grace") == seconds


def test_a_bad_duration_fails_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as info:
        parse_duration("soon", "--expires-in")
    assert info.value.exit_code == 1
    assert "--expires-in" in capsys.readouterr().err


def test_limits_and_times_as_shown() -> None:
    limits: wire.KeyLimits = {
        "requests_per_minute": 100,
        "tokens_per_minute": 20_000,
        "concurrent_requests": 4,
        "device_byte_seconds_per_day": int(2.5 * 1024**3 * 3600),
    }
    assert limits_text(limits) == "100 req/min, 20k tok/min, 4 at once, 2.5 GiB-h/day"
    assert limits_text(limits, short=True) == "100 rpm, 20k tpm, 4 conc, 2.5 GiB-h"
    assert limits_text({}) == "none"
    assert limits_text({"tokens_per_minute": 12_345}, short=True) == "12345 tpm"
    now = datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert relative("2025-01-31T12:00:00.000Z", now=now) == "in 30d"
    assert relative("2025-01-01T11:55:00.000Z", now=now) == "5m ago"
    assert relative(None, "never", now=now) == "never"


def _key(**over: Any) -> wire.ApiKey:
    key: wire.ApiKey = {
        "id": "0123456789ab",
        "name": "n",
        "role": "user",
        "models": None,
        "limits": {},
        "created_at": "2025-01-01T00:00:00.000Z",
        "expires_at": None,
        "revoked_at": None,
        "last_used_at": None,
        "state": "live",
    }
    return {**key, **over}  # type: ignore[typeddict-item]


def test_the_key_table_fits_80_columns_and_never_cuts_a_role_or_a_state() -> None:
    widest = _key(
        name="a-very-long-name-for-a-key",
        role="operator",
        models=["llama-3.1-70b-*", "qwen*"],
        limits={"requests_per_minute": 10_000, "tokens_per_minute": 1_000_000},
        state="revoked",
        last_used_at="2020-01-01T00:00:00.000Z",
        expires_at="2020-06-01T00:00:00.000Z",
    )
    console = Console(width=80, record=True)
    console.print(keys_table([widest, _key(id="ba9876543210")]))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    row = lines[1].split()
    assert row[0] == "0123456789ab"
    assert "operator" in row
    assert "revoked" in row
    assert lines[2].split()[0] == "ba9876543210"


def test_a_401_says_where_the_key_comes_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(typer.Exit):
        fail(Unauthenticated("credentials are needed"))
    shown = capsys.readouterr().err
    assert shown.count("\n") == 1
    assert "[unauthenticated] credentials are needed; set MOC_API_KEY or pass --key" in shown
    monkeypatch.setenv("MOC_API_KEY", "moc_wrong")
    with pytest.raises(typer.Exit):
        fail(Unauthenticated("the API key is malformed or unknown"))
    shown = capsys.readouterr().err
    assert "unknown; the key sent is moc --key's or MOC_API_KEY's" in shown


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_a_key_no_header_can_carry_is_one_line_not_a_traceback(where: str) -> None:
    bad = "two words-0123456789"
    args = ["--key", bad, "whoami"] if where == "flag" else ["whoami"]
    env = {"COLUMNS": "80"} if where == "flag" else {"COLUMNS": "80", "MOC_API_KEY": bad}
    result = CliRunner().invoke(app, args, prog_name="moc", env=env)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "printable ASCII" in result.output
    assert "0123456789" not in result.output
