"""``moc artifact list|show|add|rm|verify|export|import``, ``moc adapters`` and
``moc signing-keys generate|list|export``: the signed artifact registry."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from moc import wire
from moc.cli.common import JsonOpt, UrlOpt, fail
from moc.cli.render import Column, emit_json, err, out, table
from moc.errors import InvalidRequest, MocError
from moc.sdk.client import Client
from moc.units import format_size

artifact_app = typer.Typer(
    help="Signed artifacts: list, show, add, remove, verify, move.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
signing_keys_app = typer.Typer(
    help="Artifact signing keys: make, list, export their public halves.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RefArg = Annotated[str, typer.Argument(help="A name (its latest version) or name@sha256:….")]
VersionOpt = Annotated[int | None, typer.Option("--version", help="One version of the name.")]


def _signer(signed_by: str | None) -> str:
    return "-" if signed_by is None else signed_by[:12]


ARTIFACT_COLUMNS = (
    Column("ARTIFACT", lambda a: a["name"]),
    Column("VER", lambda a: str(a["version"]), numeric=True),
    Column("KIND", lambda a: a["kind"]),
    Column("BASE", lambda a: a["base"] or "-", max_width=14),
    Column("SIZE", lambda a: format_size(a["size_bytes"]), numeric=True),
    Column("SIGNED BY", lambda a: _signer(a["signed_by"])),
)
ADAPTER_COLUMNS = (
    Column("ADAPTER", lambda a: a["name"]),
    Column("BASE", lambda a: a["base"] or "-", max_width=14),
    Column("VER", lambda a: str(a["version"]), numeric=True),
    Column("SIZE", lambda a: format_size(a["size_bytes"]), numeric=True),
    Column("LOSS", lambda a: _metric(a["metrics"], "final_loss"), numeric=True),
    Column("SIGNED BY", lambda a: _signer(a["signed_by"])),
)
SIGNING_KEY_COLUMNS = (
    Column("KEY", lambda k: k["name"] + (" *" if k["signs"] else "")),
    Column("TYPE", lambda k: k["type"]),
    Column("ID", lambda k: k["id"][:16]),
    Column("CREATED", lambda k: k["created_at"][:16].replace("T", " ")),
)


def _metric(metrics: dict[str, float], name: str) -> str:
    return f"{metrics[name]:.4g}" if name in metrics else "-"


def artifacts_table(found: Sequence[wire.Artifact]) -> Table:
    return table(ARTIFACT_COLUMNS, found)


def artifact_detail(a: wire.ArtifactDetail) -> str:
    lines = [
        f"{a['name']} version {a['version']}: {a['kind']}",
        f"  digest     {a['digest']}",
        f"  size       {format_size(a['size_bytes'])} in {len(a['files'])} file(s)",
        f"  signed by  {a['signed_by'] or 'nobody'}",
    ]
    if a["base"]:
        arch = f" ({a['architecture']})" if a["architecture"] else ""
        lines.append(f"  base       {a['base']}{arch}")
    if a["producer"]:
        lines.append(f"  made by    learning job {a['producer']['job']}")
    for name, value in sorted(a["metrics"].items()):
        lines.append(f"  {name + ' ':<11}{value:g}")
    lines += [f"  file       {f['path']} ({format_size(f['size_bytes'])})" for f in a["files"]]
    return "\n".join(lines)


def _print(text: str) -> None:
    out.print(text, highlight=False, markup=False, soft_wrap=True)


def _emit(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        emit_json(data)
    else:
        _print(text)


@artifact_app.command("list")
def artifact_list(
    kind: Annotated[
        str | None, typer.Option(help="model, adapter, quantized, index, dataset")
    ] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List every artifact version."""
    try:
        found = Client(url).artifacts(kind=kind)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    elif not found:
        out.print("no artifacts")
    else:
        out.print(artifacts_table(found))


@artifact_app.command("show")
def artifact_show(
    ref: RefArg, version: VersionOpt = None, url: UrlOpt = None, as_json: JsonOpt = False
) -> None:
    """Show one artifact version with its files."""
    try:
        found = Client(url).artifact(ref, version=version)
    except MocError as exc:
        fail(exc)
    _emit(found, as_json, artifact_detail(found))


@artifact_app.command("add")
def artifact_add(
    name: Annotated[str, typer.Argument(help="1 to 128 letters, digits, _ . -")],
    path: Annotated[Path, typer.Argument(help="A folder or a file.", exists=True)],
    kind: Annotated[str, typer.Option(help="model, adapter, quantized, index or dataset")],
    base: Annotated[str | None, typer.Option(help="The model it belongs to.")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a folder's files (or a file) as the next version of an artifact.

    A model.sig in the folder (as `model_signing sign key` writes it) is their
    signature and must verify against moc's trust policy; otherwise moc signs.
    """
    try:
        with err.status(f"uploading {path}…"):
            added = Client(url).add_artifact(name, path, kind=kind, base=base)
    except MocError as exc:
        fail(exc)
    except ValueError as exc:  # a link in the folder
        fail(InvalidRequest("path", str(exc)))
    _emit(added, as_json, f"{added['name']} version {added['version']}: {added['digest']}")


@artifact_app.command("rm")
def artifact_rm(
    ref: RefArg, version: VersionOpt = None, url: UrlOpt = None, as_json: JsonOpt = False
) -> None:
    """Remove one version (--version or name@sha256:…), or every version of a name."""
    try:
        removed = Client(url).remove_artifact(ref, version=version)
    except MocError as exc:
        fail(exc)
    text = "\n".join(f"{a['name']} version {a['version']}: removed" for a in removed)
    _emit(removed, as_json, text)


@artifact_app.command("verify")
def artifact_verify(
    ref: RefArg, version: VersionOpt = None, url: UrlOpt = None, as_json: JsonOpt = False
) -> None:
    """Check every file and the signature against the trust policy."""
    try:
        with err.status(f"verifying {ref}…"):
            checked = Client(url).verify_artifact(ref, version=version)
    except MocError as exc:
        fail(exc)
    a = checked["artifact"]
    by = checked["signed_by"]
    text = f"{a['name']} version {a['version']}: verified, " + (
        f"signed by {by[:12]}" if by else "unsigned"
    )
    _emit(checked, as_json, text)


@artifact_app.command("export")
def artifact_export(
    ref: RefArg,
    out_path: Annotated[Path, typer.Argument(help="The bundle (tar) to write.")],
    version: VersionOpt = None,
    url: UrlOpt = None,
) -> None:
    """Write an artifact as one bundle: manifest.json, model.sig and its files."""
    try:
        with err.status(f"exporting {ref}…"):
            exported = Client(url).export_artifact(ref, out_path, version=version)
    except MocError as exc:
        fail(exc)
    except OSError as exc:
        fail(InvalidRequest("out", f"cannot write {out_path}: {exc.strerror}"))
    _print(f"{exported['name']}@{exported['digest']} -> {out_path}")


@artifact_app.command("import")
def artifact_import(
    bundle: Annotated[Path, typer.Argument(help="A bundle another moc exported.", exists=True)],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a bundle; it is verified before anything is stored."""
    try:
        with err.status(f"importing {bundle}…"):
            added = Client(url).import_artifact(bundle)
    except MocError as exc:
        fail(exc)
    _emit(added, as_json, f"{added['name']} version {added['version']}: {added['digest']}")


def adapters(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """The adapter catalog: each adapter's base, size and signer."""
    try:
        found = Client(url).adapters()
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    elif not found:
        out.print("no adapters")
    else:
        out.print(table(ADAPTER_COLUMNS, found))


@signing_keys_app.command("generate")
def signing_keys_generate(
    name: Annotated[str, typer.Argument(help="1 to 64 letters, digits, _ . -")],
    type: Annotated[str | None, typer.Option(help="ed25519 (default) or ecdsa-p256")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a signing key.

    It is kept in moc's data directory; its private half never leaves it.
    """
    try:
        made = Client(url).create_signing_key(name, type=type)
    except MocError as exc:
        fail(exc)
    _emit(made, as_json, f"{made['name']}: {made['type']} key {made['id']}")


@signing_keys_app.command("list")
def signing_keys_list(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """List moc's signing keys (* marks the one it signs with)."""
    try:
        found = Client(url).signing_keys()
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    else:
        out.print(table(SIGNING_KEY_COLUMNS, found))


@signing_keys_app.command("export")
def signing_keys_export(
    name: Annotated[str, typer.Argument(help="A key from `moc signing-keys list`.")],
    url: UrlOpt = None,
) -> None:
    """Print a key's public half (PEM).

    For another moc's artifacts.trusted_keys.
    """
    try:
        found = Client(url).signing_key(name)
    except MocError as exc:
        fail(exc)
    out.print(found["public_pem"], end="", highlight=False, markup=False)
