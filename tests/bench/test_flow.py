"""bench/_flow.py: GRAIT's idk picks counted against CRaFT's knowledge-flow filter on a hand-made run directory."""

import doctest
import json
from pathlib import Path

from tests.bench import bench_module


def _flow():
    return bench_module("_flow")


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_doctest():
    assert doctest.testmod(_flow()).failed == 0


def test_counts_positive_flow_and_overlap(tmp_path):
    flow = _flow()
    assert flow.grait_flow(tmp_path) == []  # nothing built yet: no section
    _write(tmp_path / "probe/m0/table.jsonl", [{"id": f"q{i}", "correctness": c} for i, c in
                                               enumerate([0.0, 0.0, 0.5, 0.0, 1.0])])
    _write(tmp_path / "probe/mr/table.jsonl", [{"id": f"q{i}", "correctness": c} for i, c in
                                               enumerate([0.5, 0.0, 0.0, 1 / 6, 1.0])])
    # GRAIT (one build) picks q0 (flow +0.5), q1 (0), q2 (-0.5) and q3 (+1/6); CRaFT (per seed) q1, q2
    _write(tmp_path / "build/grait/train.jsonl", [{"id": i, "label": "idk"} for i in ("q0", "q1", "q2", "q3")]
           + [{"id": "q4", "label": "van"}])
    _write(tmp_path / "build/craft/seed0/train.jsonl", [{"id": "q1", "label": "idk"}, {"id": "q2", "label": "idk"},
                                                        {"id": "q4", "label": "van"}])
    text = "\n".join(flow.grait_flow(tmp_path, seed=0))
    assert "Of GRAIT's 4 \"I don't know\" rows, 2 have positive knowledge flow" in text
    assert "and 2 are also CRaFT's idk rows" in text and "would swap 2 of its 4 picks" in text
