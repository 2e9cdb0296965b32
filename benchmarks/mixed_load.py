"""What ``seed_load.py`` and ``overload.py`` share: an OpenAI-compatible
responder that answers by route (optionally after a fixed delay), an open-loop
generator of mixed requests that keeps one record per request, and watchers
that sample moc from the side (its CPU and memory, its queue depth, ``/health``).

Each of the responder and the generator runs in its own process (uvloop), so
neither shares an event loop or a GIL with moc or with the watchers; the
watchers are threads of the calling process, which otherwise only waits.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import multiprocessing as mp
import os
import random
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lease_ops import free_port, wait_port
from loadgen import json_response, percentile, serve_constant, serve_raw
from upstream_client import COMPLETION, WORDS, _sse_chunks

# --- the responder ---------------------------------------------------------------
TEXT_COMPLETION = (
    b'{"id":"cmpl-0123456789","object":"text_completion","created":1700000000,'
    b'"model":"tiny","choices":[{"index":0,"text":"Hello there, how can I help?",'
    b'"finish_reason":"stop","logprobs":null}],'
    b'"usage":{"prompt_tokens":4,"completion_tokens":8,"total_tokens":12}}'
)
EMBEDDING = (
    b'{"object":"list","model":"tiny","data":[{"object":"embedding","index":0,"embedding":['
    + b",".join(b"0.%03d" % i for i in range(64))
    + b']}],"usage":{"prompt_tokens":4,"total_tokens":4}}'
)


def _completion_chunks() -> list[bytes]:
    """8 ``text_completion`` events and ``[DONE]``, each its own HTTP chunk."""
    events = [
        b'data: {"id":"cmpl-0123456789","object":"text_completion","created":1700000000,'
        b'"model":"tiny","choices":[{"index":0,"text":"' + word + b'","finish_reason":null}]}\n\n'
        for word in WORDS
    ]
    events.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(event), event) for event in events] + [b"0\r\n\r\n"]


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
ANSWERS: dict[tuple[bytes, bool], tuple[bytes, ...]] = {
    (b"/v1/chat/completions", False): (json_response(COMPLETION),),
    (b"/v1/chat/completions", True): (_STREAM_HEAD, *_sse_chunks()),
    (b"/v1/completions", False): (json_response(TEXT_COMPLETION),),
    (b"/v1/completions", True): (_STREAM_HEAD, *_completion_chunks()),
    (b"/v1/embeddings", False): (json_response(EMBEDDING),),
}
NOT_FOUND = (
    json_response(b'{"error":{"message":"no such route","code":"not_found"}}', b"404 Not Found"),
)


def serve_routed(port: int, delay_s: float = 0.0) -> None:
    """A keep-alive OpenAI-compatible responder: chat completions and
    completions (json, or 8 server-sent events and ``[DONE]`` when the body
    asks to stream) and embeddings, each a fixed answer ``delay_s`` after the
    request arrived. It runs no model and has no limit of its own on
    concurrency, so its capacity is whatever moc lets through. Runs until
    killed (in its own process)."""

    def answer(path: bytes, body: bytes) -> tuple[bytes, ...]:
        stream = b'"stream": true' in body or b'"stream":true' in body
        return ANSWERS.get((path, stream), NOT_FOUND)

    serve_raw(port, answer, delay_s)


def start_responder(delay_s: float = 0.0) -> tuple[mp.process.BaseProcess, int]:
    port = free_port()
    proc = mp.get_context("spawn").Process(target=serve_routed, args=(port, delay_s), daemon=True)
    proc.start()
    wait_port(port)
    return proc, port


# --- the open-loop generator --------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """One sort of request in the mix, drawn with probability ``weight``."""

    name: str
    path: str
    body: bytes
    weight: float
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Record:
    """One request: when it was due (monotonic s), its latency from then (ms,
    to the end of its body), its status (0: no answer), its kind's index, and
    whether a 429 carried ``Retry-After``, and the error's ``code`` when the
    answer was moc's error envelope."""

    due: float
    ms: float
    status: int
    kind: int
    retry_after: bool
    code: str = ""

    @property
    def answered(self) -> float:
        """When the answer was complete (monotonic s)."""
        return self.due + self.ms / 1000


@dataclass(frozen=True)
class Sent:
    """What the generator did: every request, and its own timing and CPU."""

    records: list[Record]
    started: float  # monotonic time of the first due request
    stopped: float  # monotonic time the last request was sent
    cpu_s: float  # the generator process's CPU seconds over the run

    @property
    def rate(self) -> float:
        return len(self.records) / max(1e-9, self.stopped - self.started)


async def _open_loop(
    url: str,
    kinds: Sequence[Kind],
    rate: float,
    seconds: float,
    seed: int,
    timeout_s: float,
    begun: Any,
) -> Sent:
    import aiohttp

    cpu0 = time.process_time()
    rng = random.Random(seed)
    weights = [k.weight for k in kinds]
    records: list[Record] = []
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(due: float, index: int) -> None:
            kind = kinds[index]
            headers = {"content-type": "application/json", **dict(kind.headers)}
            status, retry_after, data = 0, False, b""
            try:
                async with session.post(url + kind.path, data=kind.body, headers=headers) as r:
                    data = await r.read()
                    status, retry_after = r.status, "retry-after" in r.headers
            except (aiohttp.ClientError, TimeoutError):
                pass
            ms = (time.monotonic() - due) * 1000
            records.append(Record(due, ms, status, index, retry_after, error_code(status, data)))

        tasks = []
        start = time.monotonic()
        begun.set()
        for i in range(int(rate * seconds)):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            index = rng.choices(range(len(kinds)), weights)[0]
            tasks.append(asyncio.create_task(one(due, index)))
        stopped = time.monotonic()
        await asyncio.gather(*tasks)
    records.sort(key=lambda r: r.due)
    return Sent(records, start, stopped, time.process_time() - cpu0)


def error_code(status: int, body: bytes) -> str:
    """moc's error code in an error answer's envelope ("" when there is none)."""
    if status < 400:
        return ""
    try:
        error = json.loads(body)["error"]
        return str(error["code"]) if isinstance(error, dict) else ""
    except (ValueError, KeyError, TypeError):
        return ""


def _child(conn: Any, args: tuple[Any, ...]) -> None:
    import uvloop

    conn.send(uvloop.run(_open_loop(*args)))


class OpenLoop:
    """The generator in its own process: ``start()``, then ``result()``;
    ``begun`` is set when it sends its first request."""

    def __init__(
        self,
        url: str,
        kinds: Sequence[Kind],
        *,
        rate: float,
        seconds: float,
        seed: int = 1,
        timeout_s: float = 120.0,
    ) -> None:
        spawn = mp.get_context("spawn")
        self.begun = spawn.Event()
        self._parent, child = mp.Pipe()
        args = (url, list(kinds), rate, seconds, seed, timeout_s, self.begun)
        self._proc = spawn.Process(target=_child, args=(child, args))

    def start(self) -> OpenLoop:
        self._proc.start()
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def result(self) -> Sent:
        sent: Sent = self._parent.recv()
        self._proc.join()
        return sent


# --- watching moc from the side ----------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    t: float  # monotonic
    cpu_s: float  # moc's own CPU seconds so far (not its children's)
    children_cpu_s: float  # its runtimes' CPU seconds so far, dead ones included
    rss: int  # moc's resident memory, bytes
    queue_depth: float  # moc_queue_depth, all priorities


@dataclass
class Watch:
    """Samples moc every ``every_s`` (CPU, RSS, queue depth) and GETs
    ``/health`` every ``health_every_s`` with a client of its own, each in a
    thread, until :meth:`stop`. Right after each ``/health`` it GETs a trivial
    responder of its own the same way (``control``): where both are slow at
    once, the machine was busy, not moc."""

    url: str
    pid: int
    every_s: float = 0.25
    health_every_s: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    health: list[tuple[float, float, int]] = field(default_factory=list)  # (t, ms, status)
    control: list[tuple[float, float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _children: dict[int, float] = field(default_factory=dict)  # pid → last CPU seen

    def start(self) -> Watch:
        for fn in (self._sample_loop, self._health_loop):
            thread = threading.Thread(target=fn, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def sample_now(self, http: httpx.Client) -> Sample:
        proc = psutil.Process(self.pid)
        with proc.oneshot():
            times, rss = proc.cpu_times(), proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                t = child.cpu_times()
                self._children[child.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return Sample(
            time.monotonic(),
            times.user + times.system,
            sum(self._children.values()),
            rss,
            queue_depth(http),
        )

    def _sample_loop(self) -> None:
        with httpx.Client(base_url=self.url, trust_env=False, timeout=10) as http:
            while not self._stop.is_set():
                self.samples.append(self.sample_now(http))
                self._stop.wait(self.every_s)

    def _health_loop(self) -> None:
        control_port = free_port()
        control = mp.get_context("spawn").Process(
            target=serve_constant, args=(control_port, b"200 OK", b'{"status":"ok"}'), daemon=True
        )
        control.start()
        wait_port(control_port)
        control_url = f"http://127.0.0.1:{control_port}/health"
        try:
            with httpx.Client(trust_env=False, timeout=10) as http:
                next_at = time.monotonic()
                while not self._stop.is_set():
                    self.health.append(_timed_get(http, f"{self.url}/health"))
                    self.control.append(_timed_get(http, control_url))
                    next_at = max(next_at + self.health_every_s, time.monotonic())
                    self._stop.wait(next_at - time.monotonic())
        finally:
            control.terminate()
            control.join()

    # --- reading ----------------------------------------------------------------------
    def between(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in self.samples if t0 <= s.t <= t1]

    def cpu_percent(self, t0: float, t1: float, children: bool = False) -> float:
        """moc's CPU (or its children's) over the samples between t0 and t1,
        in % of one core."""
        inside = self.between(t0, t1)
        if len(inside) < 2:
            return float("nan")
        first, last = inside[0], inside[-1]
        spent = last.children_cpu_s - first.children_cpu_s if children else last.cpu_s - first.cpu_s
        return 100 * spent / (last.t - first.t)

    def health_ms(self, t0: float, t1: float, control: bool = False) -> list[float]:
        """``/health``'s latencies (or the control's) between t0 and t1, sorted."""
        return self.health_in([(t0, t1)], control)

    def health_in(self, spans: Sequence[tuple[float, float]], control: bool = False) -> list[float]:
        """``/health``'s latencies (or the control's) inside any of ``spans``, sorted."""
        probes = self.control if control else self.health
        return sorted(ms for t, ms, _ in probes if any(a <= t <= b for a, b in spans))


def _timed_get(http: httpx.Client, url: str) -> tuple[float, float, int]:
    t0 = time.monotonic()
    try:
        status = http.get(url).status_code
    except httpx.HTTPError:
        status = 0
    return t0, (time.monotonic() - t0) * 1000, status


def queue_depth(http: httpx.Client) -> float:
    """moc_queue_depth summed over priorities, from ``/metrics``."""
    total = 0.0
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("moc_queue_depth{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# --- summing up ---------------------------------------------------------------------------
def pct(values: Iterable[float], q: float) -> float:
    return percentile(sorted(values), q)


def overlapping(records: Sequence[Record], spans: Sequence[tuple[float, float]]) -> list[Record]:
    """The records due inside any of ``spans`` (sorted, disjoint or not)."""
    dues = [r.due for r in records]
    inside: dict[int, Record] = {}
    for t0, t1 in spans:
        for i in range(bisect.bisect_left(dues, t0), bisect.bisect_right(dues, t1)):
            inside[i] = records[i]
    return [inside[i] for i in sorted(inside)]


def by_status(records: Iterable[Record]) -> str:
    counts: dict[int, int] = {}
    for r in records:
        counts[r.status] = counts.get(r.status, 0) + 1
    return (
        ", ".join(f"{'no answer' if s == 0 else s}: {n}" for s, n in sorted(counts.items()))
        or "none"
    )


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{len(os.sched_getaffinity(0))} CPUs (nproc), {model}, Python {sys.version.split()[0]}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
