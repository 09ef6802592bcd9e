"""Shared helpers for the benchmark scripts: machine description, matmul roofline, JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_info() -> tuple[str, list[str]]:
    """CPU model name and which of the instruction sets that decide matmul speed it exposes."""
    cpu, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return cpu, [f for f in ISA_FLAGS if f in flags]


def isa_caps() -> str:
    """The instruction-set caps in force (``""`` if none), e.g. ``ATEN_CPU_CAPABILITY=avx2 ...``: with ATen, oneDNN
    and MKL capped at AVX2 an AMX CPU runs as an AVX2-only one does (see docs/speed.md)."""
    from rait.core.models import ISA_CAP_VARS  # the variables the auto-dtype measurement keys its cache on

    return " ".join(f"{v}={os.environ[v]}" for v in ISA_CAP_VARS if os.environ.get(v))


def cpu_line() -> str:
    """One line naming the CPU and its instruction sets (printed with every figure)."""
    cpu, isa = cpu_info()
    caps = f" capped by {isa_caps()}" if isa_caps() else ""
    return (f"CPU: {cpu}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads, "
            f"ISA: {' '.join(isa) or 'none of ' + '/'.join(ISA_FLAGS)}{caps}")


def machine() -> dict[str, Any]:
    """CPU model and instruction sets, cores, torch threads, GPU (if any), date."""
    cpu, isa = cpu_info()
    return {
        "cpu": cpu, "isa": isa, "isa_caps": isa_caps(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def matmul_gflops(dtype: torch.dtype = torch.bfloat16, n: int = 2048, reps: int = 10) -> float:
    """Measured n×n matmul throughput in GFLOP/s (the machine's practical roofline for this dtype)."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(n, n, dtype=dtype, device=dev)
    b = torch.randn(n, n, dtype=dtype, device=dev)
    for _ in range(2):
        a @ b
    if dev == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    if dev == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def write_result(path: str | Path | None, result: dict[str, Any]) -> None:
    """Write a benchmark result as JSON (if a path is given)."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2) + "\n")
