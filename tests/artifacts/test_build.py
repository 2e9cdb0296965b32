"""The trust policy read from the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from moc.artifacts.build import trusted_keys
from moc.artifacts.signing import key_id
from moc.config import Config
from moc.errors import ConfigError


def test_trusted_keys_are_read_with_their_names_and_expiry(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = tmp_path / "team.pub"
    pem.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    config = Config(
        artifacts={
            "trusted_keys": [
                str(pem),
                {"path": pem, "name": "ci", "expires_at": "2027-06-30T00:00:00Z"},
            ]
        }
    )
    plain, named = trusted_keys(config.artifacts)
    assert (plain.name, plain.id, plain.expires_at) == ("team.pub", key_id(key), None)
    assert (named.name, named.expires_at) == ("ci", 1814313600.0)


def test_a_trusted_key_that_cannot_be_read_names_its_entry(tmp_path: Path) -> None:
    (tmp_path / "junk.pub").write_text("not a key")
    for path, problem in (
        (tmp_path / "absent.pub", "cannot read"),
        (tmp_path / "junk.pub", "junk.pub"),
    ):
        config = Config(artifacts={"trusted_keys": [str(path)]})
        with pytest.raises(ConfigError, match=r"artifacts\.trusted_keys\[0\]") as info:
            trusted_keys(config.artifacts)
        assert problem in info.value.message
