"""The llama.cpp command line moc builds from a model spec."""

from __future__ import annotations

from moc.backends.llamacpp import launch
from moc.config import LlamaCppConfig
from moc.devices.probe import DeviceInfo
from moc.models.spec import ModelSpec

HOST = DeviceInfo(id="host", kind="host", name="host", total=1 << 30)
SERVER = ("llama-server",)


def argv(**kw: object) -> list[str]:
    spec = ModelSpec.model_validate({"name": "m", "path": "/m.gguf", **kw})
    return list(launch(spec, HOST, 4100, LlamaCppConfig(), SERVER).argv)


def test_embeddings_add_the_flag_and_nothing_else() -> None:
    plain, with_embeddings = argv(), argv(embeddings=True)
    assert "--embeddings" not in plain
    assert with_embeddings == [*plain, "--embeddings"]
    assert argv(embeddings=True, args=["--pooling", "cls"])[-3:] == [
        "--embeddings",
        "--pooling",
        "cls",
    ]
