"""TLS on HTTP and gRPC against a real ``moc serve``: verified against a CA,
mTLS, certificates reloaded on SIGHUP without dropping open connections, a
bad reload that keeps the old certificate, a bad file at startup, and moc's
calls to itself (an index embedded by a model moc serves) under TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from moc.gateway.grpc import modelops_pb2 as pb
from moc.gateway.grpc import modelops_pb2_grpc as pb_grpc
from moc.learning.worker.selfcall import SelfTls
from tests.conftest import MIB, MocProcess, free_port
from tests.integration.support import Factory, spec, wait_for
from tests.integration.test_learning import LEARNING, finished, submit

Key = ec.EllipticCurvePrivateKey


# --- certificates ----------------------------------------------------------------------
def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject: str, issuer: x509.Name, key: Key) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: Key

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def cn(self) -> str:
        return cn_of(self.cert)


def cn_of(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def make_ca(cn: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(cn, _name(cn), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(ca: Issued, cn: str, *, client: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        _builder(cn, ca.cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if not client:
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as files."""

    folder: Path
    ca: Issued
    server: Issued
    client: Issued

    @classmethod
    def make(cls, folder: Path) -> Pki:
        ca = make_ca("moc test CA")
        pki = cls(folder, ca, issue(ca, "moc-server-1"), issue(ca, "moc-client", client=True))
        folder.mkdir(parents=True, exist_ok=True)
        pki.ca_file.write_bytes(ca.cert_pem)
        pki.serve(pki.server)
        pki.client_cert_file.write_bytes(pki.client.cert_pem)
        pki.client_key_file.write_bytes(pki.client.key_pem)
        return pki

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.folder / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.folder / "server.key"

    @property
    def client_cert_file(self) -> Path:
        return self.folder / "client.pem"

    @property
    def client_key_file(self) -> Path:
        return self.folder / "client.key"

    def serve(self, issued: Issued) -> None:
        """Write ``issued`` into the server's files (the same files: as a renewal does)."""
        self.cert_file.write_bytes(issued.cert_pem)
        self.key_file.write_bytes(issued.key_pem)

    def tls_config(self, mutual: bool = False) -> dict[str, Any]:
        tls = {"cert_file": str(self.cert_file), "key_file": str(self.key_file)}
        if mutual:
            tls["client_ca_file"] = str(self.ca_file)
        return {"tls": tls}

    def trust(self, *cas: Issued, client: bool = False) -> ssl.SSLContext:
        """A client context trusting ``cas`` (this CA by default), with the
        client certificate when ``client``."""
        pem = b"".join(ca.cert_pem for ca in cas or (self.ca,))
        context = ssl.create_default_context(cadata=pem.decode())
        if client:
            context.load_cert_chain(self.client_cert_file, self.client_key_file)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.make(tmp_path / "pki")


def serve_tls(moc_factory: Factory, pki: Pki, mutual: bool = False, **sections: Any) -> MocProcess:
    proc = moc_factory({"server": pki.tls_config(mutual), **sections})
    proc.verify = pki.trust(client=mutual)
    return proc.start()


# --- clients ---------------------------------------------------------------------------
def served_cert(port: int, trust: ssl.SSLContext) -> x509.Certificate:
    """The certificate a new connection to 127.0.0.1:``port`` is shown."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        trust.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@dataclass
class Grpc:
    target: str
    root: bytes
    client: Issued | None = None

    def channel(self) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.root,
            private_key=self.client.key_pem if self.client else None,
            certificate_chain=self.client.cert_pem if self.client else None,
        )
        # A channel of its own connection: gRPC otherwise shares connections
        # between channels, and a test of a new handshake might get an old one.
        return grpc.secure_channel(
            self.target, credentials, options=[("grpc.use_local_subchannel_pool", 1)]
        )

    def health(self) -> str:
        with self.channel() as channel:
            return health_on(channel)


def health_on(channel: grpc.Channel) -> str:
    reply = pb_grpc.ModelOpsStub(channel).GetHealth(pb.HealthRequest(), timeout=5)
    status: str = reply.status
    return status


@pytest.fixture
def channels() -> Iterator[list[grpc.Channel]]:
    opened: list[grpc.Channel] = []
    yield opened
    for channel in opened:
        channel.close()


def hangup(proc: MocProcess, event: str, count: int = 1) -> None:
    """SIGHUP, then wait for the ``count``-th ``event`` in moc's log."""
    proc.signal(signal.SIGHUP)
    wait_for(lambda: proc.log().count(f'"event":"{event}"') >= count, timeout=10)


# --- tests -----------------------------------------------------------------------------
def test_https_grpcs_and_no_plain_http(moc_factory: Factory, pki: Pki) -> None:
    proc = serve_tls(moc_factory, pki)
    assert proc.url.startswith("https://")
    health = httpx.get(f"{proc.url}/health", verify=pki.trust(), timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert cn_of(served_cert(proc.http_port, pki.trust())) == "moc-server-1"
    with pytest.raises(httpx.HTTPError):  # not a CA this client trusts
        httpx.get(f"{proc.url}/health", timeout=5)
    with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port
        httpx.get(f"http://127.0.0.1:{proc.http_port}/health", timeout=5)
    assert Grpc(proc.grpc_target, pki.ca.cert_pem).health() == "ok"
    with grpc.insecure_channel(proc.grpc_target) as plain, pytest.raises(grpc.RpcError):
        health_on(plain)
    ready = next(line for line in proc.log().splitlines() if '"moc ready"' in line)
    assert f'"http":"https://127.0.0.1:{proc.http_port}"' in ready
    assert f'"grpc":"grpcs://127.0.0.1:{proc.grpc_port}"' in ready
    # moc's calls to itself pin its own certificate: no hostname, no CA needed;
    # another certificate of the same CA is not it.
    pinned = SelfTls(str(pki.cert_file)).context()
    assert httpx.get(f"https://localhost:{proc.http_port}/health", verify=pinned).status_code == 200
    other = pki.folder / "other.pem"
    other.write_bytes(issue(pki.ca, "moc-server-1").cert_pem)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{proc.url}/health", verify=SelfTls(str(other)).context())


def test_mtls_refuses_a_client_without_a_certificate(moc_factory: Factory, pki: Pki) -> None:
    proc = serve_tls(moc_factory, pki, mutual=True)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{proc.url}/health", verify=pki.trust(), timeout=5)
    answer = httpx.get(f"{proc.url}/health", verify=pki.trust(client=True), timeout=5)
    assert answer.status_code == 200
    with pytest.raises(grpc.RpcError) as refused:
        Grpc(proc.grpc_target, pki.ca.cert_pem).health()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert Grpc(proc.grpc_target, pki.ca.cert_pem, pki.client).health() == "ok"
    stranger = issue(make_ca("another CA"), "stranger", client=True)
    with pytest.raises(grpc.RpcError):
        Grpc(proc.grpc_target, pki.ca.cert_pem, stranger).health()
    assert '"tls":"mutual"' in proc.log()


def test_sighup_serves_a_new_certificate_and_keeps_open_connections(
    moc_factory: Factory, pki: Pki, channels: list[grpc.Channel]
) -> None:
    proc = serve_tls(moc_factory, pki)
    second_ca = make_ca("moc test CA 2")
    both = pki.trust(pki.ca, second_ca)
    old_grpc = Grpc(proc.grpc_target, pki.ca.cert_pem)
    open_channel = old_grpc.channel()
    channels.append(open_channel)
    assert health_on(open_channel) == "ok"  # connected, with the first certificate

    with httpx.Client(base_url=proc.url, verify=both, timeout=10) as http:
        lease = http.post("/v1/leases", json={"bytes": MIB, "ttl_s": 30}).json()
    with (
        httpx.Client(base_url=proc.url, verify=both, timeout=10) as streamer,
        streamer.stream("GET", f"/v1/leases/{lease['id']}/events") as events,
    ):
        assert events.status_code == 200
        tls_object = events.extensions["network_stream"].get_extra_info("ssl_object")
        streamed_with = x509.load_der_x509_certificate(tls_object.getpeercert(True))
        assert cn_of(streamed_with) == "moc-server-1"

        renewed = issue(second_ca, "moc-server-2")
        pki.serve(renewed)
        hangup(proc, "tls reloaded")

        now_served = served_cert(proc.http_port, both)
        assert cn_of(now_served) == "moc-server-2"
        assert now_served.serial_number == renewed.cert.serial_number
        assert Grpc(proc.grpc_target, second_ca.cert_pem).health() == "ok"
        with pytest.raises(grpc.RpcError):  # a new connection: the new certificate
            old_grpc.health()
        assert health_on(open_channel) == "ok"  # the connection made before: still open

        with httpx.Client(base_url=proc.url, verify=both, timeout=10) as http:
            assert http.delete(f"/v1/leases/{lease['id']}").status_code == 200
        seen = [line for line in events.iter_lines() if line.startswith("event:")]
    assert seen[-1] == "event: ended"  # the stream opened before the reload ran to its end
    reloaded = next(line for line in proc.log().splitlines() if '"tls reloaded"' in line)
    assert json.loads(reloaded)["subject"] == "CN=moc-server-2"
    assert proc.stop() == 0, proc.log()


def test_a_bad_reload_keeps_the_certificate_in_use(moc_factory: Factory, pki: Pki) -> None:
    proc = serve_tls(moc_factory, pki)
    pki.key_file.write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    hangup(proc, "tls reload failed")
    failed = json.loads(
        next(line for line in proc.log().splitlines() if '"tls reload failed"' in line)
    )
    assert failed["level"] == "error"
    assert failed["error"].startswith(f"server.tls.key_file {pki.key_file}: not a PEM private key")
    assert failed["kept"]["subject"] == "CN=moc-server-1"

    stranger = issue(pki.ca, "moc-server-2")  # a good key, of another certificate
    pki.key_file.write_bytes(stranger.key_pem)
    hangup(proc, "tls reload failed", count=2)
    assert f"server.tls.key_file {pki.key_file}: not the key of the certificate" in proc.log()

    assert cn_of(served_cert(proc.http_port, pki.trust())) == "moc-server-1"
    assert httpx.get(f"{proc.url}/health", verify=pki.trust()).status_code == 200
    assert Grpc(proc.grpc_target, pki.ca.cert_pem).health() == "ok"
    pki.serve(stranger)  # then put right: the next SIGHUP takes it
    hangup(proc, "tls reloaded")
    assert cn_of(served_cert(proc.http_port, pki.trust())) == "moc-server-2"


def test_a_missing_certificate_stops_serve_naming_the_file(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "nowhere" / "server.pem"
    config = tmp_path / "moc.yaml"
    config.write_text(
        json.dumps(
            {
                "devices": {"nvml": "off", "host": [{"id": "host", "size": "64MiB"}]},
                "server": {"tls": {"cert_file": str(missing), "key_file": str(pki.key_file)}},
            }
        )
    )
    flags = ["--data-dir", str(tmp_path / "d"), "--http-port", str(free_port()), "--grpc-port", "0"]
    result = subprocess.run(
        [sys.executable, "-m", "moc", "serve", "--config", str(config), *flags],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result.stderr
    assert f"server.tls.cert_file {missing}: cannot read it: No such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_sighup_without_tls_has_nothing_to_reload(moc_factory: Factory) -> None:
    proc = moc_factory().start()
    hangup(proc, "SIGHUP: nothing to reload (server.tls is not set)")
    assert httpx.get(f"{proc.url}/health").status_code == 200
    assert proc.stop() == 0, proc.log()


# --- moc's calls to itself ----------------------------------------------------------------
DOCS = b"".join(
    json.dumps({"id": f"d{i}", "source": f"s{i}", "text": f"document number {i} " * 20}).encode()
    + b"\n"
    for i in range(6)
)
VIA_MOC = {"name": "via-moc", "chunk_size": 200, "embedder": {"kind": "moc", "model": "b"}}


def embedder_moc(
    moc_factory: Factory, tiny_models: dict[str, Path], pki: Pki, mutual: bool
) -> MocProcess:
    embedder = spec(tiny_models, "b", args=["--embeddings", "--pooling", "mean"])
    return serve_tls(
        moc_factory,
        pki,
        mutual,
        devices={"host": [{"id": "host", "size": "1GiB"}]},
        models=[embedder],
        learning=LEARNING,
    )


def index_through_moc(http: httpx.Client) -> None:
    """An index built, then queried, with model b that moc serves: both through
    moc's own /v1/embeddings (b is unloaded between, so the query loads it)."""
    assert http.post("/v1/datasets", params={"name": "docs"}, content=DOCS).status_code == 201
    done = finished(http, submit(http, kind="index", dataset="docs", params=VIA_MOC)["id"])
    assert done["status"] == "complete", done["error"]
    http.post("/v1/models/b/unload")
    answer = http.post("/v1/indexes/via-moc/query", json={"query": "document number 3"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"]


@pytest.mark.usefixtures("no_stray_runtimes")
def test_an_index_embedded_through_moc_itself_under_tls(
    moc_factory: Factory, tiny_models: dict[str, Path], pki: Pki
) -> None:
    proc = embedder_moc(moc_factory, tiny_models, pki, mutual=False)
    with httpx.Client(base_url=proc.url, verify=pki.trust(), timeout=60) as http:
        index_through_moc(http)


@pytest.mark.usefixtures("no_stray_runtimes")
def test_under_mtls_an_index_through_moc_itself_fails_saying_why(
    moc_factory: Factory, tiny_models: dict[str, Path], pki: Pki
) -> None:
    proc = embedder_moc(moc_factory, tiny_models, pki, mutual=True)
    with httpx.Client(base_url=proc.url, verify=pki.trust(client=True), timeout=60) as http:
        assert http.post("/v1/datasets", params={"name": "docs"}, content=DOCS).status_code == 201
        done = finished(
            http, submit(http, kind="index", dataset="docs", params=VIA_MOC)["id"], timeout=30
        )
        assert done["status"] == "failed"
        assert "moc requires client certificates" in done["error"], done["error"]
