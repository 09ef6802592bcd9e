"""Regenerate tests/methods/golden_build.json: sha256 of train.jsonl per (method, kind, config) case.

Run with the code whose output is the reference: ``PYTHONPATH=<checkout> python tests/methods/_golden_gen.py``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.methods.golden_cases import CASES, run_case

if __name__ == "__main__":
    out = {f"{m}/{kind}/{json.dumps(cfg, sort_keys=True)}": run_case(m, kind, cfg, Path(sys.argv[1]))
           for m, kind, cfg in CASES}
    (Path(__file__).parent / "golden_build.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
