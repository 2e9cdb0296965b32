"""This daemon as a node of a cluster: built from its services (what it
publishes of itself, its line to Redis, the pool it forwards through, its
share of the per-key limits, the tables it shares), and the address the
other nodes reach it at. Used by the daemon only when ``cluster.redis`` is
set."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
from urllib.parse import urlsplit

from moc.backends.state import State
from moc.cluster.forward import Forwarder
from moc.cluster.limits import SharedLimits
from moc.cluster.link import ClusterLink
from moc.cluster.model import NodeInfo
from moc.cluster.service import Cluster, node_info
from moc.config import ClusterConfig, own_host
from moc.errors import ConfigError, ModelNotFound
from moc.learning.jobs.model import TINY_BASE
from moc.scheduler.waiting import Priority
from moc.services import Services
from moc.sharing import share
from moc.telemetry.logs import event

log = logging.getLogger(__name__)


def join(services: Services, port: int) -> Cluster:
    """This node in the cluster, at ``port``: built, sharing its goals and
    keys, and naming its leases and jobs so any node can tell whose they are."""
    config = services.config
    cluster = config.cluster
    assert cluster.secret is not None  # a cluster has one (ClusterConfig)
    scheme = "https" if config.server.tls.enabled else "http"
    own = f"{scheme}://{_reachable(config.server.host, cluster)}:{port}"
    built = build_cluster(services, cluster.advertise or own)
    share(
        services.goals, services.auth.keys, built.link, cluster.secret.get_secret_value().encode()
    )
    prefix = f"{cluster.node}."
    services.leases.id_prefix = services.jobs.id_prefix = services.learning.id_prefix = prefix
    return built


def build_cluster(services: Services, url: str) -> Cluster:
    """This node in the cluster: what it publishes of itself, its line to
    Redis, the pool it forwards through."""
    config = services.config.cluster
    assert config.secret is not None
    scheduler, table, ledger, clock = (
        services.scheduler, services.models, services.ledger, services.clock,
    )  # fmt: skip

    bases = (TINY_BASE, *sorted(services.config.learning.bases))
    datasets = services.datasets

    def here() -> NodeInfo:
        room = scheduler.room
        queued = sum(room.depth(p) for p in Priority)
        return node_info(config.node, url, clock.now(), ledger.views(), table.views(), queued,
                         room.in_flight, bases, datasets.names())  # fmt: skip

    link = ClusterLink(config, here, services.metrics.cluster_nodes_up.set)
    quota = services.auth.quota
    limits = SharedLimits(link.redis, config.node, config.ttl_s, lambda: quota.changes(clock.now()))
    link.after_beat(limits.beat)
    forwarder = Forwarder(config.node, config.secret.get_secret_value(), _nodes_tls(config))

    def ready_here(model: str) -> bool:
        try:
            return table.view(model).state is State.READY
        except ModelNotFound:  # an adapter's name, or none here: the route decides
            return False

    return Cluster(link, forwarder, here, ready_here, services.metrics, clock, limits)


def _nodes_tls(config: ClusterConfig) -> ssl.SSLContext | None:
    """How this node checks the other nodes' HTTPS (``cluster.ca_file``, else
    the system's CAs) and the client certificate it shows them, if any;
    None: the system's CAs and no certificate."""
    if config.ca_file is None and config.cert_file is None:
        return None
    try:
        context = ssl.create_default_context(
            cafile=None if config.ca_file is None else str(config.ca_file)
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cluster.ca_file {config.ca_file}: {exc}") from exc
    if config.cert_file is not None:
        try:
            context.load_cert_chain(config.cert_file, config.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cluster.cert_file {config.cert_file} / key_file {config.key_file}: {exc}"
            ) from exc
    return context


def _reachable(host: str, cluster: ClusterConfig) -> str:
    """The address the other nodes reach this one at, when ``advertise`` is
    not set: the one it listens on; listening on every address, the one this
    host reaches Redis from (the other nodes reach Redis too: that interface
    is the one they share). Only a route is looked up (and Redis's name
    resolved): no packet is sent."""
    if host not in ("0.0.0.0", "", "::") or cluster.redis is None:
        return own_host(host)
    parsed = urlsplit(cluster.redis)
    target = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
    families = (socket.AF_INET6, socket.AF_INET) if host == "::" else (socket.AF_INET,)
    found = None
    for family in families:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect(target)
                found = str(probe.getsockname()[0])
                break
        except OSError:
            continue
    if found is None or _is_loopback(found):
        found = found or own_host(host).strip("[]")
        event(log, logging.WARNING, "cluster: this node advertises a loopback address, which "
              "only nodes on this host reach; set cluster.advertise", address=found)  # fmt: skip
    return f"[{found}]" if ":" in found else found


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False
