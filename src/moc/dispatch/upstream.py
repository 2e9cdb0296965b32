"""Sending a request to a model's backend, on one pooled aiohttp session.

aiohttp, not httpx: measured side by side in a Starlette proxy on the same
backend (``benchmarks/upstream_client.py``, figures in docs/benchmarks.md),
aiohttp adds less latency per request and gives more requests per CPU second.

Response bytes are handed on as they arrive, never decoded here. Errors from
aiohttp are translated at this boundary into :class:`UpstreamFailed`, which
says whether the backend had started to answer: only a request it never
answered may be retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson

from moc.backends.runtime import Handle

_JSON = {"content-type": "application/json"}


def error_message(body: bytes) -> str:
    """A backend's error body (OpenAI's envelope, or anything else) as one message."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")[:500]
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        return str(err.get("message", err))
    return str(err or doc)[:500]


class UpstreamFailed(Exception):
    """The backend could not be reached or broke off.

    ``answered``: it had begun its answer. ``dropped``: an open connection was
    closed under the request (as opposed to a connection that was refused).
    ``timed_out``: the backend went silent for longer than the timeout; it may
    still be working on the request, so the request must not be sent again.
    """

    def __init__(
        self, message: str, *, answered: bool, dropped: bool = False, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.answered = answered
        self.dropped = dropped
        self.timed_out = timed_out


class Reply:
    """A backend's response whose body has not been read yet."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.content_type = response.headers.get("content-type", "application/json")

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamFailed(
                f"the backend broke off its answer: {exc!r}",
                answered=True,
                timed_out=isinstance(exc, TimeoutError),
            ) from exc

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamFailed(
                f"the backend broke off its stream: {exc!r}",
                answered=True,
                timed_out=isinstance(exc, TimeoutError),
            ) from exc

    def close(self) -> None:
        """Done with it: a fully read body returns the connection to the pool;
        an unfinished one closes it, which tells the backend to stop."""
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class Upstream:
    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_s)
        self._pooled: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None

    def _session(self, fresh: bool) -> aiohttp.ClientSession:
        # Created on the running loop, on first use.
        if fresh:
            if self._fresh is None:
                self._fresh = self._new(aiohttp.TCPConnector(force_close=True))
            return self._fresh
        if self._pooled is None:
            self._pooled = self._new(aiohttp.TCPConnector(limit=0, enable_cleanup_closed=True))
        return self._pooled

    def _new(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def send(self, handle: Handle, path: str, body: bytes) -> Reply:
        """POST ``body`` to the backend's ``path`` (under its /v1 base).

        A pooled keep-alive connection the backend had already closed
        (llama.cpp's server closes one after a stream) drops the request
        before any answer; it is sent once more, at once, on a new connection.
        Nothing of it can have reached the backend's client, so that is safe.
        """
        try:
            return await self._post(handle, path, body, fresh=False)
        except UpstreamFailed as exc:
            if not exc.dropped:
                raise
        return await self._post(handle, path, body, fresh=True)

    async def _post(self, handle: Handle, path: str, body: bytes, *, fresh: bool) -> Reply:
        headers = _JSON
        if handle.api_key:
            headers = {**_JSON, "authorization": f"Bearer {handle.api_key}"}
        try:
            response = await self._session(fresh).post(
                handle.base_url + path, data=body, headers=headers, allow_redirects=False
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            dropped = isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)
            refused = isinstance(exc, aiohttp.ClientConnectorError)
            raise UpstreamFailed(
                f"the backend of {handle.name} did not answer: {exc!r}",
                answered=False,
                dropped=dropped and not refused,
                timed_out=isinstance(exc, TimeoutError),
            ) from exc
        return Reply(response)

    async def close(self) -> None:
        for session in (self._pooled, self._fresh):
            if session is not None:
                await session.close()
