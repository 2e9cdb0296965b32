"""API keys from the clients' side, against one real ``moc serve`` with auth on
(``MOC_ADMIN_KEY`` set): the SDK makes, lists, rotates and revokes keys and
gets Unauthenticated, Forbidden and RateLimited as moc answers them; ``moc
keys``, ``moc whoami`` and ``moc audit`` do the same from the command line,
with the key from ``--key`` or ``MOC_API_KEY``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import moc
from moc import errors
from tests.conftest import MocProcess

ADMIN_KEY = "test-admin-key-0123456789abcdef0123456789abcdef"
CHAT = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MocProcess]:
    """One moc with auth on for the module; no models, nothing loads."""
    config = {"auth": {"enabled": True}, "models": [], "runtimes": {"demo_models": False}}
    folder = tmp_path_factory.mktemp("moc-auth")
    proc = MocProcess(folder / "data", config, env={"MOC_ADMIN_KEY": ADMIN_KEY}).start()
    yield proc
    assert proc.stop() == 0, proc.log()


def client(proc: MocProcess, key: str | None) -> moc.Client:
    return moc.Client(proc.url, api_key="" if key is None else key)


def moc_cli(
    proc: MocProcess, *args: str, env_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``moc ARGS --url …`` at an 80-column terminal, with MOC_API_KEY=env_key."""
    env = {k: v for k, v in os.environ.items() if k != "MOC_API_KEY"}
    if env_key is not None:
        env["MOC_API_KEY"] = env_key
    return subprocess.run(
        [sys.executable, "-m", "moc", *args, "--url", proc.url],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**env, "COLUMNS": "80"},
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
    return result.stdout


def test_admin_makes_keys_that_name_their_callers(authed: MocProcess) -> None:
    with client(authed, ADMIN_KEY) as admin:
        assert admin.whoami()["id"] == "env-admin"
        user = admin.create_key("sdk-user", role="user", models=["tiny-*"])
        viewer = admin.create_key("sdk-viewer", role="viewer", expires_at="2999-01-01T00:00:00Z")
        assert user["key"].startswith(f"moc_{user['id']}_")
        assert user["previous_valid_until"] is None
        assert viewer["expires_at"] is not None
        assert viewer["expires_at"].startswith("2999-01-01")

        listed = admin.keys()
        by_id = {k["id"]: k for k in listed}
        assert by_id[user["id"]]["name"] == "sdk-user"
        assert by_id[viewer["id"]]["role"] == "viewer"
        assert all("key" not in k for k in listed)
        text = json.dumps(listed)
        assert user["key"] not in text
        assert viewer["key"] not in text
        assert admin.key(user["id"])["models"] == ["tiny-*"]

    with client(authed, user["key"]) as as_user:
        me = as_user.whoami()
        assert (me["id"], me["name"], me["role"], me["auth"]) == (
            user["id"], "sdk-user", "user", True,
        )  # fmt: skip
        assert me["models"] == ["tiny-*"]
        with pytest.raises(errors.Forbidden) as refused:
            as_user.create_key("sneaky", role="admin")
        assert user["key"] not in str(refused.value)
    with client(authed, viewer["key"]) as as_viewer:
        assert as_viewer.whoami()["role"] == "viewer"
        with pytest.raises(errors.Forbidden):
            as_viewer.keys()


def test_no_key_or_a_wrong_one_is_unauthenticated(
    authed: MocProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    with client(authed, None) as anonymous:
        assert anonymous.health()["status"] == "ok"  # open without a key
        with pytest.raises(errors.Unauthenticated):
            anonymous.whoami()
    wrong = "moc_000000000000_" + "x" * 43
    with client(authed, wrong) as bad, pytest.raises(errors.Unauthenticated) as info:
        bad.devices()
    assert wrong not in str(info.value)
    assert "x" * 43 not in repr(info.value.details)
    # MOC_API_KEY is the default key
    monkeypatch.setenv("MOC_API_KEY", ADMIN_KEY)
    with moc.Client(authed.url) as from_env:
        assert from_env.whoami()["id"] == "env-admin"
        assert ADMIN_KEY not in repr(from_env) + repr(vars(from_env))


async def test_async_client_sends_the_key_on_streams_and_uploads(
    authed: MocProcess, tmp_path: Path
) -> None:
    data = tmp_path / "chat.jsonl"
    data.write_bytes(CHAT)
    async with moc.AsyncClient(authed.url, api_key=ADMIN_KEY) as admin:
        assert (await admin.whoami())["role"] == "admin"
        added = await admin.add_dataset("auth-chat", data)  # a streamed upload
        assert added["name"] == "auth-chat"
        with pytest.raises(errors.LearningJobNotFound):  # server-sent events: past the guard
            async for _ in admin.learning_events("lj_nope"):
                pass
    async with moc.AsyncClient(authed.url, api_key="") as anonymous:
        with pytest.raises(errors.Unauthenticated):
            async for _ in anonymous.learning_events("lj_nope"):
                pass
        with pytest.raises(errors.Unauthenticated):
            await anonymous.add_dataset("auth-chat-2", data)


def test_rotation_keeps_the_old_secret_for_its_grace_then_revoking_ends_both(
    authed: MocProcess,
) -> None:
    with client(authed, ADMIN_KEY) as admin:
        made = admin.create_key("rotating", role="viewer")
        rotated = admin.rotate_key(made["id"], grace_s=300)
        assert rotated["id"] == made["id"]
        assert rotated["key"] != made["key"]
        assert rotated["previous_valid_until"] is not None
        with client(authed, made["key"]) as old, client(authed, rotated["key"]) as new:
            assert old.whoami()["id"] == made["id"]
            assert new.whoami()["id"] == made["id"]
            revoked = admin.revoke_key(made["id"])
            assert revoked["revoked"] is True
            assert revoked["key"]["state"] == "revoked"
            with pytest.raises(errors.Unauthenticated, match="revoked"):
                new.whoami()
            with pytest.raises(errors.Unauthenticated):  # revoking ends the grace too
                old.whoami()
        assert admin.key(made["id"])["revoked_at"] is not None
        with pytest.raises(errors.ApiKeyNotFound):
            admin.revoke_key("000000000000")


def test_a_key_over_its_requests_per_minute_is_rate_limited(authed: MocProcess) -> None:
    with client(authed, ADMIN_KEY) as admin:
        made = admin.create_key("slow", role="viewer", limits={"requests_per_minute": 2})
        assert made["limits"] == {"requests_per_minute": 2}
    with client(authed, made["key"]) as slow:
        slow.whoami()
        slow.devices()
        with pytest.raises(errors.RateLimited) as info:
            slow.whoami()
    assert info.value.retry_after_s > 0
    assert info.value.details["field"] == "requests_per_minute"


def test_the_cli_makes_lists_revokes_keys_and_reads_the_audit_log(authed: MocProcess) -> None:
    made = json.loads(
        ok(moc_cli(authed, "--key", ADMIN_KEY, "keys", "create", "ci", "--role", "user",
                   "--rpm", "100", "--model", "tiny-*", "--device-gib-hours", "2",
                   "--expires-in", "30d", "--json"))
    )  # fmt: skip
    assert made["name"] == "ci"
    assert made["role"] == "user"
    assert made["key"].startswith(f"moc_{made['id']}_")
    assert made["models"] == ["tiny-*"]
    assert made["limits"] == {
        "requests_per_minute": 100,
        "device_byte_seconds_per_day": 2 * 1024**3 * 3600,
    }
    assert made["expires_at"] is not None

    # Without --json: the secret alone on stdout, the warning on stderr.
    plain = moc_cli(authed, "--key", ADMIN_KEY, "keys", "create", "plain", "--role", "viewer")
    secret = ok(plain).strip()
    assert secret.startswith("moc_")
    assert "\n" not in secret
    assert "only time" in plain.stderr
    with client(authed, secret) as fresh:
        assert fresh.whoami()["name"] == "plain"

    # MOC_API_KEY in place of --key
    table = ok(moc_cli(authed, "keys", "list", env_key=ADMIN_KEY)).splitlines()
    assert table[0].split()[:3] == ["ID", "NAME", "ROLE"]
    (row,) = [line.split() for line in table[1:] if line.split()[0] == made["id"]]
    assert row[1:3] == ["ci", "user"]
    assert "live" in row
    assert made["key"] not in "\n".join(table)
    listed = json.loads(ok(moc_cli(authed, "keys", "list", "--json", env_key=ADMIN_KEY)))
    assert made["id"] in {k["id"] for k in listed}

    whoami = ok(moc_cli(authed, "whoami", env_key=made["key"]))
    assert whoami.startswith(f"{made['id']} (ci): user")

    revoked = moc_cli(authed, "--key", ADMIN_KEY, "keys", "revoke", made["id"])
    assert f"key {made['id']} (ci) revoked" in ok(revoked)

    events = json.loads(ok(moc_cli(authed, "--key", ADMIN_KEY, "audit", "--json")))
    mine = {(e["action"], e["object"]) for e in events if e["key_id"] == "env-admin"}
    assert {("key.create", made["id"]), ("key.revoke", made["id"])} <= mine
    only = json.loads(
        ok(moc_cli(authed, "audit", "--action", "key.revoke", "--since", "1h", "--json",
                   env_key=ADMIN_KEY))
    )  # fmt: skip
    assert only
    assert {e["action"] for e in only} == {"key.revoke"}
    log = ok(moc_cli(authed, "audit", "--key-id", "env-admin", "--limit", "5", env_key=ADMIN_KEY))
    assert "key.revoke" in log
    assert "env-admin" in log


def test_the_cli_without_a_key_or_with_a_revoked_one_says_where_keys_come_from(
    authed: MocProcess,
) -> None:
    refused = moc_cli(authed, "keys", "list")
    assert refused.returncode == 1
    assert "unauthenticated" in refused.stderr
    assert "MOC_API_KEY" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "Traceback" not in refused.stderr

    with client(authed, ADMIN_KEY) as admin:
        viewer = admin.create_key("cli-viewer", role="viewer")
    forbidden = moc_cli(authed, "--key", viewer["key"], "keys", "list")
    assert forbidden.returncode == 1
    assert "[forbidden]" in forbidden.stderr
    assert viewer["key"] not in forbidden.stderr + forbidden.stdout

    rotated = json.loads(
        ok(moc_cli(authed, "keys", "rotate", viewer["id"], "--grace", "10m", "--json",
                   env_key=ADMIN_KEY))
    )  # fmt: skip
    assert rotated["previous_valid_until"] is not None
    assert ok(moc_cli(authed, "whoami", env_key=viewer["key"])).startswith(viewer["id"])
    assert ok(moc_cli(authed, "whoami", env_key=rotated["key"])).startswith(viewer["id"])
