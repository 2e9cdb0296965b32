"""A cluster over TLS all the way: a real ``redis-server`` on its TLS port
(``rediss://``), two nodes serving HTTPS with certificates the test makes,
and a request forwarded from one to the other over HTTPS, checked against
the cluster's CA (``cluster.ca_file``); with mTLS, the forwarding node shows
its client certificate (``cluster.cert_file``)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster_support import Node, RedisServer, start_all, stop_all, view
from tests.integration.support import chat, spec
from tests.integration.test_tls import Pki

pytestmark = pytest.mark.timeout(120)


class TlsRedis(RedisServer):
    """``redis-server`` listening on TLS only, with the test CA's certificate."""

    def __init__(self, folder: Path, pki: Pki) -> None:
        super().__init__(folder)
        self.pki = pki

    def start(self, timeout: float = 10.0) -> RedisServer:
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(
            [
                self.binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                "--tls-cert-file", str(self.pki.cert_file), "--tls-key-file", str(self.pki.key_file),
                "--tls-ca-cert-file", str(self.pki.ca_file), "--tls-auth-clients", "no",
                "--save", "", "--appendonly", "no", "--dir", str(self.folder),
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        for _ in range(int(timeout / 0.05)):
            if self.proc.poll() is not None:
                break
            if self.ping():
                return self
            time.sleep(0.05)
        pytest.skip(f"redis-server does not serve TLS here:\n{self.log()[-2000:]}")

    def ping(self) -> bool:
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw,
                self.pki.trust().wrap_socket(raw, server_hostname="127.0.0.1") as sock,
            ):
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except (OSError, ssl.SSLError):
            return False


@pytest.fixture(params=[False, True], ids=["tls", "mtls"])
def tls_pair(
    request: pytest.FixtureRequest, tmp_path: Path, tiny_models: dict[str, Path]
) -> Iterator[tuple[list[Node], Pki]]:
    """Two nodes on HTTPS; with mTLS each asks for a client certificate, and
    shows the others its own (cluster.cert_file)."""
    mutual: bool = request.param
    pki = Pki.make(tmp_path / "pki")
    server = TlsRedis(tmp_path / "redis", pki).start()
    url = f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={pki.ca_file}"
    cluster = {"ca_file": str(pki.ca_file)}
    if mutual:
        cluster |= {"cert_file": str(pki.client_cert_file), "key_file": str(pki.client_key_file)}
    nodes = [
        Node(tmp_path, name, url, [spec(tiny_models, model)], server=pki.tls_config(mutual),
             cluster=cluster)
        for name, model in (("n1", "a"), ("n2", "b"))
    ]  # fmt: skip
    for node in nodes:
        node.verify = pki.trust(client=mutual)
    try:
        yield start_all(nodes), pki
    finally:
        stop_all(nodes)
        server.stop()


def test_nodes_speak_tls_to_redis_and_to_each_other(tls_pair: tuple[list[Node], Pki]) -> None:
    (n1, n2), _ = tls_pair
    found = view(n1)
    assert found["redis"] == "ok"
    urls = {n["name"]: n["url"] for n in found["nodes"]}
    assert urls["n2"].startswith("https://"), urls
    with n2.client() as http:
        assert http.post("/v1/models/b/load").status_code == 200
    with n1.client() as http:
        answer = http.post("/v1/chat/completions", json=chat("b"))
    assert (answer.status_code, answer.headers["x-moc-node"]) == (200, "n2"), answer.text
