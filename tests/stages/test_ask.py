"""``rait ask`` on the tiny model: one-shot answer and the stdin REPL (ends on EOF)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from rait.stages.ask import answer, repl


def test_answer_is_string(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    a = answer(model, tok, "What is the capital of France?", max_new_tokens=5)
    b = answer(model, tok, "What is the capital of France?", max_new_tokens=5)
    assert isinstance(a, str) and a == b  # greedy
    out = io.StringIO()
    assert repl(model, tok, io.StringIO("Who wrote Hamlet?\n\nWhat is 2+2?\n"), out, prompt="basic",
                max_new_tokens=3) == 2


def test_cli(tiny_model_dir):
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "rait.cli", "ask", "--model", str(tiny_model_dir), "--max-new-tokens", "4"]
    p = subprocess.run(cmd + ["What is 2+2?", "--interactive", "--prompt", "basic"],
                       input="Who wrote Hamlet?\nWhat is 2+2?\n", cwd=root, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]  # returns at EOF
    p = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--interactive" in p.stderr
