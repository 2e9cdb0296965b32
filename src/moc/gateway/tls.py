"""TLS for HTTP and gRPC from ``server.tls``, reloaded on SIGHUP.

One :class:`ServerTls` serves both listeners. HTTP gets a single
``ssl.SSLContext`` for the life of the daemon: a reload loads the new
certificate into that same context, so handshakes after it present the new
certificate while connections already open keep theirs (OpenSSL copies the
certificate and key into each connection when it starts). gRPC gets dynamic
credentials whose fetcher, asked at each new handshake, hands over the new
configuration once after a reload.

The files are read once per (re)load; what is read is checked (a chain of PEM
certificates, an unencrypted key that matches the first of them, the client
CAs) and tried on a scratch context before anything live changes, so a bad or
half-written file is a :class:`~moc.errors.ConfigError` naming it and the
certificate in use stays in use, for HTTP and gRPC alike. Both listeners are
given exactly the bytes that were checked.

mTLS (``client_ca_file``): HTTP and gRPC both require a client certificate
signed by one of those CAs. A reload replaces gRPC's client CAs; HTTP's are
added to (OpenSSL's store of trusted certificates only grows), so a CA taken
out of the file is still trusted on HTTP until moc restarts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from moc.config import TlsConfig
from moc.errors import ConfigError
from moc.telemetry.logs import event

log = logging.getLogger(__name__)

_PEM = serialization.Encoding.PEM
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


@dataclass(frozen=True)
class Certificate:
    """What one (re)load read and checked: the bytes both listeners are given."""

    chain: bytes  # the certificates of cert_file, as PEM, the server's own first
    key: bytes  # key_file as read
    client_ca: bytes | None  # the certificates of client_ca_file, as PEM
    subject: str
    serial: str
    not_after: str

    def describe(self) -> dict[str, Any]:
        return {"subject": self.subject, "serial": self.serial, "not_after": self.not_after}


class ServerTls:
    """The server side of TLS: an ``SSLContext`` for HTTP, credentials for gRPC,
    and :meth:`reload`. Raises ConfigError when the files are missing or bad."""

    def __init__(self, config: TlsConfig) -> None:
        if config.cert_file is None or config.key_file is None:
            raise ValueError("ServerTls needs server.tls.cert_file and key_file")
        self._cert_file = config.cert_file.expanduser()
        self._key_file = config.key_file.expanduser()
        self._ca_file = config.client_ca_file.expanduser() if config.client_ca_file else None
        self._lock = threading.Lock()  # the gRPC fetcher runs on gRPC's threads
        self._generation = 0
        self._current = self._read()
        self._http = _new_context(self.mutual)
        _load_into(self._http, self._current)

    @property
    def mutual(self) -> bool:
        """Clients must present a certificate (mTLS)."""
        return self._ca_file is not None

    @property
    def cert_file(self) -> Path:
        return self._cert_file

    @property
    def current(self) -> Certificate:
        return self._current

    def http_context(self) -> ssl.SSLContext:
        """The one context HTTP serves with; reloads change it in place."""
        return self._http

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials for ``add_secure_port``: each set built here picks up
        every later :meth:`reload` at its next handshake."""
        with self._lock:
            seen = self._generation
            first = self._current

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # Called by gRPC core before each handshake: None keeps what it has.
            nonlocal seen
            try:
                with self._lock:
                    if seen == self._generation:
                        return None
                    seen, latest = self._generation, self._current
                return _grpc_configuration(latest)
            except Exception as exc:  # never into gRPC core: it would keep the old one anyway
                event(log, logging.ERROR, "tls: no new certificate for gRPC", error=repr(exc))
                return None

        return grpc.dynamic_ssl_server_credentials(
            _grpc_configuration(first),
            fetch,  # type: ignore[arg-type]  # the stubs miss that None means "no change"
            require_client_authentication=self.mutual,
        )

    def reload(self) -> Certificate:
        """Read the files again and serve what they hold to new connections.
        ConfigError (naming the file) leaves the certificate in use as it is."""
        fresh = self._read()
        try:
            _load_into(self._http, fresh)  # checked on a scratch context: does not fail
        except (ssl.SSLError, OSError, ValueError) as exc:  # pragma: no cover - see _read
            raise ConfigError(f"server.tls: the certificate could not be loaded: {exc}") from exc
        with self._lock:
            self._current = fresh
            self._generation += 1
        return fresh

    # --- reading and checking ------------------------------------------------------
    def _read(self) -> Certificate:
        chain = _certificates("server.tls.cert_file", self._cert_file)
        key_pem = _bytes("server.tls.key_file", self._key_file)
        key = _private_key(self._key_file, key_pem)
        mine = chain[0]
        if _spki(key.public_key()) != _spki(mine.public_key()):
            raise ConfigError(
                f"server.tls.key_file {self._key_file}: not the key of the certificate "
                f"in {self._cert_file} (subject {mine.subject.rfc4514_string()})"
            )
        client_ca = None
        if self._ca_file is not None:
            client_ca = _pem(_certificates("server.tls.client_ca_file", self._ca_file))
        loaded = Certificate(
            chain=_pem(chain),
            key=key_pem,
            client_ca=client_ca,
            subject=mine.subject.rfc4514_string(),
            serial=f"{mine.serial_number:x}",
            not_after=mine.not_valid_after_utc.isoformat(),
        )
        try:  # what OpenSSL itself refuses (an unsupported key type, say) is caught here
            _load_into(_new_context(self.mutual), loaded)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                f"server.tls: {self._cert_file} and {self._key_file} were refused: {exc}"
            ) from exc
        if mine.not_valid_after_utc < dt.datetime.now(dt.UTC):
            event(log, logging.WARNING, "tls: the certificate has expired",
                  file=str(self._cert_file), not_after=loaded.not_after)  # fmt: skip
        return loaded


def _bytes(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{setting} {path}: cannot read it: {exc.strerror or exc}") from exc


def _certificates(setting: str, path: Path) -> list[x509.Certificate]:
    data = _bytes(setting, path)
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        problem = (
            "a PEM certificate in it is damaged"
            if b"-----BEGIN CERTIFICATE-----" in data
            else "holds no PEM certificate"
        )
        raise ConfigError(f"{setting} {path}: {problem}") from exc
    if not found:  # pragma: no cover - cryptography raises for none
        raise ConfigError(f"{setting} {path}: holds no PEM certificate")
    return found


def _private_key(path: Path, data: bytes) -> Any:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # encrypted: there is no one to type the password
        raise ConfigError(
            f"server.tls.key_file {path}: the key is encrypted; moc reads unencrypted keys only"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"server.tls.key_file {path}: not a PEM private key (or not of a kind moc reads)"
        ) from exc


def _spki(public_key: Any) -> bytes:
    data: bytes = public_key.public_bytes(_PEM, _SPKI)
    return data


def _pem(certificates: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(_PEM) for c in certificates)


def _new_context(mutual: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])  # what uvicorn's httptools speaks
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _no_password() -> str:
    raise ValueError("the key is encrypted")  # never OpenSSL's prompt on a terminal


def _load_into(context: ssl.SSLContext, loaded: Certificate) -> None:
    with _as_files(loaded.chain, loaded.key) as (chain, key):
        context.load_cert_chain(chain, key, password=_no_password)
    if loaded.client_ca is not None:
        context.load_verify_locations(cadata=loaded.client_ca.decode("ascii"))


@contextlib.contextmanager
def _as_files(*blobs: bytes) -> Iterator[list[str]]:
    """``blobs`` as paths for ``load_cert_chain``, which reads only files: the
    bytes already checked, not the files again (which may have changed since).
    In memory where the system allows (a key never touches a disk), else in a
    private temporary folder, removed at once."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fds = [memfd("moc-tls", os.MFD_CLOEXEC) for _ in blobs]
        try:
            for fd, blob in zip(fds, blobs, strict=True):
                view = memoryview(blob)
                while view:
                    view = view[os.write(fd, view) :]
            yield [f"/proc/self/fd/{fd}" for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="moc-tls-") as folder:  # 0700
        paths = []
        for i, blob in enumerate(blobs):
            path = os.path.join(folder, str(i))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(blob)
            paths.append(path)
        yield paths


def _grpc_configuration(loaded: Certificate) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(loaded.key, loaded.chain)], root_certificates=loaded.client_ca
    )
