"""``moc serve``: build the parts, serve HTTP and gRPC, stop cleanly.

Startup claims every device host-wide (``devices/claim.py``), then binds both
listening sockets before anything is served, so a device owned by another moc
or a taken port is reported at once with what to do.

Shutdown, on SIGTERM or SIGINT:

1. /health turns to "draining" and new lease requests get 503 shutting_down;
   requests waiting for memory are answered the same way at once;
2. the listeners close and in-flight requests get ``server.shutdown_grace_s``
   to finish, then are cancelled;
3. model runtimes are stopped (SIGTERM, then SIGKILL after
   ``runtimes.llamacpp.stop_grace_s``), so nothing moc started outlives it;
4. the device monitor stops, the database closes and the data directory is
   let go. Live leases stay in the database with their deadlines, so a
   restart picks them up with their remaining TTL.

A second signal skips the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import math
import signal
import socket
import time
from collections.abc import Iterator

import uvicorn

from moc.artifacts.build import build_registry
from moc.artifacts.registry import Registry
from moc.auth.build import build_auth, check_exposure
from moc.clock import SystemClock
from moc.clustering import join
from moc.config import Config
from moc.devices import discover
from moc.devices.claim import DeviceClaims
from moc.devices.probe import DeviceInfo, DeviceProbe
from moc.dispatch.service import Dispatcher
from moc.dispatch.upstream import Upstream
from moc.errors import ConfigError
from moc.gateway.grpc.server import GrpcServer
from moc.gateway.http.app import build_app
from moc.gateway.tls import ServerTls
from moc.jobs.runner import JobRunner
from moc.jobs.store import JobStore
from moc.learning.build import build_learning
from moc.learning.demo import add_demo_datasets, demo_base_model
from moc.learning.worker.selfcall import SelfTls
from moc.leases.service import LeaseService
from moc.leases.store import LeaseStore
from moc.ledger import Ledger
from moc.lifecycle.build import Lifecycle, build_lifecycle
from moc.models.demo import demo_catalog
from moc.monitor import DeviceMonitor
from moc.scheduler.task import Scheduler
from moc.scheduler.waiting import Limits, Priority
from moc.services import Services
from moc.store.datadir import DataDir
from moc.store.sqlite import Database
from moc.telemetry import logs
from moc.telemetry.logs import event
from moc.telemetry.metrics import Metrics
from moc.units import format_size
from moc.version import __version__

log = logging.getLogger("moc")


class _UvicornServer(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns the signals
    and decides the order of shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_http(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = (
            " (is another moc running? pick another with --http-port)"
            if exc.errno == errno.EADDRINUSE
            else ""
        )
        raise ConfigError(f"cannot listen for HTTP on {host}:{port}: {exc.strerror}{hint}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def run(config: Config) -> None:
    started = time.monotonic()
    check_exposure(config)  # before anything is claimed or bound
    data_dir = DataDir(config.data_dir)
    data_dir.acquire()
    db = Database(data_dir.file("moc.db"))
    claims: DeviceClaims | None = None
    try:
        probes = discover(config.devices)
        # Before the ports: a second moc on the same devices is told whose they are.
        claims = DeviceClaims.take(
            [info for probe in probes for info in probe.devices()],
            declared_host=bool(config.devices.host),
            directory=config.devices.claim_dir,
        )
        event(log, logging.DEBUG, "devices claimed", claim_dir=str(claims.directory))
        await _run(config, data_dir, db, probes, started)
    finally:
        if claims is not None:
            claims.release()
        db.close()
        data_dir.release()


def build_services(config: Config, db: Database, probes: list[DeviceProbe]) -> Services:
    """Every part of the daemon, wired together; nothing is started yet."""
    clock = SystemClock()
    metrics = Metrics()
    ledger = Ledger()
    devices = [info for probe in probes for info in probe.devices()]
    for info in devices:
        ledger.add_device(info.id, info.kind, info.total, config.devices.reserve_fraction)
    leases = LeaseService(ledger, LeaseStore(db), clock, metrics, config.leases)
    # An artifact may not take a name requests already use: the names are the
    # lifecycle's, built next, and asked only once moc serves.
    registry = build_registry(config, db, clock, lambda: lifecycle.table.taken_names())
    lifecycle = build_models(config, ledger, devices, probes, db, clock, metrics, leases, registry)
    loader = lifecycle.loader
    scheduler = Scheduler(Limits.of(config.gateway), loader.scheduling_facts, clock)
    lifecycle.table.on_change(scheduler.poke)
    upstream = Upstream(config.gateway.upstream_timeout_s)
    dispatcher = Dispatcher(loader, scheduler, upstream, config.gateway, clock, metrics)
    jobs = JobRunner(
        JobStore(db),
        dispatcher,
        lifecycle.table,
        clock,
        metrics,
        config.jobs,
        window=min(4096, max(64, 2 * config.gateway.max_in_flight)),
    )
    learning = build_learning(
        config, db, leases, lifecycle.table, devices, clock, metrics, registry
    )
    metrics.watch_state(ledger.views, leases.counts_by_device, leases.waiter_count)
    metrics.watch_gateway(
        lambda: {p.label: scheduler.room.depth(p) for p in Priority},
        lambda: scheduler.room.in_flight,
        lambda: {m: int(state) for m, state in dispatcher.breaker_states().items()},
    )
    return Services(
        config=config,
        clock=clock,
        ledger=ledger,
        devices=devices,
        leases=leases,
        lifecycle=lifecycle,
        scheduler=scheduler,
        dispatcher=dispatcher,
        jobs=jobs,
        learning_side=learning,
        artifacts=registry,
        auth=build_auth(config, db, clock, leases),
        metrics=metrics,
        started_at=clock.now(),
    )


async def _run(
    config: Config, data_dir: DataDir, db: Database, probes: list[DeviceProbe], started: float
) -> None:
    services = build_services(config, db, probes)
    ledger, leases, lifecycle = services.ledger, services.leases, services.lifecycle
    scheduler, jobs, metrics = services.scheduler, services.jobs, services.metrics
    devices = services.devices
    restored, expired_while_down = leases.restore()
    learning = services.learning_side
    learning.datasets.recover()
    await services.artifacts.open()
    if not config.models and config.runtimes.demo_models:
        await add_demo_datasets(learning.datasets)
    learning_resumed = learning.runner.restore()
    monitor = DeviceMonitor(
        probes,
        ledger,
        metrics,
        config.devices.poll_interval_s,
        claims=[leases.claims, lifecycle.table.claims],
        usage_sinks=[leases.note_usage, lifecycle.usage.note_usage],
        on_more_free=leases.memory_changed,
    )
    await monitor.observe_once()

    server_cfg = config.server
    tls = ServerTls(server_cfg.tls) if server_cfg.tls.enabled else None  # ConfigError: bad files
    http_sock = bind_http(server_cfg.host, server_cfg.http_port)
    if config.cluster.enabled:
        services.cluster = join(services, http_sock.getsockname()[1])
    grpc_server: GrpcServer | None = None
    grpc_port = 0
    if server_cfg.grpc_port:
        grpc_server = GrpcServer(services)
        try:
            grpc_port = grpc_server.bind(
                server_cfg.host, server_cfg.grpc_port, tls.grpc_credentials() if tls else None
            )
        except OSError as exc:
            http_sock.close()
            raise ConfigError(
                f"{exc} (pick another with --grpc-port, or 0 to turn gRPC off)"
            ) from exc
    uv = _UvicornServer(
        uvicorn.Config(
            build_app(services),
            log_config=None,
            access_log=False,
            lifespan="off",
            http="httptools",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=math.ceil(server_cfg.shutdown_grace_s),
        )
    )
    if tls is not None:
        # uvicorn would build a context of its own from ssl_* paths in load();
        # loaded now, it serves moc's one context, which SIGHUP reloads in place.
        uv.config.load()
        uv.config.ssl = tls.http_context()

    stop = asyncio.Event()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            event(
                log,
                logging.INFO,
                "stopping",
                signal=signal.Signals(signum).name,
                grace_s=server_cfg.shutdown_grace_s,
            )
            stop.set()
        else:
            event(log, logging.WARNING, "second signal: skipping the grace period")
            uv.force_exit = True

    def on_hangup() -> None:
        if tls is None:
            event(log, logging.INFO, "SIGHUP: nothing to reload (server.tls is not set)")
            return
        try:
            loaded = tls.reload()
        except ConfigError as exc:
            kept = tls.current.describe()
            event(log, logging.ERROR, "tls reload failed", error=exc.message, kept=kept)
        else:
            event(log, logging.INFO, "tls reloaded", **loaded.describe())

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)

    adopted, stopped_orphans = await lifecycle.recover()
    leases.start()
    lifecycle.start()
    scheduler.start()
    jobs_requeued, jobs_failed = jobs.start()
    monitor.start()
    if grpc_server is not None:
        await grpc_server.start()
    http_task = asyncio.create_task(uv.serve(sockets=[http_sock]), name="http")
    http_port = http_sock.getsockname()[1]
    http_at = f"{server_cfg.host}:{http_port}"
    grpc_at = f"{server_cfg.host}:{grpc_port}" if grpc_server else "off"
    tls_fields: dict[str, str] = {}
    own_key = services.auth.internal_key if services.auth.enabled else None
    if tls is None:
        learning.bind(f"http://{server_cfg.own_host}:{http_port}", api_key=own_key)
    else:
        learning.bind(
            f"https://{server_cfg.own_host}:{http_port}",
            SelfTls(str(tls.cert_file.resolve()), client_cert_required=tls.mutual),
            own_key,
        )
        http_at, grpc_at = f"https://{http_at}", f"grpcs://{grpc_at}" if grpc_server else "off"
        tls_fields = {"tls": "mutual" if tls.mutual else "on", **tls.current.describe()}
    learning.runner.start()
    if services.cluster is not None:
        await services.cluster.link.beat()  # joined (or not) before "ready"
        services.cluster.link.start()
    event(
        log,
        logging.INFO,
        "moc ready",
        version=__version__,
        http=http_at,
        grpc=grpc_at,
        **tls_fields,
        data_dir=str(data_dir.path),
        devices=", ".join(
            f"{d.id} ({d.kind}, {format_size(ledger.capacity(d.id))})" for d in devices
        ),
        leases_restored=restored,
        expired_while_down=expired_while_down,
        models=len(lifecycle.table.slots()),
        runtimes_adopted=adopted,
        runtimes_stopped=stopped_orphans,
        jobs_requeued=jobs_requeued,
        jobs_failed_on_restart=jobs_failed,
        learning_jobs_resumed=learning_resumed,
        startup_ms=round((time.monotonic() - started) * 1000, 1),
    )

    # Everything built so far lives as long as the daemon: keep it out of the
    # garbage collector's sweeps, which otherwise walk it on every full
    # collection and show up as latency spikes.
    gc.freeze()
    preload = asyncio.create_task(lifecycle.loader.preload(), name="preload")
    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait({http_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    t0 = time.monotonic()
    services.draining = True
    await learning.close()  # children checkpoint and exit; their jobs resume next start
    turned_away = await leases.close()
    await jobs.close()
    await scheduler.close()
    uv.should_exit = True
    stops = [http_task]
    if grpc_server is not None:
        stops.append(asyncio.create_task(grpc_server.stop(server_cfg.shutdown_grace_s)))
    await asyncio.gather(*stops, return_exceptions=True)
    preload.cancel()
    await lifecycle.close()
    await services.dispatcher.close()
    if services.cluster is not None:
        await services.cluster.close()
    await monitor.close()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.remove_signal_handler(sig)
    event(
        log,
        logging.INFO,
        "moc stopped",
        leases_persisted=len(leases.live()),
        waiting_turned_away=turned_away,
        took_s=round(time.monotonic() - t0, 3),
    )


def build_models(
    config: Config,
    ledger: Ledger,
    devices: list[DeviceInfo],
    probes: list[DeviceProbe],
    db: Database,
    clock: SystemClock,
    metrics: Metrics,
    leases: LeaseService,
    registry: Registry | None = None,
) -> Lifecycle:
    specs = list(config.models)
    if not specs and config.runtimes.demo_models:
        specs = [*demo_catalog(config.data_dir), demo_base_model(config.data_dir)]
    owner = {info.id: probe for probe in probes for info in probe.devices()}

    async def measure(pid: int, device: str) -> int | None:
        readings = await asyncio.to_thread(owner[device].read, {pid})
        for reading in readings:
            if reading.id == device and reading.error is None:
                return reading.process_usage.get(pid)
        return None

    lifecycle = build_lifecycle(
        config,
        specs,
        ledger,
        devices,
        db,
        clock,
        metrics,
        measure,
        on_more_free=leases.memory_changed,
        yielders=leases,
        artifacts=registry,
    )
    leases.on_freed(lifecycle.table.notify)  # a load waiting for a yield decides again
    return lifecycle


def serve(config: Config) -> None:
    """Run the daemon until a signal stops it. Startup problems raise ConfigError."""
    logs.configure(config.log.format, config.log.level)
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on every platform)
        asyncio.run(run(config))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(config))
