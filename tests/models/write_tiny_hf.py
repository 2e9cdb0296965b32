"""Write a tiny random-weight LLaMA in Hugging Face's layout, for vLLM.

Run with a Python that has ``transformers`` and ``tokenizers`` (the one vLLM
is installed in): ``python write_tiny_hf.py <folder> [<adapter folder>]``;
with a second folder it also writes a random LoRA adapter for the model
(needs ``peft``). Nothing is downloaded. Its tokenizer has one token per byte; heads of width 64, which
vLLM's CPU attention supports (16 is refused).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast


def write(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {chr(i) if 32 <= i < 127 else f"<0x{i:02X}>": i for i in range(256)}
    for i, special in enumerate(("<s>", "</s>", "<unk>")):
        vocab[special] = 256 + i
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=259,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=256,
        eos_token_id=257,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(folder)


def write_adapter(model: Path, folder: Path) -> None:
    from peft import LoraConfig, get_peft_model

    base = LlamaForCausalLM.from_pretrained(model)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    get_peft_model(base, lora).save_pretrained(folder)


if __name__ == "__main__":
    write(Path(sys.argv[1]))
    if len(sys.argv) > 2:
        write_adapter(Path(sys.argv[1]), Path(sys.argv[2]))
