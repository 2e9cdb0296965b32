"""The SDK's API key: sent as a bearer token on every request (plain calls,
server-sent events, streamed uploads) by both clients, taken from
``MOC_API_KEY`` by default, and never shown; and the errors authentication
answers with, rebuilt as their classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import moc
from moc import errors
from moc.sdk.wire import auth_headers, check

KEY = "moc_0123456789ab_" + "s" * 43


def envelope(status: int, code: str, message: str, **details: Any) -> httpx.Response:
    body = {"error": {"message": message, "type": "x", "code": code, "param": None,
                      "src": "moc", "details": details}}  # fmt: skip
    return httpx.Response(status, json=body)


def test_the_key_given_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOC_API_KEY", "from-the-environment-0123")
    assert auth_headers(KEY) == {"authorization": f"Bearer {KEY}"}
    assert auth_headers(None) == {"authorization": "Bearer from-the-environment-0123"}
    assert auth_headers("") == {}  # "": no key, whatever the environment says
    monkeypatch.delenv("MOC_API_KEY")
    assert auth_headers(None) == {}
    assert auth_headers(f"  {KEY}\n") == {"authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("bad", ["two words-0123456789", "tab\there-0123456789", "clé-0123456789"])
def test_a_key_no_header_can_carry_is_refused_without_showing_it(bad: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII") as info:
        moc.Client("http://127.0.0.1:9", api_key=bad)
    assert bad not in str(info.value)
    assert "0123456789" not in str(info.value)


class Recorder:
    """A transport that answers every request and keeps its headers."""

    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.seen: list[httpx.Request] = []
        self.status = status
        self.body = body

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.seen.append(request)
        if request.url.path.endswith("/events"):
            return httpx.Response(200, text='data: {"event": "status", "job": {}}\n\n')
        return httpx.Response(self.status, json=self.body if self.body is not None else {})


def test_every_request_of_the_sync_client_carries_the_key(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_bytes(b'{"text": "x"}\n')
    recorder = Recorder(body={"keys": [], "events": [], "devices": []})
    with moc.Client("http://moc.test", api_key=KEY) as client:
        client._http._transport = httpx.MockTransport(recorder)
        client.keys()
        client.audit(since="2025-01-01T00:00:00Z", key_id="env-admin", limit=5)
        client.add_dataset("d", data)  # a streamed upload
        assert list(client.learning_events("lj_1")) == [{"event": "status", "job": {}}]
        assert KEY not in repr(client) + repr(vars(client)) + repr(client._http.headers)
    assert [r.headers["authorization"] for r in recorder.seen] == [f"Bearer {KEY}"] * 4
    audit = recorder.seen[1].url.params
    assert dict(audit) == {"limit": "5", "since": "2025-01-01T00:00:00Z", "key_id": "env-admin"}


async def test_the_async_client_takes_the_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOC_API_KEY", KEY)
    recorder = Recorder(body={"id": "k", "key": "moc_new"})
    async with moc.AsyncClient("http://moc.test") as client:
        client._http._transport = httpx.MockTransport(recorder)
        await client.create_key("ci", role="user", limits={"requests_per_minute": 5})
        await client.rotate_key("0123456789ab", grace_s=60)
        await client.revoke_key("a/b")
    first, rotate, revoke = recorder.seen
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in recorder.seen)
    assert first.content == b'{"name":"ci","role":"user","limits":{"requests_per_minute":5}}'
    assert (rotate.url.path, rotate.content) == ("/v1/keys/0123456789ab/rotate", b'{"grace_s":60}')
    assert revoke.url.raw_path == b"/v1/keys/a%2Fb"


def test_without_a_key_no_authorization_is_sent() -> None:
    recorder = Recorder(body={"id": ""})
    with moc.Client("http://moc.test", api_key="") as client:
        client._http._transport = httpx.MockTransport(recorder)
        client.whoami()
    assert "authorization" not in recorder.seen[0].headers


def test_authentication_errors_come_back_as_their_classes() -> None:
    with pytest.raises(errors.Unauthenticated, match="credentials are needed"):
        check(envelope(401, "unauthenticated", "credentials are needed"))
    with pytest.raises(errors.Forbidden):
        check(envelope(403, "forbidden", "user key k may not call POST /v1/keys"))
    with pytest.raises(errors.RateLimited) as info:
        check(
            envelope(429, "rate_limited", "over", retry_after_s=12.5, field="requests_per_minute")
        )
    assert info.value.retry_after_s == 12.5
    assert info.value.details["field"] == "requests_per_minute"
    with pytest.raises(errors.ApiKeyNotFound):
        check(envelope(404, "api_key_not_found", "no API key 'x'"))


def test_an_ollama_shaped_error_is_a_plain_moc_error() -> None:
    # Only /api/… routes answer this shape, and the SDK calls none of them;
    # should one reach it, it is still an error and not a crash.
    ollama = httpx.Response(401, json={"error": "no", "code": "unauthenticated", "src": "moc"})
    with pytest.raises(errors.MocError, match="moc answered 401") as info:
        check(ollama)
    assert type(info.value) is errors.MocError
