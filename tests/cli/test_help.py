"""``moc --help`` and friends, as a new user reads them at 80 columns."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from moc import __version__
from moc.cli.main import app

COMMANDS = [
    [],
    ["serve"],
    ["devices"],
    ["health"],
    ["models"],
    ["ps"],
    ["load"],
    ["unload"],
    ["submit"],
    ["lease"],
    ["lease", "acquire"],
    ["lease", "list"],
    ["lease", "renew"],
    ["lease", "release"],
    ["dataset"],
    ["dataset", "add"],
    ["dataset", "list"],
    ["dataset", "show"],
    ["dataset", "rm"],
    ["goals"],
    ["goals", "add"],
    ["goals", "set"],
    ["goals", "rm"],
    ["signing-keys"],
    ["signing-keys", "generate"],
    ["signing-keys", "list"],
    ["signing-keys", "export"],
    ["keys"],
    ["keys", "create"],
    ["keys", "list"],
    ["keys", "show"],
    ["keys", "revoke"],
    ["keys", "rotate"],
    ["whoami"],
    ["audit"],
]


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), prog_name="moc", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_version_flag_and_command() -> None:
    assert invoke("--version") == f"{__version__}\n"
    assert invoke("version") == f"{__version__}\n"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "moc")
def test_help_fits_80_columns_and_flags_take_no_value(command: list[str]) -> None:
    text = invoke(*command, "--help")
    assert text.startswith(f"Usage: moc {' '.join(command)}".rstrip())
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "<bool>" not in text
    listing = text.partition("Commands:")[2]
    assert "..." not in listing  # no command's summary cut short


def test_help_shows_environment_variables_as_written() -> None:
    text = invoke("serve", "--help")
    assert "--data-dir <path>    Where state lives.  [env var: MOC_DATA_DIR]" in text
    assert "-c, --config <path>  YAML config file (optional).  [env var: MOC_CONFIG]" in text
    assert "  --json" in invoke("models", "--help")


def test_help_names_the_key_variable_and_never_shows_its_value() -> None:
    result = CliRunner().invoke(
        app, ["--help"], prog_name="moc", env={"COLUMNS": "80", "MOC_API_KEY": "sekrit-value-1234"}
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "--key KEY" in text
    assert "as a bearer token. [env var: MOC_API_KEY]" in text
    assert "sekrit" not in text
