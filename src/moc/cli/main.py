"""``moc``: run the daemon, and talk to a running one."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from moc.cli.artifacts import adapters, artifact_app, signing_keys_app
from moc.cli.common import JsonOpt, UrlOpt, fail, show
from moc.cli.datasets import dataset_app
from moc.cli.goals import goals_app
from moc.cli.keys import audit, keys_app, whoami
from moc.cli.learning import register as register_learning
from moc.cli.render import (
    cluster_ps_table,
    cluster_table,
    devices_table,
    emit_json,
    err,
    leases_table,
    model_detail,
    models_table,
    out,
    ps_table,
)
from moc.cli.submit import follow, plans, show_failures, submit_all, summary
from moc.errors import ConfigError, InvalidRequest, MocError
from moc.sdk.client import Client
from moc.sdk.wire import API_KEY_ENV, auth_headers
from moc.units import format_size, parse_size
from moc.version import __version__

# Help is plain click text, not rich panels: rich markup would eat a help text's
# "[...]", and its panels give flags a "<bool>" value they do not take.
app = typer.Typer(
    help="moc, the ModelOps Coordinator: owns the memory of this host's devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
lease_app = typer.Typer(
    help="Take, list, renew and release memory leases.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(lease_app, name="lease")
app.add_typer(dataset_app, name="dataset")
app.add_typer(goals_app, name="goals")
app.add_typer(artifact_app, name="artifact")
app.add_typer(signing_keys_app, name="signing-keys")
app.add_typer(keys_app, name="keys")


def _client(url: str | None) -> Client:
    return Client(url)


def _print_version(value: bool) -> None:
    if value:
        out.print(__version__, highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar=API_KEY_ENV,
            metavar="KEY",
            help="The API key to send with every request, as a bearer token.",
        ),
    ] = None,
) -> None:
    """moc, the ModelOps Coordinator: owns the memory of this host's devices."""
    if key is not None:
        try:
            auth_headers(key)
        except ValueError as exc:
            fail(InvalidRequest("--key", str(exc)))
        # Every command's Client reads the key from the environment, as a
        # program using the SDK would.
        os.environ[API_KEY_ENV] = key


@app.command()
def version() -> None:
    """Print moc's version."""
    out.print(__version__, highlight=False)


@app.command()
def serve(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", envvar="MOC_CONFIG", help="YAML config file (optional)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="MOC_DATA_DIR", help="Where state lives."),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on.")] = None,
    http_port: Annotated[int | None, typer.Option("--http-port")] = None,
    grpc_port: Annotated[int | None, typer.Option("--grpc-port", help="0 turns gRPC off.")] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="auto, json or console.")
    ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level")] = None,
) -> None:
    """Run the coordinator.

    HTTP on 127.0.0.1:8008 and gRPC on 127.0.0.1:7212 unless configured.
    A bad configuration, a port in use or a device owned by another moc
    stops it with exit code 2.
    """
    from moc.config import load_config
    from moc.daemon import serve as run_daemon

    overrides: dict[str, Any] = {}
    server = {
        k: v
        for k, v in (("host", host), ("http_port", http_port), ("grpc_port", grpc_port))
        if v is not None
    }
    if server:
        overrides["server"] = server
    logging_ = {k: v for k, v in (("format", log_format), ("level", log_level)) if v is not None}
    if logging_:
        overrides["log"] = logging_
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        run_daemon(load_config(config, overrides))
    except ConfigError as exc:
        err.print(f"moc: {exc.message}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    except MocError as exc:
        err.print(f"moc: {exc.message}", highlight=False, markup=False)
        raise typer.Exit(1) from None


@app.command()
def devices(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show each device and its memory.

    Capacity is what moc hands out; held is leases and models; observed is
    use by processes outside moc.
    """
    try:
        found = _client(url).devices()
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    else:
        out.print(devices_table(found))


@app.command()
def health(url: UrlOpt = None) -> None:
    """Ask a running moc whether it is up."""
    try:
        emit_json(_client(url).health())
    except MocError as exc:
        fail(exc)


@app.command()
def models(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """List the models moc may load."""
    show(_client(url).models, as_json, models_table)


@app.command()
def ps(
    url: UrlOpt = None,
    as_json: JsonOpt = False,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="The models of every node of the cluster.")
    ] = False,
) -> None:
    """Show what holds memory now: models, then leases.

    A model whose last load failed is listed too, with the failure under
    the table. Learning jobs hold theirs as leases of holder learning:<job id>.
    """
    client = _client(url)
    if cluster:
        show(client.cluster, as_json, cluster_ps_table)
        return
    try:
        found = [m for m in client.models() if m["reserved_bytes"] or m["last_error"]]
        held = [] if as_json else client.leases()
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
        return
    out.print(ps_table(found))
    for m in found:
        if m["last_error"]:
            out.print(
                f"{m['id']}: {m['last_error']}", highlight=False, markup=False, soft_wrap=True
            )
    if held:
        out.print()
        out.print(leases_table(held))


NOT_IN_A_CLUSTER = "not in a cluster (cluster.redis is not set)"


@app.command("cluster")
def cluster_nodes(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Show the cluster's nodes and what each holds."""

    def render(view: Any) -> Any:
        return cluster_table(view) if view["enabled"] else NOT_IN_A_CLUSTER

    show(_client(url).cluster, as_json, render)


@app.command()
def load(
    name: Annotated[str, typer.Argument(help="A model from `moc models`.")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load a model and wait until it serves.

    Idle models are evicted if memory is short.
    """
    try:
        with err.status(f"loading {name}…"):
            shown = _client(url).load(name)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(shown)
    else:
        out.print(model_detail(shown), highlight=False, markup=False, soft_wrap=True)


@app.command()
def unload(
    name: Annotated[str, typer.Argument(help="A model from `moc ps`.")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a model's runtime and free its memory."""
    try:
        shown = _client(url).unload(name)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(shown)
    elif shown["unloaded"]:
        out.print(f"{name}: unloaded", highlight=False)
    else:
        out.print(f"{name}: was not loaded", highlight=False)


@app.command()
def submit(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Default: the first model moc lists.")
    ] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", help="Default: a stock prompt.")] = None,
    priority: Annotated[
        str | None, typer.Option("--priority", "-p", help="high, normal or low.")
    ] = None,
    batch: Annotated[bool, typer.Option("--batch", help="A fixed batch of 4 jobs.")] = False,
    random_n: Annotated[
        int | None, typer.Option("--random", help="N jobs, random models and priorities.")
    ] = None,
    spam: Annotated[
        int | None, typer.Option("--spam", help="N jobs as fast as possible; no waiting.")
    ] = None,
    delay: Annotated[float, typer.Option("--delay", help="Seconds between submissions.")] = 0.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens")] = 32,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", "--no-check", help="Do not wait for results.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Give up waiting after.")] = 600.0,
    seed: Annotated[int | None, typer.Option("--seed", help="For --random.")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue async jobs and wait for their results.

    A progress bar shows while they run; --no-wait prints the job ids instead.
    """
    counts = [n for n in (random_n, spam) if n is not None]
    if len(counts) + batch > 1:
        fail(InvalidRequest("--batch/--random/--spam", "choose one"))
    if any(n < 1 for n in counts):
        fail(InvalidRequest("--random/--spam", "must be at least 1", value=counts[0]))
    client = _client(url)
    try:
        names = [m["id"] for m in client.models()]
        todo = plans(
            names,
            count=counts[0] if counts else 1,
            batch=batch,
            randomise=random_n is not None or spam is not None,
            model=model,
            prompt=prompt,
            priority=priority,
            seed=seed,
        )
        ids = submit_all(client, todo, max_tokens, delay)
        if no_wait or spam is not None:
            if as_json:
                emit_json(ids)
            else:
                # The ids alone on stdout, one a line, for `| xargs`; the hint on stderr.
                err.print(
                    f"submitted {len(ids)} job{'s' if len(ids) != 1 else ''}; follow each "
                    "with GET /v1/jobs/<job_id>",
                    highlight=False,
                )
                for job_id in ids:
                    out.print(job_id, highlight=False)
            return
        jobs = follow(client, ids, timeout)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(jobs)
    else:
        out.print(summary(jobs))
        show_failures(jobs)
    if any(j["status"] != "complete" for j in jobs):
        raise typer.Exit(1)


def _size(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--size") from None


@lease_app.command("acquire")
def lease_acquire(
    size: Annotated[
        str | None, typer.Option("--size", "-s", help="How much, e.g. 8GiB or 512MB.")
    ] = None,
    mb: Annotated[float | None, typer.Option("--mb", help="How much, in MiB.")] = None,
    device: Annotated[str | None, typer.Option("--device", "-d")] = None,
    ttl: Annotated[float | None, typer.Option("--ttl", help="Seconds until it expires.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", "-p", help="0..100")] = None,
    holder: Annotated[str | None, typer.Option("--holder")] = None,
    pid: Annotated[int | None, typer.Option("--pid", help="Process that will use it.")] = None,
    wait: Annotated[float | None, typer.Option("--wait", help="Seconds to wait for room.")] = None,
    preemptible: Annotated[bool, typer.Option("--preemptible")] = False,
    yield_s: Annotated[
        float | None,
        typer.Option("--yield", help="Yieldable: seconds to let go when moc asks for it."),
    ] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take a lease. It lasts --ttl seconds unless renewed."""
    nbytes = _size(size)
    if nbytes is None and mb is None:
        raise typer.BadParameter("give --size (e.g. 8GiB) or --mb", param_hint="--size")
    try:
        lease = _client(url).acquire(
            bytes=nbytes,
            mb=mb,
            device=device,
            ttl_s=ttl,
            priority=priority,
            holder=holder or "cli",
            pid=pid,
            wait_s=wait,
            preemptible=preemptible,
            yield_s=yield_s,
        )
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(lease)
    else:
        out.print(
            f"lease [bold]{lease.id}[/bold]: {format_size(lease.bytes)} on {lease.device}, "
            f"fencing token {lease.fencing_token}, expires in {lease.expires_in_s:.0f}s",
            highlight=False,
        )


@lease_app.command("list")
def lease_list(
    device: Annotated[str | None, typer.Option("--device", "-d")] = None,
    holder: Annotated[str | None, typer.Option("--holder")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List live leases."""
    try:
        found = _client(url).leases(device=device, holder=holder)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(found)
    elif not found:
        out.print("no leases")
    else:
        out.print(leases_table(found))


@lease_app.command("renew")
def lease_renew(
    lease_id: Annotated[str, typer.Argument(help="The lease's id.")],
    ttl: Annotated[float | None, typer.Option("--ttl", help="New TTL in seconds.")] = None,
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Extend a lease's TTL from now."""
    try:
        lease = _client(url).renew(lease_id, ttl_s=ttl)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(lease)
    else:
        out.print(
            f"lease {lease.id} renewed: expires in {lease.expires_in_s:.0f}s", highlight=False
        )


@lease_app.command("release")
def lease_release(
    lease_id: Annotated[str, typer.Argument(help="The lease's id.")],
    url: UrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a lease's memory back."""
    try:
        lease = _client(url).release(lease_id)
    except MocError as exc:
        fail(exc)
    if as_json:
        emit_json(lease)
    else:
        out.print(
            f"lease {lease.id} released ({format_size(lease.bytes)} on {lease.device})",
            highlight=False,
        )


register_learning(app)


app.command("adapters")(adapters)  # registered last: listed after the other commands
app.command("whoami")(whoami)
app.command("audit")(audit)


def main() -> None:
    sys.exit(app(prog_name="moc"))
