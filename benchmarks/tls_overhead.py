"""What TLS costs moc: the same daemon configuration served plain and with
``server.tls``, side by side in one run.

- HTTP GET /v1/devices, each client keeping its connection (keep-alive), at
  1 and 50 clients: requests/s, p50/p99 and moc's CPU per request;
- the same with a new connection per request (``Connection: close``, no TLS
  session resumption: a full handshake each time), which shows what a
  handshake costs;
- gRPC GetHealth on one channel, at 1 and 50 concurrent calls.

Both daemons run at once (each on a host device of its own) and take turns,
case by case, ``--rounds`` runs each (the order flipping every round, so a
busy moment on a shared machine weighs on both alike); each figure is the
median of its rounds. The certificate is an ECDSA P-256 one (``--key rsa``:
RSA 2048) from a throwaway CA made for the run, which the clients verify.
Each load generator (aiohttp or grpc.aio, closed loop) runs in its own
process; on a small machine it shares the CPUs with moc, and TLS costs the
client too, so the figures are of this machine, client and server together.

    python benchmarks/tls_overhead.py [--seconds 3] [--rounds 1] [--key ec|rsa]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import multiprocessing as mp
import os
import signal
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from lease_ops import cpu_seconds, start_moc  # noqa: E402

CLIENTS = (1, 50)
CASES = ("HTTP keep-alive", "HTTP new connection", "gRPC")
SERVED = ("plain", "TLS")


# --- certificates ----------------------------------------------------------------
def make_certificates(folder: Path, key_kind: str) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def new_key() -> Any:
        if key_kind == "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(ec.SECP256R1())

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.UTC)

    def builder(cn: str, issuer: str, key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )

    ca_key, server_key = new_key(), new_key()
    ca = (
        builder("moc bench CA", "moc bench CA", ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    server = (
        builder("moc bench", "moc bench CA", server_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    folder.mkdir(parents=True, exist_ok=True)
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


# --- load generators ----------------------------------------------------------------
def _summary(latencies: list[float], errors: int, seconds: float) -> dict[str, Any]:
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, round(q * (len(latencies) - 1)))] * 1000

    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / seconds,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    }


async def http_load(
    url: str, ca_file: str | None, clients: int, seconds: float, warmup: float, reuse: bool
) -> dict[str, Any]:
    import aiohttp

    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    connector = aiohttp.TCPConnector(limit=0, force_close=not reuse, ssl=verify)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + warmup
        stop = start + seconds

        async def client() -> None:
            nonlocal errors
            while (t0 := time.perf_counter()) < stop:
                try:
                    async with session.get(url) as answer:
                        await answer.read()
                        ok = answer.status == 200
                except (aiohttp.ClientError, OSError):
                    ok = False
                t1 = time.perf_counter()
                if t0 >= start and t1 <= stop:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return _summary(latencies, errors, seconds)


async def grpc_load(
    target: str, ca_pem: bytes | None, clients: int, seconds: float, warmup: float
) -> dict[str, Any]:
    import grpc

    sys.path.insert(0, str(ROOT / "src"))
    from moc.gateway.grpc import modelops_pb2 as pb
    from moc.gateway.grpc import modelops_pb2_grpc as pb_grpc

    if ca_pem:
        channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(ca_pem))
    else:
        channel = grpc.aio.insecure_channel(target)
    latencies: list[float] = []
    errors = 0
    async with channel:
        stub = pb_grpc.ModelOpsStub(channel)
        start = time.perf_counter() + warmup
        stop = start + seconds

        async def client() -> None:
            nonlocal errors
            while (t0 := time.perf_counter()) < stop:
                try:
                    await stub.GetHealth(pb.HealthRequest(), timeout=10)
                    ok = True
                except grpc.RpcError:
                    ok = False
                t1 = time.perf_counter()
                if t0 >= start and t1 <= stop:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return _summary(latencies, errors, seconds)


def _child(conn: Any, case: str, where: str, ca: str | None, clients: int, seconds: float) -> None:
    import uvloop

    if case == "gRPC":
        run = grpc_load(where, Path(ca).read_bytes() if ca else None, clients, seconds, 1.0)
    else:
        run = http_load(where, ca, clients, seconds, 1.0, reuse=case == "HTTP keep-alive")
    conn.send(uvloop.run(run))


def measure(case: str, daemon: dict[str, Any], clients: int, seconds: float) -> dict[str, Any]:
    """One run in a load generator of its own; moc's CPU per request added."""
    where = daemon["grpc"] if case == "gRPC" else f"{daemon['url']}/v1/devices"
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_child, args=(child, case, where, daemon["ca"], clients, seconds)
    )
    proc.start()
    before = cpu_seconds(daemon["pid"])
    result: dict[str, Any] = parent.recv()
    used = cpu_seconds(daemon["pid"]) - before  # the warmup's share too: a slight overstatement
    proc.join()
    served = result["requests"] + result["errors"]
    result["cpu_ms_per_req"] = 1000 * used / served if served else float("nan")
    return result


# --- the run --------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="per case and round")
    parser.add_argument("--rounds", type=int, default=1, help="runs per case and daemon")
    parser.add_argument("--key", choices=("ec", "rsa"), default="ec")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="moc-bench-tls-"))
    pem = make_certificates(tmp / "pki", args.key)
    tls_yaml = f"server: {{tls: {{cert_file: '{pem['cert']}', key_file: '{pem['key']}'}}}}\n"
    plain, plain_http, plain_grpc = start_moc(tmp / "plain", device="plain")
    tls, tls_http, tls_grpc = start_moc(tmp / "tls", tls_yaml, device="tls")
    daemons = {
        "plain": {
            "url": f"http://127.0.0.1:{plain_http}",
            "grpc": f"127.0.0.1:{plain_grpc}",
            "ca": None,
            "pid": plain.pid,
        },
        "TLS": {
            "url": f"https://127.0.0.1:{tls_http}",
            "grpc": f"127.0.0.1:{tls_grpc}",
            "ca": str(pem["ca"]),
            "pid": tls.pid,
        },
    }
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    try:
        for case in CASES:
            for clients in CLIENTS:
                for turn in range(args.rounds):
                    for served in SERVED if turn % 2 == 0 else SERVED[::-1]:
                        result = measure(case, daemons[served], clients, args.seconds)
                        runs.setdefault((case, clients, served), []).append(result)
                print(f"done: {case}, {clients} clients", file=sys.stderr, flush=True)
    finally:
        for proc in (plain, tls):
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)

    def fig(case: str, clients: int, served: str, name: str) -> float:
        values = [r[name] for r in runs[(case, clients, served)]]
        return float(sum(values) if name == "errors" else statistics.median(values))

    print(
        f"\nmachine: {os.cpu_count()} CPUs, {sys.platform}; key {args.key}; "
        f"{args.seconds:g}s per case, {args.rounds} round(s), medians\n"
    )
    print(
        "| case | clients | req/s plain | req/s TLS | TLS/plain | p50 ms plain | p50 ms TLS "
        "| p99 ms plain | p99 ms TLS | moc CPU ms/req plain | moc CPU ms/req TLS | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    table = []
    for case in CASES:
        for clients in CLIENTS:
            row = {
                served: {
                    k: fig(case, clients, served, k)
                    for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req", "errors")
                }
                for served in SERVED
            }
            p, t = row["plain"], row["TLS"]
            print(
                f"| {case} | {clients} | {p['rps']:.0f} | {t['rps']:.0f} | "
                f"{t['rps'] / p['rps']:.2f} | {p['p50_ms']:.2f} | {t['p50_ms']:.2f} | "
                f"{p['p99_ms']:.2f} | {t['p99_ms']:.2f} | {p['cpu_ms_per_req']:.3f} | "
                f"{t['cpu_ms_per_req']:.3f} | {p['errors'] + t['errors']:.0f} |"
            )
            table.append({"case": case, "clients": clients, **row})
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
