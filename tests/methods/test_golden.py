"""Every method's ``train.jsonl`` stays byte-identical to the one the pre-refactor code wrote (golden_build.json;
regenerate with tests/methods/_golden_gen.py only when a change of the training rows is intended)."""

import json
from pathlib import Path

import pytest

from tests.methods.golden_cases import CASES, run_case

GOLDEN = json.loads((Path(__file__).parent / "golden_build.json").read_text())


@pytest.mark.parametrize("method,kind,cfg", CASES, ids=lambda x: json.dumps(x, sort_keys=True) if isinstance(x, dict)
                         else str(x))
def test_training_rows_unchanged(method, kind, cfg, tmp_path):
    assert run_case(method, kind, cfg, tmp_path) == GOLDEN[f"{method}/{kind}/{json.dumps(cfg, sort_keys=True)}"]
