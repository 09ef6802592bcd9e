"""Tests of the bench/ scripts (they are not a package: :func:`bench_module` loads one by file name)."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str):
    """Import ``bench/NAME.py`` as a fresh module."""
    spec = importlib.util.spec_from_file_location(f"bench_{name.lstrip('_')}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
