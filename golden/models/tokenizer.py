"""SmolLM2's byte-level BPE tokenizer, rebuilt from the GGUF metadata.

The GGUF file carries the vocabulary (``tokenizer.ggml.tokens``), the merges
(``tokenizer.ggml.merges``) and the pre-tokenizer name ``tokenizer.ggml.pre = "smollm"``.
llama.cpp splits "smollm" text first into single digits (``\\p{N}``), then with the GPT-2
regex (``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)``);
that is the pre-tokenizer sequence of SmolLM2's own ``tokenizer.json``: ``Digits(individual)``
then ``ByteLevel(add_prefix_space=False, use_regex=True)``. The BPE itself runs in the
``tokenizers`` library. No BOS token is added (``add_bos_token`` is false); the 17 control
tokens (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``...) are matched as special tokens.

Reading the GGUF metadata takes a few seconds, so the built tokenizer is saved as
``build/models/smollm2-tokenizer-<key>.json`` and reused.
"""

from __future__ import annotations

import functools
import os

from .weights import cache_dir, gguf_cache_key, smollm2_gguf_path

__all__ = ["SmolLM2Tokenizer", "load_tokenizer"]

CONTROL_TOKEN_TYPE = 3


def _build_from_gguf(path):
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    reader = gguf.GGUFReader(path)
    fields = reader.fields
    pre = fields["tokenizer.ggml.pre"].contents()
    model = fields["tokenizer.ggml.model"].contents()
    if (model, pre) != ("gpt2", "smollm"):
        raise ValueError(f"expected a gpt2/smollm tokenizer in {path}, found {model}/{pre}")
    tokens = fields["tokenizer.ggml.tokens"].contents()
    merges = [tuple(merge.split(" ")) for merge in fields["tokenizer.ggml.merges"].contents()]
    token_types = fields["tokenizer.ggml.token_type"].contents()
    vocab = {token: index for index, token in enumerate(tokens)}

    tokenizer = Tokenizer(models.BPE(vocab, merges, fuse_unk=False, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([
        AddedToken(token, special=True, normalized=False)
        for token, kind in zip(tokens, token_types, strict=True) if kind == CONTROL_TOKEN_TYPE])
    special = {
        "bos": int(fields["tokenizer.ggml.bos_token_id"].contents()),
        "eos": int(fields["tokenizer.ggml.eos_token_id"].contents()),
        "chat_template": fields["tokenizer.chat_template"].contents(),
    }
    return tokenizer, special


class SmolLM2Tokenizer:
    """Text to token ids and back, as llama.cpp and Hugging Face tokenize SmolLM2.

    Members
    -------
    bos_id, eos_id : int
        ``<|im_start|>`` (1) and ``<|im_end|>`` (2); neither is added by :meth:`encode`.
    vocab_size : int
    """

    def __init__(self, tokenizer, bos_id: int, eos_id: int):
        self._tokenizer = tokenizer
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (control tokens written in the text become their ids)."""
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        """Text of token ids; control tokens are kept as their text."""
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

    def token(self, index: int) -> str:
        """Vocabulary entry of ``index``, in byte-level form (``"ĠParis"``)."""
        return self._tokenizer.id_to_token(int(index))

    def token_id(self, token: str) -> int | None:
        """Index of a byte-level vocabulary entry, or None."""
        return self._tokenizer.token_to_id(token)

    def chat_prompt(self, user: str,
                    system: str = "You are a helpful AI assistant named SmolLM, trained by "
                                  "Hugging Face") -> str:
        """``user`` in SmolLM2's chat template (the GGUF's), ready for the assistant's reply."""
        return (f"<|im_start|>system\n{system}<|im_end|>\n"
                f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n")


@functools.cache
def load_tokenizer() -> SmolLM2Tokenizer:
    """The SmolLM2 tokenizer (built from the GGUF once, then read from ``build/models/``)."""
    import json

    from tokenizers import Tokenizer

    path = smollm2_gguf_path()
    stem = cache_dir() / f"smollm2-tokenizer-{gguf_cache_key(path)}"
    tokenizer_json, special_json = stem.with_suffix(".json"), stem.with_suffix(".special.json")
    if tokenizer_json.is_file() and special_json.is_file():
        tokenizer = Tokenizer.from_file(str(tokenizer_json))
        special = json.loads(special_json.read_text())
    else:
        tokenizer, special = _build_from_gguf(path)
        # temporary names first: parallel test workers may build it at the same time
        partial = stem.with_name(f"{stem.name}-partial{os.getpid()}")
        tokenizer.save(str(partial.with_suffix(".json")))
        partial.with_suffix(".special.json").write_text(json.dumps(special))
        partial.with_suffix(".json").replace(tokenizer_json)
        partial.with_suffix(".special.json").replace(special_json)
    return SmolLM2Tokenizer(tokenizer, special["bos"], special["eos"])
