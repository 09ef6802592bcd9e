"""bound_kernel_caches: oneDNN's primitive cache is capped unless the user sized it, and the cap stops its growth."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rait.core import runtime

ALL_VARS = [*runtime.KERNEL_CACHE_VARS, "LRU_CACHE_CAPACITY"]


@pytest.fixture
def clean_env(monkeypatch):
    for n in ALL_VARS:  # set, then deleted: recorded, so whatever the test sets is undone afterwards
        monkeypatch.setenv(n, "0")
        monkeypatch.delenv(n)
    return monkeypatch


def test_sets_the_cap_once(clean_env):
    assert runtime.bound_kernel_caches(32) is True
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "32" and "LRU_CACHE_CAPACITY" not in os.environ
    assert runtime.bound_kernel_caches(8) is False  # already set: kept
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "32"


def test_user_values_win(clean_env):
    clean_env.setenv("DNNL_PRIMITIVE_CACHE_CAPACITY", "7")  # oneDNN's older name counts as set
    assert runtime.bound_kernel_caches() is False
    assert "ONEDNN_PRIMITIVE_CACHE_CAPACITY" not in os.environ


def test_cli_entry_sets_it(clean_env, capsys):
    from rait.cli import main

    assert main([]) == 0  # no command: prints the help, runs nothing
    assert os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY") == str(runtime.KERNEL_CACHE_CAPACITY)


GROWTH = r"""
import ctypes, json, sys, torch
if sys.argv[1] == "bounded":
    from rait.core.runtime import bound_kernel_caches
    bound_kernel_caches()
class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6"); libc.mallinfo2.restype = MI
torch.set_num_threads(1)
w = torch.randn(1536, 576).to(torch.bfloat16)
torch.nn.functional.linear(torch.randn(1, 576).to(torch.bfloat16), w)
before = libc.mallinfo2().uordblks
for rows in range(2, 300):  # a new shape per call, as decoding with dropped rows makes
    torch.nn.functional.linear(torch.randn(rows, 576).to(torch.bfloat16), w)
print(json.dumps((libc.mallinfo2().uordblks - before) / 2**20))
"""


def _growth_mb(mode: str, env: dict) -> float:
    out = subprocess.run([sys.executable, "-c", GROWTH, mode], capture_output=True, text=True, env=env, timeout=300)
    if out.returncode:
        pytest.skip(f"cannot measure the heap here (glibc mallinfo2): {out.stderr.strip()[-200:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_cap_stops_the_growth_of_the_heap():
    env = {k: v for k, v in os.environ.items() if k not in ALL_VARS}
    env["LRU_CACHE_CAPACITY"] = "1"  # ideep's cache (its own growth) nearly off: what is measured is oneDNN's
    free = _growth_mb("default", env)
    if free < 20:
        pytest.skip(f"bf16 matmuls here do not fill a shape-keyed cache ({free:.1f} MB for 298 shapes)")
    assert _growth_mb("bounded", env) < 0.5 * free  # measured on Sapphire Rapids: 18.7 vs 86.3 MB
