"""``moc keys create|list|show|revoke|rotate``, ``moc whoami`` and ``moc audit``:
API keys, the caller, and the audit log (docs/cli.md, "API keys").

The key these commands (and every other) send is ``moc --key`` or
``MOC_API_KEY``; making, listing and revoking keys and reading the audit log
take an admin key. A new or rotated secret is printed alone on stdout (so that
``KEY=$(moc keys create ci --role user)`` keeps it), what it is on stderr.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from moc import wire
from moc.cli.common import JsonOpt, UrlOpt, fail
from moc.cli.render import Column, emit_json, err, out, table
from moc.errors import InvalidRequest, MocError
from moc.sdk.client import Client
from moc.units import GIB

keys_app = typer.Typer(
    help="API keys: make, list, revoke and rotate them (an admin key).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

ROLES = "admin, operator, user or viewer"
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*")
_SCALE = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0, None: 1.0}


def parse_duration(text: str, flag: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m``, ``12h``, ``30d`` or ``2w``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        fail(InvalidRequest(flag, f"expected a duration such as 90m, 12h or 30d, got {text!r}"))
    return float(match.group(1)) * _SCALE[match.group(2)]


def _time_or_ago(text: str | None, flag: str) -> str | None:
    """An ISO 8601 time as given, or a duration as that long before now."""
    if text is None or _DURATION.fullmatch(text) is None:
        return text
    return (datetime.now(UTC) - timedelta(seconds=parse_duration(text, flag))).isoformat()


def _when(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def relative(iso: str | None, empty: str = "-", now: datetime | None = None) -> str:
    """``in 29d`` or ``5m ago``; ``empty`` for no time."""
    if iso is None:
        return empty
    delta = (_when(iso) - (now or datetime.now(UTC))).total_seconds()
    return f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} ago"


def _count(n: int) -> str:
    for suffix, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size and n % (size // 10) == 0:
            return f"{n / size:g}{suffix}"
    return str(n)


def limits_text(limits: wire.KeyLimits, short: bool = False) -> str:
    """A key's limits: ``100 req/min, 10k tok/min, 4 at once, 2 GiB-h/day``;
    ``short``, as the flags of ``moc keys create`` name them: ``100 rpm, 10k tpm,
    4 conc, 2 GiB-h``."""
    parts = []
    if (rpm := limits.get("requests_per_minute")) is not None:
        parts.append(f"{_count(rpm)} {'rpm' if short else 'req/min'}")
    if (tpm := limits.get("tokens_per_minute")) is not None:
        parts.append(f"{_count(tpm)} {'tpm' if short else 'tok/min'}")
    if (conc := limits.get("concurrent_requests")) is not None:
        parts.append(f"{conc} {'conc' if short else 'at once'}")
    if (held := limits.get("device_byte_seconds_per_day")) is not None:
        parts.append(f"{held / GIB / 3600:.4g} GiB-h{'' if short else '/day'}")
    return ", ".join(parts) or ("-" if short else "none")


def models_text(models: list[str] | None) -> str:
    return "*" if models is None else ",".join(models) or "(none)"


def _state(k: wire.ApiKey) -> Text:
    return Text(k["state"], style="" if k["state"] == "live" else "red")


# At most 80 columns with every cell at its widest (12 for the id, 7 for
# "revoked", 2 between columns): a long name, glob or set of limits is cut
# short, never a role or a state; `moc keys show` has them in full.
KEY_COLUMNS = (
    Column("ID", lambda k: k["id"]),
    Column("NAME", lambda k: k["name"], max_width=9),
    Column("ROLE", lambda k: k["role"], max_width=8),
    Column("MODELS", lambda k: models_text(k["models"]), max_width=7),
    Column("LIMITS", lambda k: limits_text(k["limits"], short=True), max_width=9),
    Column("STATE", _state, max_width=7),
    Column("USED", lambda k: relative(k["last_used_at"]), numeric=True, max_width=7),
    Column("EXPIRES", lambda k: relative(k["expires_at"], "never"), numeric=True, max_width=7),
)
AUDIT_COLUMNS = (
    Column("AT (UTC)", lambda e: e["at"][:19].replace("T", " ")),
    Column("KEY", lambda e: e["key_id"] or "-"),
    Column("ACTION", lambda e: e["action"]),
    Column("OBJECT", lambda e: e["object"], max_width=24),
    Column("RESULT", lambda e: Text(e["result"], style="" if e["result"] == "ok" else "red")),
)


def keys_table(found: Sequence[wire.ApiKey]) -> Table:
    return table(KEY_COLUMNS, found)


def _models_in_full(models: list[str] | None) -> str:
    return "every model" if models is None else ", ".join(models) or "none"


def key_detail(k: wire.ApiKey) -> str:
    """One key, every field in full."""
    expires = (
        "never" if k["expires_at"] is None else f"{k['expires_at']} ({relative(k['expires_at'])})"
    )
    lines = [
        f"{k['id']} ({k['name']}): {k['role']}, {k['state']}",
        f"  models     {_models_in_full(k['models'])}",
        f"  limits     {limits_text(k['limits'])}",
        f"  created    {k['created_at']}",
        f"  expires    {expires}",
        f"  last used  {relative(k['last_used_at'], 'not since moc started')}",
    ]
    if k["revoked_at"] is not None:
        lines.append(f"  revoked    {k['revoked_at']}")
    return "\n".join(lines)


def _note(text: str) -> None:
    err.print(text, highlight=False, markup=False, soft_wrap=True)


def _secret(made: wire.ApiKeyCreated, verb: str, as_json: bool) -> None:
    """A new secret: alone on stdout (or in the JSON), what it is on stderr."""
    if as_json:
        emit_json(made)
    else:
        _note(
            f"key {made['id']} ({made['name']}) {verb}: {made['role']}, models "
            f"{models_text(made['models'])}, limits {limits_text(made['limits'])}, "
            f"expires {made['expires_at'] or 'never'}"
        )
        if made["previous_valid_until"] is not None:
            _note(f"the old secret works until {made['previous_valid_until']}")
    _note("this is the only time moc shows the secret (it keeps only a hash): store it now")
    if not as_json:
        out.print(made["key"], highlight=False, markup=False, soft_wrap=True)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for (1 to 128 characters).")],
    role: Annotated[str, typer.Option("--role", help=f"{ROLES}.")],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="A glob of models it may use; repeat. Default: every one."),
    ] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests a minute.")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", help="Tokens a minute.")] = None,
    concurrent: Annotated[
        int | None, typer.Option("--concurrent", help="Requests in flight at once.")
    ] = None,
    device_gib_hours: Annotated[
        float | None,
        typer.Option("--device-gib-hours", help="GiB-hours of device memory a UTC day."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="When it stops working (ISO 8601).")
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Or how soon: 90m, 12h, 30d.")
    ] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an API key; its secret is printed this once."""
    if expires is not None and expires_in is not None:
        fail(InvalidRequest("--expires/--expires-in", "give one"))
    if expires_in is not None:
        ahead = timedelta(seconds=parse_duration(expires_in, "--expires-in"))
        expires = (datetime.now(UTC) + ahead).isoformat()
    limits: wire.KeyLimits = {}
    if rpm is not None:
        limits["requests_per_minute"] = rpm
    if tpm is not None:
        limits["tokens_per_minute"] = tpm
    if concurrent is not None:
        limits["concurrent_requests"] = concurrent
    if device_gib_hours is not None:
        limits["device_byte_seconds_per_day"] = round(device_gib_hours * GIB * 3600)
    try:
        made = Client(url).create_key(
            name, role=role, models=model, limits=limits or None, expires_at=expires
        )
    except MocError as exc:
        fail(exc)
    _secret(made, "made", as_json)


@keys_app.command("list")
def keys_list(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """List the API keys (never their secrets)."""
    try:
        found = Client(url).keys()
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    elif not found:
        out.print("no API keys")
    else:
        out.print(keys_table(found))


KeyIdArg = Annotated[str, typer.Argument(help="A key's id, from `moc keys list`.")]


@keys_app.command("show")
def keys_show(key_id: KeyIdArg, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show one API key, every field in full."""
    try:
        found = Client(url).key(key_id)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    else:
        out.print(key_detail(found), highlight=False, markup=False, soft_wrap=True)


@keys_app.command("revoke")
def keys_revoke(key_id: KeyIdArg, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Refuse a key from now on."""
    try:
        done = Client(url).revoke_key(key_id)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(done)
    else:
        key = done["key"]
        out.print(f"key {key['id']} ({key['name']}) revoked", highlight=False, markup=False)


@keys_app.command("rotate")
def keys_rotate(
    key_id: KeyIdArg,
    grace: Annotated[
        str, typer.Option("--grace", help="How long the old secret still works: 10m, 1h.")
    ] = "0",
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a key a new secret; it is printed this once."""
    grace_s = parse_duration(grace, "--grace")
    try:
        made = Client(url).rotate_key(key_id, grace_s=grace_s)
    except MocError as exc:
        fail(exc)
    _secret(made, "rotated", as_json)


def whoami(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show who the key sent (--key) is: its role, models and limits."""
    try:
        me = Client(url).whoami()
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(me)
        return
    if not me["auth"]:
        out.print("authentication is off: every caller may do everything", highlight=False)
        return
    lines = [
        f"{me['id']} ({me['name']}): {me['role']}",
        f"  models  {_models_in_full(me['models'])}",
        f"  limits  {limits_text(me['limits'])}",
    ]
    out.print("\n".join(lines), highlight=False, markup=False, soft_wrap=True)


def audit(
    since: Annotated[
        str | None, typer.Option("--since", help="ISO 8601, or how long ago: 1h, 7d.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601, or how long ago.")] = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="Who did it.")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="key.create, model.load, ...")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1..1000).")] = 100,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The audit log, newest first: who changed what (an admin key)."""
    try:
        found = Client(url).audit(
            since=_time_or_ago(since, "--since"),
            until=_time_or_ago(until, "--until"),
            key_id=key_id,
            action=action,
            limit=limit,
        )
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    elif not found:
        out.print("no audit events")
    else:
        out.print(table(AUDIT_COLUMNS, found))
