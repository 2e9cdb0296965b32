"""Every Prometheus metric moc exports, defined here and nowhere else.

Each daemon has its own registry (tests run several in one process). Gauges
that restate state another part owns (device memory, active leases) are not
kept twice: a collector reads them from their owner at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from moc.ledger import DeviceView

# The *_created series double every counter's output for no use here.
disable_created_metrics()  # type: ignore[no-untyped-call]

LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _StateCollector(Collector):
    def __init__(
        self,
        devices: Callable[[], list[DeviceView]],
        leases_by_device: Callable[[], dict[str, int]],
        waiters: Callable[[], int],
    ) -> None:
        self._devices = devices
        self._leases = leases_by_device
        self._waiters = waiters

    def collect(self) -> Iterable[GaugeMetricFamily]:
        labels = ["device", "kind"]
        families = {
            "total": GaugeMetricFamily(
                "moc_device_total_bytes", "Memory the device has.", labels=labels
            ),
            "capacity": GaugeMetricFamily(
                "moc_device_capacity_bytes",
                "Memory moc hands out (total × reserve fraction).",
                labels=labels,
            ),
            "held": GaugeMetricFamily(
                "moc_device_held_bytes",
                "Memory held by leases and model reservations.",
                labels=labels,
            ),
            "external": GaugeMetricFamily(
                "moc_device_observed_bytes",
                "Memory observed in use by processes moc does not account for.",
                labels=labels,
            ),
            "free": GaugeMetricFamily(
                "moc_device_free_bytes", "Capacity minus held minus observed.", labels=labels
            ),
        }
        for view in self._devices():
            for attr, family in families.items():
                family.add_metric([view.id, view.kind], float(getattr(view, attr)))
        yield from families.values()
        active = GaugeMetricFamily("moc_leases_active", "Live leases.", labels=["device"])
        for device, count in self._leases().items():
            active.add_metric([device], float(count))
        yield active
        yield GaugeMetricFamily(
            "moc_lease_waiters", "Lease requests waiting for memory.", value=self._waiters()
        )


class _LearningCollector(Collector):
    def __init__(self, by_status: Callable[[], dict[str, int]]) -> None:
        self._by_status = by_status

    def collect(self) -> Iterable[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("moc_learning_jobs", "Learning jobs by status.", labels=["status"])
        for status, count in self._by_status().items():
            jobs.add_metric([status], float(count))
        yield jobs


class _GatewayCollector(Collector):
    def __init__(
        self,
        depths: Callable[[], dict[str, int]],
        in_flight: Callable[[], int],
        breakers: Callable[[], dict[str, int]],
    ) -> None:
        self._depths = depths
        self._in_flight = in_flight
        self._breakers = breakers

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "moc_queue_depth", "Requests waiting, by priority.", labels=["priority"]
        )
        for priority, count in self._depths().items():
            depth.add_metric([priority], float(count))
        yield depth
        yield GaugeMetricFamily(
            "moc_requests_in_flight",
            "Requests sent to backends and not finished.",
            value=self._in_flight(),
        )
        breaker = GaugeMetricFamily(
            "moc_breaker_state",
            "Circuit breaker per model: 0 closed, 1 open, 2 half-open.",
            labels=["model"],
        )
        for model, state in self._breakers().items():
            breaker.add_metric([model], float(state))
        yield breaker


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.lease_grants = Counter("moc_lease_grants", "Leases granted.", ["device"], registry=r)
        self.lease_denials = Counter(
            "moc_lease_denials", "Lease requests refused.", ["reason"], registry=r
        )
        self.cluster_forwards = Counter(
            "moc_cluster_forwards",
            "Requests sent on to another node, by node and the status it answered "
            "(unreachable: not reached, served here instead).",
            ["node", "status"],
            registry=r,
        )
        self.cluster_forward_seconds = Histogram(
            "moc_cluster_forward_seconds",
            "Seconds until the other node's answer began, for forwarded requests.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1, 5, 30),
            registry=r,
        )
        self.cluster_placements = Counter(
            "moc_cluster_placements",
            "Cold models placed by this node's decision: here, or on another node.",
            ["where"],
            registry=r,
        )
        self.cluster_nodes_up = Gauge(
            "moc_cluster_nodes_up",
            "Nodes up as this node last read them (itself included).",
            registry=r,
        )
        self.auth_refusals = Counter(
            "moc_auth_refusals",
            "Requests refused by authentication or a key's limits (HTTP and gRPC), by code: "
            "unauthenticated, forbidden, rate_limited.",
            ["code"],
            registry=r,
        )
        self.lease_expiries = Counter(
            "moc_lease_expiries",
            "Leases reclaimed because their TTL ran out.",
            ["device"],
            registry=r,
        )
        self.lease_revocations = Counter(
            "moc_lease_revocations",
            "Leases revoked: preemptible for higher priority, or yieldable and not let go in time.",
            ["device"],
            registry=r,
        )
        self.lease_yield_requests = Counter(
            "moc_lease_yield_requests",
            "Yieldable leases asked to let go of their memory.",
            ["device"],
            registry=r,
        )
        self.lease_releases = Counter(
            "moc_lease_releases", "Leases released by their holder.", ["device"], registry=r
        )
        self.lease_overuse = Counter(
            "moc_lease_overuse",
            "Times a lease's process was seen using more memory than it leased.",
            ["device"],
            registry=r,
        )
        self.lease_wait_seconds = Histogram(
            "moc_lease_wait_seconds",
            "Time lease requests waited before grant or refusal.",
            ["outcome"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.learning_jobs = Counter(
            "moc_learning_job_events",
            "Learning jobs submitted and finished, by kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.learning_steps = Counter(
            "moc_learning_steps", "Training steps learning jobs took.", ["kind"], registry=r
        )
        self.learning_loss = Gauge(
            "moc_learning_loss", "The last loss a learning job reported.", ["kind"], registry=r
        )
        self.learning_yields = Counter(
            "moc_learning_yields",
            "Times a learning job gave its memory back to inference.",
            ["kind"],
            registry=r,
        )
        self.learning_yield_seconds = Histogram(
            "moc_learning_yield_seconds",
            "From a yield request to the job's memory being free.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.learning_resumes = Counter(
            "moc_learning_resumes",
            "Learning job runs that resumed from a checkpoint.",
            ["kind"],
            registry=r,
        )
        self.device_read_errors = Counter(
            "moc_device_read_errors",
            "Failed device observations (NVML or psutil).",
            ["device"],
            registry=r,
        )

        self.model_loads = Counter(
            "moc_model_loads", "Model loads by outcome.", ["model", "outcome"], registry=r
        )
        self.model_load_seconds = Histogram(
            "moc_model_load_seconds",
            "Time from a load's start to the model serving.",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.model_evictions = Counter(
            "moc_model_evictions",
            "Models unloaded by moc, by reason (memory, idle).",
            ["model", "reason"],
            registry=r,
        )
        self.model_restarts = Counter(
            "moc_model_restarts", "Runtime restarts after a crash.", ["model"], registry=r
        )
        self.model_ooms = Counter(
            "moc_model_ooms",
            "Out-of-memory failures seen in a runtime's log.",
            ["model"],
            registry=r,
        )
        self.model_status = Gauge(
            "moc_model_status",
            "1 for the state each model is in, 0 for the others.",
            ["model", "state"],
            registry=r,
        )
        self.model_estimated_bytes = Gauge(
            "moc_model_estimated_bytes",
            "Memory estimated from the model file.",
            ["model"],
            registry=r,
        )
        self.model_measured_bytes = Gauge(
            "moc_model_measured_bytes",
            "Memory measured for the loaded model (0 until measured).",
            ["model"],
            registry=r,
        )
        self._gateway(r)

    def _gateway(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "moc_requests",
            "Inference requests by model, API and HTTP status.",
            ["model", "api", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "moc_request_seconds",
            "Inference requests from arrival to the last byte sent.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "moc_queue_wait_seconds",
            "Time requests waited in the queue before they were sent.",
            ["priority"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.requests_retried = Counter(
            "moc_requests_retried",
            "Requests sent a second time because the backend died before answering.",
            ["model"],
            registry=r,
        )
        self.requests_abandoned = Counter(
            "moc_requests_abandoned",
            "Requests whose client went away, by where they were (queued, running).",
            ["model", "stage"],
            registry=r,
        )
        self.jobs = Counter(
            "moc_jobs", "Async jobs that ended, by final status.", ["status"], registry=r
        )
        self._requests_by: dict[tuple[str, str, int], Counter] = {}
        self._latency_by: dict[str, Histogram] = {}
        self._wait_by: dict[str, Histogram] = {}

    def request_done(self, model: str, api: str, status: int, seconds: float) -> None:
        """Count one inference request; the labelled series are looked up once
        per label set (``labels()`` takes a lock and checks its arguments)."""
        key = (model, api, status)
        counter = self._requests_by.get(key)
        if counter is None:
            counter = self._requests_by[key] = self.requests.labels(model, api, str(status))
        counter.inc()
        latency = self._latency_by.get(model)
        if latency is None:
            latency = self._latency_by[model] = self.request_seconds.labels(model)
        latency.observe(seconds)

    def queue_waited(self, priority: str, seconds: float) -> None:
        wait = self._wait_by.get(priority)
        if wait is None:
            wait = self._wait_by[priority] = self.queue_wait_seconds.labels(priority)
        wait.observe(seconds)

    def watch_gateway(
        self,
        depths: Callable[[], dict[str, int]],
        in_flight: Callable[[], int],
        breakers: Callable[[], dict[str, int]],
    ) -> None:
        self.registry.register(_GatewayCollector(depths, in_flight, breakers))

    def watch_state(
        self,
        devices: Callable[[], list[DeviceView]],
        leases_by_device: Callable[[], dict[str, int]],
        waiters: Callable[[], int],
    ) -> None:
        self.registry.register(_StateCollector(devices, leases_by_device, waiters))

    def watch_learning(self, by_status: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_LearningCollector(by_status))

    def render(self) -> bytes:
        return generate_latest(self.registry)
