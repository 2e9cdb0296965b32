"""How the learning side calls moc's own gateway over loopback when moc serves TLS.

An index embedded by a model moc serves is built (in a job's child) and queried
(in the daemon) through moc's own ``/v1/embeddings`` at ``https://127.0.0.1:<port>``.
The certificate is issued for the host's name, not for 127.0.0.1, so the usual
check cannot pass. These calls pin the certificate instead: they trust only the
server's own certificate, the first in ``server.tls.cert_file``, with hostname
checking off. That still proves the peer holds moc's key, so the texts go to
this moc and nothing else that might listen on that port (``verify=False``
would send them to whatever answers there, say after moc stopped), and it
needs no CA: a self-signed certificate works as well. After a reload the pin
is read again from the file (:meth:`SelfTls.context` on each new client).

Under mTLS (``client_ca_file``) moc would need a client certificate of its own
for these calls, which it does not have: they fail at once, saying so.

Imported by the daemon and the child alike: standard library only.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import asdict, dataclass
from typing import Any

_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)

MTLS_REFUSED = (
    "moc requires client certificates (server.tls.client_ca_file) and its own calls to "
    "its /v1/embeddings have none: an index embedded by a model moc serves can be neither "
    "built nor queried under mTLS (use a sentence-transformers embedder, or serve "
    "without client_ca_file)"
)


class SelfCallRefused(RuntimeError):
    """A call to moc's own gateway that cannot be made (see MTLS_REFUSED)."""


@dataclass(frozen=True)
class SelfTls:
    """What a loopback call to moc needs under TLS (JobFile.moc_tls, as a dict)."""

    cert_file: str  # server.tls.cert_file, an absolute path: the pin is its first certificate
    client_cert_required: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> SelfTls | None:
        return None if raw is None else cls(**raw)

    def context(self) -> ssl.SSLContext:
        """A client context that trusts moc's own certificate and nothing else.
        SelfCallRefused under mTLS; OSError when the file cannot be read."""
        if self.client_cert_required:
            raise SelfCallRefused(MTLS_REFUSED)
        with open(self.cert_file, "rb") as f:
            found = _CERTIFICATE.search(f.read())
        if found is None:
            raise OSError(f"{self.cert_file}: holds no PEM certificate")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no system CAs: the pin only
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = False  # 127.0.0.1, not the name the certificate is for
        # The pinned certificate is a trust anchor although no CA is beside it.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_verify_locations(cadata=found.group(0).decode("ascii"))
        return context


def verify(tls: SelfTls | None) -> ssl.SSLContext | bool:
    """httpx's ``verify`` for a call to moc: the pinned context under TLS."""
    return True if tls is None else tls.context()


def bearer(key: str) -> dict[str, str]:
    """The header a self-call shows moc's own key in, when auth is on."""
    return {"authorization": f"Bearer {key}"}
