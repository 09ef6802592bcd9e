"""2 CPU processes (torchrun, gloo) give the same final weights as 1 process with the same effective batch.

Note: ``accelerate launch --cpu --num_processes 2`` starts a single process (checked with accelerate 1.15);
torchrun is the way to get several CPU ranks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.stages.test_train import write_rows

ROOT = Path(__file__).resolve().parents[2]
SETS = ["epochs=2", "lora_dropout=0", "precision=fp32", "lr=0.001", "logging_steps=100", "save_steps=0"]


def run(cmd, **env):
    e = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **env}
    p = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return p


def rait_train(data, model, out, *sets):
    args = ["train", "--data", str(data), "--model", str(model), "--out", str(out)]
    for s in (*SETS, *sets):
        args += ["--set", s]
    return args


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None
                    and shutil.which("torchrun") is None, reason="torchrun not installed")
def test_two_processes_equal_one(tmp_path, tiny_model_dir):
    data = write_rows(tmp_path / "train.jsonl", [1.0, 2.0, 0.5])
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    run([torchrun, "--nproc_per_node", "2", "--master_port", "29517", "-m", "rait.cli",
         *rait_train(data, tiny_model_dir, tmp_path / "mp", "batch_size=4", "grad_accum=1")])
    run([sys.executable, "-m", "rait.cli",
         *rait_train(data, tiny_model_dir, tmp_path / "sp", "batch_size=4", "grad_accum=2")])
    man = json.loads((tmp_path / "mp" / "manifest.json").read_text())
    assert man["outputs"]["processes"] == 2 and man["outputs"]["effective_batch"] == 8 and man["outputs"]["steps"] == 6
    a, b = load_file(str(tmp_path / "mp" / "model.safetensors")), load_file(str(tmp_path / "sp" / "model.safetensors"))
    base = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    assert any(not torch.allclose(a[k], base[k]) for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
