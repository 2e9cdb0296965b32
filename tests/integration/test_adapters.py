"""Train → sign → register → serve, end to end against a real ``moc serve``
with its demo catalog: an sft job trains a LoRA on tiny-base; it is
registered and signed by completion; a chat request that names the adapter
is answered by the llama.cpp runtime of tiny-base with the adapter applied
and gives the trained answer, while a request for tiny-base in the same
runtime does not; one changed byte of the stored adapter file and the next
load of it is refused with artifact_tampered, with nothing reserved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

import moc
from tests.conftest import runtimes_using
from tests.integration.support import Factory, held
from tests.integration.test_learning import LEARNING, LEARNS, add_dataset, finished, submit
from tests.learning.worker.test_sft_learns import ROWS

pytestmark = [pytest.mark.usefixtures("no_stray_runtimes"), pytest.mark.slow]

PROMPT = "What is the answer?"
ANSWER = "The answer is forty-two."
# The demo's questions as chats: trained through the chat template, which
# llama.cpp renders from the GGUF file exactly as transformers does.
CHATS = [
    {
        "messages": [
            {"role": "user", "content": row["prompt"].strip()},
            {"role": "assistant", "content": row["completion"]},
        ]
    }
    for row in ROWS
]


def ask(http: httpx.Client, model: str) -> str:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 24,
        "temperature": 0,
    }
    answer = http.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    text: str = answer.json()["choices"][0]["message"]["content"]
    return text


def flip_a_byte(blob: Path) -> None:
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_trained_adapter_is_served_on_its_base_and_a_changed_byte_refuses_it(
    moc_factory: Factory, tmp_path: Path
) -> None:
    # An agent map naming an adapter that does not exist yet: added by hand below.
    agents = tmp_path / "AGENT_MODEL_MAP.json"
    agents.write_text(json.dumps({"support": {"model": "tiny-base", "adapter": "support-lora"}}))
    server = moc_factory({"learning": LEARNING, "artifacts": {"agent_map": str(agents)}}).start(
        timeout=60
    )  # the demo catalog
    with httpx.Client(base_url=server.url, timeout=120) as http:
        add_dataset(http, "qa-chat", CHATS)
        # seq_len: a chat, rendered, is longer than the 64 bytes an instruction row needs
        params = {**LEARNS, "max_steps": 120, "seq_len": 128}
        job = submit(http, kind="sft", dataset="qa-chat", params=params)
        assert job["base"] == "tiny-base"
        done = finished(http, job["id"], timeout=300)
        assert done["status"] == "complete", done["error"]

        ref = done["output"]["artifact"]
        name = ref.partition("@")[0]
        artifact = http.get(f"/v1/artifacts/{ref}").json()
        assert artifact["kind"] == "adapter"
        assert artifact["base"] == "tiny-base"
        assert artifact["producer"]["job"] == job["id"]
        assert http.get("/v1/signing-keys/default").json()["id"] == artifact["signed_by"]
        files = {f["path"]: f for f in artifact["files"]}
        assert {"adapter.gguf", "adapter_config.json", "adapter_model.safetensors"} <= set(files)
        catalog = http.get("/v1/adapters").json()["adapters"]
        assert [(a["name"], a["base"]) for a in catalog] == [(name, "tiny-base")]

        assert ask(http, name) == ANSWER
        assert ANSWER not in ask(http, "tiny-base")  # the same runtime, the adapter not applied
        assert ask(http, f"tiny-base:{name}") == ANSWER
        runtimes = runtimes_using(server.data_dir)
        assert len(runtimes) == 1  # one base in memory serves both

        # The same LoRA added by hand, PEFT's files only, under the agent map's
        # name: moc makes its llama.cpp file, the running base is restarted
        # with it (it is idle), and the agent's name serves it.
        output = server.data_dir / "learning" / "jobs" / job["id"] / "output"
        peft_only = tmp_path / "support-lora"
        peft_only.mkdir()
        for kept in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy(output / kept, peft_only / kept)
        with moc.Client(server.url) as client:
            added = client.add_artifact("support-lora", peft_only, kind="adapter", base="tiny-base")
            made = {f["path"] for f in client.artifact("support-lora")["files"]}
        assert made == {"adapter.gguf", "adapter_config.json", "adapter_model.safetensors"}
        assert added["signed_by"] == artifact["signed_by"]
        assert ask(http, "support") == ANSWER
        assert ask(http, name) == ANSWER
        assert len(runtimes_using(server.data_dir)) == 1

        assert http.post("/v1/models/tiny-base/unload").json()["unloaded"] is True
        flip_a_byte(
            server.data_dir / "artifacts" / "blobs" / "sha256" / files["adapter.gguf"]["sha256"]
        )
        refused = http.post(
            "/v1/chat/completions",
            json={
                "model": name,
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": 4,
            },
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "artifact_tampered"
        assert "adapter.gguf: changed" in error["message"]
        assert held(http) == 0
        assert runtimes_using(server.data_dir) == []
