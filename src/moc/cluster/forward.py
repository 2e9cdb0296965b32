"""A request sent on to the node that serves it, its answer streamed back
as it arrives, status and headers as that node gave them (``x-moc-node``
names it).

A forwarded request carries ``x-moc-forwarded-by`` (the node it came from,
so it is never forwarded again) and the cluster's secret, which the other
node checks: nodes trust each other by the secret, never by network
position. With auth on it also carries the caller as the first node
authenticated it (``x-moc-caller``), so a key made on one node works through
any; the first node counted it against its limits.
"""

from __future__ import annotations

import ssl
import time

import aiohttp
from multidict import CIMultiDict
from starlette.types import Scope, Send

FORWARDED_BY = "x-moc-forwarded-by"
SECRET = "x-moc-cluster-secret"
CALLER = "x-moc-caller"
NODE = "x-moc-node"
# Not passed on: hop-by-hop headers, and what the client of this hop sets.
_DROP = {
    b"host", b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
    b"te", b"trailer", b"upgrade", b"proxy-authorization", b"proxy-connection",
    FORWARDED_BY.encode(), SECRET.encode(), CALLER.encode(),
}  # fmt: skip


# Not passed back: the same, what this node's server writes itself, and the
# other node's x-ratelimit-* (the caller was counted here, where it came in).
_DROP_ANSWER = _DROP | {b"date", b"server"}


class Unreachable(Exception):
    """The node did not answer: nothing was sent back to the client yet.
    ``sent``: the request may have reached it (it broke off, or was too
    slow, after the connection was made); False: it surely did not."""

    def __init__(self, message: str, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


# Errors that say the request never left: the connection was not made.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def _unreachable(url: str, exc: Exception) -> Unreachable:
    return Unreachable(f"{url}: {exc!r}", sent=not isinstance(exc, _NOT_SENT))


class Forwarder:
    """One pooled keep-alive session to the other nodes, shared by all
    forwards: aiohttp, as for backends (:mod:`moc.dispatch.upstream` says why:
    httpx adds about a millisecond a request)."""

    def __init__(self, node: str, secret: str, tls: ssl.SSLContext | None = None) -> None:
        self._node = node
        self._secret = secret
        self._tls = tls  # how the other nodes' HTTPS is checked; None: the system's CAs
        self._session: aiohttp.ClientSession | None = None  # made on the loop, at first use

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0, enable_cleanup_closed=True, ssl=self._tls or True
                ),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=1, sock_read=600),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def headers(self, scope: Scope, caller: str | None) -> list[tuple[str, str]]:
        out = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.lower() not in _DROP
        ]
        out.append((FORWARDED_BY, self._node))
        out.append((SECRET, self._secret))
        if caller is not None:
            out.append((CALLER, caller))
        return out

    async def send(
        self,
        url: str,
        scope: Scope,
        body: bytes,
        send: Send,
        caller: str | None = None,
    ) -> tuple[int, float]:
        """Ask the node at ``url`` and stream its answer to ``send``; (status,
        seconds until its answer began). Unreachable when the node could not
        be reached or broke off before answering (nothing sent yet)."""
        t0 = time.monotonic()
        try:
            response = await self._pool().request(
                scope["method"],
                _target(url, scope),
                headers=CIMultiDict(self.headers(scope, caller)),
                data=body,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(url, exc) from exc
        began = time.monotonic() - t0
        try:
            headers: list[tuple[bytes, bytes]] = [
                (k, v)
                for k, v in response.raw_headers
                if k.lower() not in _DROP_ANSWER and not k.lower().startswith(b"x-ratelimit-")
            ]
            await send({"type": "http.response.start", "status": response.status,
                        "headers": headers})  # fmt: skip
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.release()
        return response.status, began

    async def fetch(
        self, url: str, scope: Scope, caller: str | None, timeout_s: float
    ) -> tuple[int, bytes]:
        """Ask the node at ``url`` the same bodiless request (a listing), whole:
        (status, body). Unreachable when it cannot answer within ``timeout_s``."""
        try:
            async with self._pool().request(
                scope["method"],
                _target(url, scope),
                headers=CIMultiDict(self.headers(scope, caller)),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(url, exc) from exc


def _target(url: str, scope: Scope) -> str:
    target: str = url.rstrip("/") + scope["path"]
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    return target


def header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope["headers"]:
        if key == wanted:
            return bytes(value).decode("latin-1")
    return None


def is_forwarded(scope: Scope) -> bool:
    return header(scope, FORWARDED_BY) is not None
