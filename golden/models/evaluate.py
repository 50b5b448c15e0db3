"""How well a model variant works: perplexity on the bundled text, greedy generation.

The bundled text is ``golden/models/data/eval_text.txt`` (public domain; its source is in
``golden/models/data/README.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["EVAL_TEXT", "token_nll", "perplexity", "greedy_generate", "load_eval_text",
           "load_eval_tokens"]

EVAL_TEXT = Path(__file__).resolve().parent / "data" / "eval_text.txt"


def load_eval_text(path: Path | str | None = None) -> str:
    """The evaluation text (``golden/models/data/eval_text.txt`` unless ``path`` is given)."""
    path = Path(path) if path is not None else EVAL_TEXT
    if not path.is_file():
        raise FileNotFoundError(f"evaluation text {path} is missing")
    return path.read_text(encoding="utf-8")


def load_eval_tokens(limit: int | None = None, path: Path | str | None = None,
                     tokenizer=None) -> np.ndarray:
    """SmolLM2 token ids (int64) of the evaluation text, the first ``limit`` if given."""
    if tokenizer is None:
        from .tokenizer import load_tokenizer
        tokenizer = load_tokenizer()
    tokens = np.asarray(tokenizer.encode(load_eval_text(path)), dtype=np.int64)
    return tokens if limit is None else tokens[:limit]


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood (float64) of each target under the matching logits row."""
    logits = np.asarray(logits, dtype=np.float32)
    peak = logits.max(axis=-1)
    log_sum = peak.astype(np.float64) + np.log(
        np.exp(logits - peak[:, None]).sum(axis=-1, dtype=np.float64))
    return log_sum - logits[np.arange(len(targets)), targets].astype(np.float64)


def perplexity(model, tokens, window: int = 512, stride: int | None = None) -> float:
    """exp(mean NLL) of ``tokens``, each window run as a fresh sequence (no BOS added).

    With ``stride=None`` the windows do not overlap, and each window's first token is only
    context. With a ``stride`` below ``window``, windows start every ``stride`` tokens and
    score only the tokens the previous window did not, so most tokens see at least
    ``window - stride`` tokens of context.
    """
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if window < 2:
        raise ValueError(f"window must be at least 2, not {window}")
    stride = window if stride is None else stride
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in 1..window ({window}), not {stride}")
    if tokens.size < 2:
        raise ValueError(f"perplexity needs at least 2 tokens, not {tokens.size}")
    total, count, scored_until = 0.0, 0, 0
    for start in range(0, tokens.size - 1, stride):
        chunk = tokens[start:start + window]
        if chunk.size < 2:
            break
        logits = model.forward(chunk)
        # target j of the chunk is token start + j + 1; score the ones not scored before
        first = max(scored_until - start - 1, 0)
        nll = token_nll(logits[first:-1], chunk[first + 1:])
        total += float(nll.sum())
        count += nll.size
        scored_until = start + chunk.size
        if scored_until >= tokens.size:
            break
    return float(np.exp(total / count))


def greedy_generate(model, tokenizer, prompt: str, n: int = 20, *,
                    stop_at_eos: bool = True) -> str:
    """The ``n`` tokens (at most) that greedy decoding appends to ``prompt``, as text.

    The prompt is prefilled in one forward; each new token then runs alone against the KV
    cache.
    """
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt must encode to at least one token")
    cache = model.new_cache()
    logits = model.forward(ids, cache, last_only=True)
    generated = []
    for step in range(n):
        token = int(np.argmax(logits[-1]))
        if stop_at_eos and token == tokenizer.eos_id:
            break
        generated.append(token)
        if step + 1 < n:
            logits = model.forward([token], cache)
    return tokenizer.decode(generated)
