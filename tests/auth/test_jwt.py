"""JwtVerifier: real keys, real signatures, a real HTTP server for the JWKS URL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from moc.auth import jwt as moc_jwt
from moc.auth.jwt import JwtVerifier
from moc.auth.principal import Limits, Principal
from moc.auth.roles import Role
from moc.config import JwtConfig
from moc.errors import ConfigError, Unauthenticated

NOW = 1_700_000_000.0
SECRET = "s" * 40


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def jwk(private: Any, kid: str, **extra: Any) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else ECAlgorithm
    return {**algorithm.to_jwk(private.public_key(), as_dict=True), "kid": kid, **extra}


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "alice", "role": "user", "exp": NOW + 600, "iat": NOW}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def sign(key: Any, algorithm: str, kid: str | None = None, **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**changes), key, algorithm=algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(secret: bytes, payload: dict[str, Any], kid: str | None = None) -> str:
    """An HS256 token made without pyjwt, which refuses a PEM as an HMAC secret."""
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def verifier(clock: Clock | None = None, **config: Any) -> JwtVerifier:
    return JwtVerifier(JwtConfig.model_validate(config), now=clock or Clock())


async def refused(v: JwtVerifier, token: str, *words: str) -> str:
    """Asserts ``token`` is refused with a message holding ``words`` and not the
    token or its signature; returns the message."""
    with pytest.raises(Unauthenticated) as caught:
        await v.verify(token)
    message = str(caught.value)
    for word in words:
        assert word in message
    if token:
        assert token not in message
    signature = token.rsplit(".", 1)[-1]
    if len(signature) >= 8:
        assert signature not in message
    return message


class JwksServer:
    """A JWKS served over real HTTP, counting the GETs."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.status = 200
        self.hits = 0
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                served.hits += 1
                body = json.dumps(served.document).encode()
                self.send_response(served.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        self.thread.join()


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    servers: list[JwksServer] = []

    def start(document: dict[str, Any]) -> JwksServer:
        servers.append(JwksServer(document))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


# --- HS256 -----------------------------------------------------------------


async def test_hs256_token_gives_its_principal() -> None:
    v = verifier(secret=SECRET, limits={"requests_per_minute": 10, "concurrent_requests": 2})
    token = sign(SECRET, "HS256", role="operator", models=["llama-*", "qwen"])
    assert await v.verify(token) == Principal(
        id="jwt:alice",
        role=Role.OPERATOR,
        name="alice",
        models=("llama-*", "qwen"),
        limits=Limits(requests_per_minute=10, concurrent_requests=2),
    )


async def test_no_models_claim_is_every_model() -> None:
    principal = await verifier(secret=SECRET).verify(sign(SECRET, "HS256"))
    assert principal.models is None
    assert principal.may_use("anything")


async def test_hs256_with_another_secret_is_a_bad_signature() -> None:
    await refused(verifier(secret=SECRET), sign("t" * 40, "HS256"), "bad signature")


async def test_hs256_is_refused_when_only_a_jwks_is_configured(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1"))))
    await refused(verifier(jwks_file=path), sign(SECRET, "HS256"), "HS256", "secret")


async def test_rs256_is_refused_when_only_a_secret_is_configured(
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    await refused(verifier(secret=SECRET), sign(rsa_key, "RS256", "k1"), "RS256", "no JWKS")


# --- the algorithm is the key's ------------------------------------------------


@pytest.mark.parametrize("with_secret", [False, True])
async def test_hs256_signed_with_the_rsa_public_pem_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, with_secret: bool
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1"))))
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hs256_by_hand(pem, claims(), kid="k1")
    config: dict[str, Any] = {"jwks_file": path, **({"secret": SECRET} if with_secret else {})}
    words = ("bad signature",) if with_secret else ("HS256", "secret")
    await refused(verifier(**config), token, *words)


async def test_alg_none_is_refused() -> None:
    token = jwt.encode(claims(), "", algorithm="none")
    await refused(verifier(secret=SECRET), token, "'none'", "not allowed")


async def test_an_algorithm_moc_does_not_take_is_refused() -> None:
    token = sign("s" * 64, "HS512")
    await refused(verifier(secret=SECRET), token, "'HS512'", "not allowed")


async def test_rs256_header_on_an_ec_key_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(ec_key, "ec1"))))
    await refused(verifier(jwks_file=path), sign(rsa_key, "RS256", "ec1"), "RS256", "ES256 only")


async def test_a_key_with_an_explicit_other_alg_is_not_used(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1", alg="RS512"), jwk(ec_key, "ec1"))))
    await refused(verifier(jwks_file=path), sign(rsa_key, "RS256", "k1"), "unknown key id 'k1'")


async def test_rs256_signed_by_another_key_with_the_same_kid_is_a_bad_signature(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1"))))
    await refused(verifier(jwks_file=path), sign(other_rsa_key, "RS256", "k1"), "bad signature")


async def test_an_rsa_key_under_2048_bits_is_refused(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(weak, "k1"))))
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        token = sign(weak, "RS256", "k1")
    await refused(verifier(jwks_file=path), token, "1024 bits")


# --- JWKS file -----------------------------------------------------------------


async def test_rs256_via_jwks_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1"))))
    principal = await verifier(jwks_file=path).verify(sign(rsa_key, "RS256", "k1", role="admin"))
    assert (principal.id, principal.role) == ("jwt:alice", Role.ADMIN)


async def test_no_kid_uses_the_only_key_of_its_type(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1"), jwk(ec_key, "ec1"))))
    v = verifier(jwks_file=path)
    assert (await v.verify(sign(rsa_key, "RS256"))).name == "alice"
    assert (await v.verify(sign(ec_key, "ES256"))).name == "alice"


async def test_no_kid_with_two_keys_of_its_type_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1"), jwk(other_rsa_key, "k2"))))
    await refused(verifier(jwks_file=path), sign(rsa_key, "RS256"), "no kid", "2 RS256 keys")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "No such file"),
        ("{not json", "not JSON"),
        ('{"keys": 3}', "not a JWKS"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "none of its 1 keys"),
    ],
)
def test_a_bad_jwks_file_is_a_config_error(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        verifier(jwks_file=path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


async def test_the_jwks_file_is_reread_when_it_changes(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1"))))
    clock = Clock()
    v = verifier(clock, jwks_file=path, jwks_refresh_s=60)
    await v.verify(sign(rsa_key, "RS256", "k1"))
    path.write_text(json.dumps(jwks(jwk(other_rsa_key, "k2"))))
    os.utime(path, ns=(1, 1))
    # An unknown kid looks at the file again at once.
    assert (await v.verify(sign(other_rsa_key, "RS256", "k2"))).name == "alice"
    # A key dropped from the file is dropped once the file is looked at again.
    clock.t += 61
    await refused(v, sign(rsa_key, "RS256", "k1", sub="bob"), "unknown key id 'k1'")


async def test_a_jwks_file_gone_bad_keeps_the_keys(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1"))))
    clock = Clock()
    v = verifier(clock, jwks_file=path, jwks_refresh_s=60)
    path.write_text("{broken")
    clock.t += 61
    assert (await v.verify(sign(rsa_key, "RS256", "k1"))).name == "alice"


# --- JWKS URL ------------------------------------------------------------------


async def test_es256_via_jwks_url_is_fetched_once(
    serve: Any, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    server = serve(jwks(jwk(ec_key, "ec1")))
    v = verifier(jwks_url=server.url)
    assert (await v.verify(sign(ec_key, "ES256", "ec1"))).id == "jwt:alice"
    assert (await v.verify(sign(ec_key, "ES256", "ec1", sub="bob"))).id == "jwt:bob"
    assert server.hits == 1


async def test_the_jwks_url_is_fetched_again_after_jwks_refresh_s(
    serve: Any, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    server = serve(jwks(jwk(ec_key, "ec1")))
    clock = Clock()
    v = verifier(clock, jwks_url=server.url, jwks_refresh_s=60)
    await v.verify(sign(ec_key, "ES256", "ec1"))
    clock.t += 61
    await v.verify(sign(ec_key, "ES256", "ec1", sub="bob"))
    assert server.hits == 2


async def test_a_rotated_key_is_fetched_once(
    serve: Any, ec_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    server = serve(jwks(jwk(ec_key, "ec1")))
    clock = Clock()
    v = verifier(clock, jwks_url=server.url)
    await v.verify(sign(ec_key, "ES256", "ec1"))
    server.document = jwks(jwk(ec_key, "ec1"), jwk(rsa_key, "k2"))
    clock.t += 1
    assert (await v.verify(sign(rsa_key, "RS256", "k2"))).name == "alice"
    assert (await v.verify(sign(rsa_key, "RS256", "k2", sub="bob"))).name == "bob"
    assert server.hits == 2


async def test_a_flood_of_unknown_kids_refetches_at_most_every_10_s(
    serve: Any, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    server = serve(jwks(jwk(ec_key, "ec1")))
    clock = Clock()
    v = verifier(clock, jwks_url=server.url)
    await v.verify(sign(ec_key, "ES256", "ec1"))
    for _ in range(20):
        await refused(v, sign(ec_key, "ES256", uuid.uuid4().hex), "unknown key id")
    assert server.hits == 2
    clock.t += 9
    for _ in range(20):
        await refused(v, sign(ec_key, "ES256", uuid.uuid4().hex), "unknown key id")
    assert server.hits == 2
    clock.t += 1
    await refused(v, sign(ec_key, "ES256", "nope"), "unknown key id 'nope'")
    assert server.hits == 3


async def test_concurrent_first_uses_fetch_once(
    serve: Any, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    server = serve(jwks(jwk(ec_key, "ec1")))
    v = verifier(jwks_url=server.url)
    tokens = [sign(ec_key, "ES256", "ec1", sub=f"u{i}") for i in range(10)]
    principals = await asyncio.gather(*(v.verify(t) for t in tokens))
    assert [p.name for p in principals] == [f"u{i}" for i in range(10)]
    assert server.hits == 1


async def test_an_unreachable_jwks_url_is_named(
    serve: Any, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    server = serve(jwks(jwk(ec_key, "ec1")))
    server.status = 500
    v = verifier(jwks_url=server.url)
    await refused(v, sign(ec_key, "ES256", "ec1"), "could not be fetched", server.url)
    assert server.hits == 1  # the unknown kid does not fetch twice in one verify


async def test_a_failed_refresh_keeps_the_keys_known(
    serve: Any, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    server = serve(jwks(jwk(ec_key, "ec1")))
    clock = Clock()
    v = verifier(clock, jwks_url=server.url, jwks_refresh_s=60)
    await v.verify(sign(ec_key, "ES256", "ec1"))
    server.status = 503
    clock.t += 61
    assert (await v.verify(sign(ec_key, "ES256", "ec1", sub="bob"))).name == "bob"
    assert server.hits == 2
    await refused(v, sign(ec_key, "ES256", "ec2"), "unknown key id 'ec2'", "could not be fetched")


async def test_an_injected_fetch_that_raises_is_a_failed_fetch(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    async def broken(url: str) -> bytes:
        raise OSError("connection refused")

    config = JwtConfig(jwks_url="https://idp.example/jwks")
    v = JwtVerifier(config, now=Clock(), fetch=broken)
    await refused(v, sign(ec_key, "ES256", "ec1"), "https://idp.example/jwks")


# --- times, issuer, audience ---------------------------------------------------


async def test_expired() -> None:
    await refused(verifier(secret=SECRET), sign(SECRET, "HS256", exp=NOW - 60), "expired 60 s ago")


async def test_leeway_is_honoured() -> None:
    v = verifier(secret=SECRET, leeway_s=30)
    assert await v.verify(sign(SECRET, "HS256", exp=NOW - 10))
    await refused(v, sign(SECRET, "HS256", exp=NOW - 31), "expired")


async def test_not_yet_valid() -> None:
    v = verifier(secret=SECRET, leeway_s=30)
    await refused(v, sign(SECRET, "HS256", nbf=NOW + 120), "not yet valid", "nbf")
    assert await v.verify(sign(SECRET, "HS256", nbf=NOW + 20))


async def test_issued_in_the_future() -> None:
    await refused(verifier(secret=SECRET), sign(SECRET, "HS256", iat=NOW + 120), "iat")


@pytest.mark.parametrize("exp", [None, "tomorrow", True, float("nan"), float("inf")])
async def test_exp_is_required_and_a_number(exp: Any) -> None:
    token = sign(SECRET, "HS256", exp=exp)
    if exp is None:
        token = jwt.encode({"sub": "alice", "role": "user"}, SECRET, algorithm="HS256")
    await refused(verifier(secret=SECRET), token, "exp")


async def test_wrong_issuer() -> None:
    v = verifier(secret=SECRET, issuer="https://idp.example")
    assert await v.verify(sign(SECRET, "HS256", iss="https://idp.example"))
    await refused(v, sign(SECRET, "HS256", iss="https://evil.example"), "wrong issuer")
    await refused(v, sign(SECRET, "HS256"), "no iss claim")


async def test_wrong_audience() -> None:
    v = verifier(secret=SECRET, audience="moc")
    assert await v.verify(sign(SECRET, "HS256", aud=["other", "moc"]))
    await refused(v, sign(SECRET, "HS256", aud="other"), "wrong audience")
    await refused(v, sign(SECRET, "HS256"), "no aud claim")


async def test_aud_is_not_checked_when_no_audience_is_configured() -> None:
    assert await verifier(secret=SECRET).verify(sign(SECRET, "HS256", aud="anyone"))


# --- claims ----------------------------------------------------------------------


async def test_a_role_list_takes_its_highest_known_role() -> None:
    v = verifier(secret=SECRET, role_claim="realm_access.roles")
    roles = {"roles": ["offline_access", "viewer", "operator", "user"]}
    assert (await v.verify(sign(SECRET, "HS256", realm_access=roles))).role == Role.OPERATOR


async def test_a_namespaced_claim_with_dots_is_read_whole() -> None:
    v = verifier(secret=SECRET, role_claim="https://moc.example/role")
    token = sign(SECRET, "HS256", **{"https://moc.example/role": "admin"})
    assert (await v.verify(token)).role == Role.ADMIN


@pytest.mark.parametrize("role", [None, [], ["offline_access"]])
async def test_no_known_role_is_refused_or_the_default(role: Any) -> None:
    token = sign(SECRET, "HS256", role=role)
    await refused(verifier(secret=SECRET), token, "'role'", "default_role")
    assert (await verifier(secret=SECRET, default_role="viewer").verify(token)).role == Role.VIEWER


@pytest.mark.parametrize("role", ["root", 3, {"name": "admin"}])
async def test_a_role_claim_naming_no_role_is_refused(role: Any) -> None:
    v = verifier(secret=SECRET, default_role="viewer")
    await refused(v, sign(SECRET, "HS256", role=role), "'role'")


@pytest.mark.parametrize("models", ["llama", [1, 2], {"a": 1}, ["ok", None]])
async def test_a_models_claim_of_the_wrong_type_is_refused(models: Any) -> None:
    await refused(verifier(secret=SECRET), sign(SECRET, "HS256", models=models), "'models'")


@pytest.mark.parametrize("sub", [None, "", 42])
async def test_the_subject_must_be_a_non_empty_string(sub: Any) -> None:
    await refused(verifier(secret=SECRET), sign(SECRET, "HS256", sub=sub), "sub")


async def test_subject_claim_is_configurable() -> None:
    v = verifier(secret=SECRET, subject_claim="preferred_username")
    principal = await v.verify(sign(SECRET, "HS256", preferred_username="carol"))
    assert (principal.id, principal.name) == ("jwt:carol", "carol")


# --- malformed tokens and messages -------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "a.b.c.d", "!!!.###.$$$", "e30.%%%.e30", "x" * 5000],
)
async def test_malformed_tokens_are_refused(token: str) -> None:
    await refused(verifier(secret=SECRET), token, "malformed")


async def test_a_signed_payload_that_is_not_a_json_object_is_malformed() -> None:
    for payload in (b"not json", b"[1, 2]"):
        header = b64(b'{"alg":"HS256"}')
        signing_input = f"{header}.{b64(payload)}"
        mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
        await refused(verifier(secret=SECRET), f"{signing_input}.{b64(mac)}", "malformed")


async def test_no_message_holds_the_token_or_its_signature(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(jwk(rsa_key, "k1"))))
    v = verifier(jwks_file=path, secret=SECRET, issuer="i", audience="a")
    bad = [
        sign(other_rsa_key, "RS256", "k1", iss="i", aud="a"),
        sign(rsa_key, "RS256", "k1", iss="x", aud="a"),
        sign(rsa_key, "RS256", "k1", iss="i", aud="x"),
        sign(rsa_key, "RS256", "k1", iss="i", aud="a", exp=NOW - 3600),
        sign(rsa_key, "RS256", "zz", iss="i", aud="a"),
        sign("t" * 40, "HS256", iss="i", aud="a"),
        sign(SECRET, "HS256", iss="i", aud="a", role="root"),
        sign(SECRET, "HS256", iss="i", aud="a", models="x"),
    ]
    token = sign(SECRET, "HS256", iss="i", aud="a")
    head, body, _ = token.split(".")
    bad.append(f"{head}.{body}.{'A' * 43}")
    bad.append(f"{head}.{body[:-4]}.{token.rsplit('.', 1)[1]}")
    for token in bad:
        await refused(v, token)


# --- the cache -------------------------------------------------------------------


async def test_a_verified_token_is_cached_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = 0
    real_decode = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal decoded
        decoded += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    clock = Clock()
    v = verifier(clock, secret=SECRET, leeway_s=30)
    token = sign(SECRET, "HS256", exp=NOW + 60)
    first = await v.verify(token)
    assert await v.verify(token) is first
    assert decoded == 1
    clock.t += 89
    assert await v.verify(token) is first
    clock.t += 2
    await refused(v, token, "expired")


async def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moc_jwt, "CACHE_SIZE", 2)
    decoded = 0
    real_decode = jwt.decode

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal decoded
        decoded += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    v = verifier(secret=SECRET)
    tokens = [sign(SECRET, "HS256", sub=f"u{i}") for i in range(3)]
    for token in tokens:
        await v.verify(token)
    await v.verify(tokens[2])
    assert decoded == 3
    await v.verify(tokens[0])  # the oldest was let go
    assert decoded == 4


async def test_failures_are_not_cached() -> None:
    clock = Clock()
    v = verifier(clock, secret=SECRET)
    token = sign(SECRET, "HS256", nbf=NOW + 100)
    await refused(v, token, "not yet valid")
    clock.t += 100
    assert (await v.verify(token)).name == "alice"
