"""The SDK's two clients cannot drift: the synchronous one is generated from
the asyncio one, both offer the same methods, LeaseInfo is the wire's Lease,
and every other answer is typed by its moc.wire shape."""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

from moc import wire
from moc.sdk import AsyncClient, AsyncHeldLease, Client, HeldLease, LeaseInfo

ROOT = Path(__file__).resolve().parents[2]
RENAMED = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}
KEPT = {"__init__", *RENAMED, *RENAMED.values()}


def test_the_committed_sync_client_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "unasync.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def _surface(cls: type) -> dict[str, list[str]]:
    return {
        RENAMED.get(name, name): list(inspect.signature(member).parameters)
        for name, member in vars(cls).items()
        if callable(member) and (not name.startswith("_") or name in KEPT)
    }


def test_both_clients_have_the_same_methods_and_parameters() -> None:
    assert _surface(AsyncClient) == _surface(Client)
    assert _surface(AsyncHeldLease) == _surface(HeldLease)


def test_lease_info_has_the_wire_lease_fields_and_types() -> None:
    hints = typing.get_type_hints(LeaseInfo)
    ours = [(f.name, hints[f.name]) for f in dataclasses.fields(LeaseInfo)]
    assert ours == list(typing.get_type_hints(wire.Lease).items())


def _answers(cls: type) -> dict[str, Any]:
    return {
        name: typing.get_type_hints(member)["return"]
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_") and name not in KEPT
    }


def test_every_answer_is_typed_by_its_wire_shape() -> None:
    shapes = {getattr(wire, name) for name in wire.__all__}
    typed = {*shapes, LeaseInfo, AsyncHeldLease, HeldLease, type(None)}
    for cls in (AsyncClient, Client):
        for name, answer in _answers(cls).items():
            streams = (list, collections.abc.Iterator, collections.abc.AsyncIterator)
            inner = typing.get_args(answer)[0] if typing.get_origin(answer) in streams else answer
            assert inner in typed, f"{cls.__name__}.{name} answers {answer}"
