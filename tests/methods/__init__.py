"""Hand-made knowledge tables for the method golden tests (shared with tests/test_build.py).

OEQA table (22 rows; ``(correctness, certainty, correctness_rehearsed)``):
  van pool (cor >= 0.51): o00 o01 o02(0.51) o03 o04 o05 o16 o19 o21; ties at certainty 0.95 (o00, o21) and
  0.80 (o01, o03, o05); middle band (cor 0.5): o06 o17; idk pool (cor <= 0.49): o07(0.49) o08 o09 o10 o11
  o12 o13 o14 o15 o18 o20 with Δcor < 0 (o07 o10 o13 o15 o20), = 0 (o08 o11 o14), > 0 (o09 o12 o18).
  o01's rehearsed correctness is 0.0, so under the released ``_load_kf`` bug rows 10-19 (which read o01's
  value) get negative flows.

MCQA table (21 rows; certainty = −H): van pool (cor >= 0.5) m00 m01(0.5) m02(0.51) m04 m08 m10 m13 m15 m18
m20(0.5), ties at −0.5 (m01 m04 m10); idk pool (cor < 0.5) m03(0.49) m05 m06 m07 m09 m11 m12 m14 m16 m17 m19,
ties at −1.3 (m05 m06) and −1.2 (m03 m14); Δcor < 0 (m03 m07 m14 m19), = 0 (m05 m09 m11 m17), > 0 (m06 m12 m16).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OEQA = [  # id, correctness, certainty, correctness_rehearsed
    ("o00", 1.0, 0.95, 1.0), ("o01", 0.9, 0.80, 0.0), ("o02", 0.51, 0.60, 0.6), ("o03", 0.7, 0.80, 0.8),
    ("o04", 0.6, 0.30, 0.5), ("o05", 0.8, 0.80, 0.7), ("o06", 0.5, 0.50, 0.5), ("o07", 0.49, 0.20, 0.3),
    ("o08", 0.0, 0.10, 0.0), ("o09", 0.0, 0.10, 0.2), ("o10", 0.2, 0.15, 0.1), ("o11", 0.3, 0.40, 0.3),
    ("o12", 0.1, 0.05, 0.4), ("o13", 0.4, 0.25, 0.2), ("o14", 0.0, 0.30, 0.0), ("o15", 0.3, 0.35, 0.1),
    ("o16", 0.9, 0.70, 0.9), ("o17", 0.5, 0.90, 0.4), ("o18", 0.2, 0.12, 0.5), ("o19", 0.6, 0.65, 0.7),
    ("o20", 0.1, 0.45, 0.0), ("o21", 1.0, 0.95, 1.0),
]

MCQA = [  # id, correctness, certainty (= -H), correctness_rehearsed
    ("m00", 0.9, -0.2, 0.95), ("m01", 0.5, -0.5, 0.6), ("m02", 0.51, -0.4, 0.5), ("m03", 0.49, -1.2, 0.3),
    ("m04", 0.7, -0.5, 0.7), ("m05", 0.2, -1.3, 0.2), ("m06", 0.1, -1.3, 0.4), ("m07", 0.3, -1.0, 0.1),
    ("m08", 0.8, -0.3, 0.9), ("m09", 0.0, -1.38, 0.0), ("m10", 0.6, -0.5, 0.5), ("m11", 0.45, -1.1, 0.45),
    ("m12", 0.25, -0.9, 0.35), ("m13", 0.95, -0.1, 1.0), ("m14", 0.35, -1.2, 0.3), ("m15", 0.55, -0.6, 0.5),
    ("m16", 0.05, -1.35, 0.3), ("m17", 0.4, -0.8, 0.4), ("m18", 0.65, -0.45, 0.6), ("m19", 0.15, -1.25, 0.1),
    ("m20", 0.5, -0.7, 0.4),
]


def oeqa_row(id_: str, cor: float, cer: float) -> dict[str, Any]:
    return {"id": id_, "question": f"Question {id_}?", "answers": [f"gold {id_}", "alias"], "kind": "oeqa",
            "correctness": cor, "certainty": cer, "samples": [], "correct": [], "refused": []}


def mcqa_row(id_: str, cor: float, cer: float) -> dict[str, Any]:
    return {"id": id_, "question": f"Stem {id_}?", "choices": ["w", "x", "y", "z"], "gold": "ABCD"[int(id_[1:]) % 4],
            "topic": "high_school_physics", "kind": "mcqa", "correctness": cor, "certainty": cer,
            "entropy": -cer}


def table(kind: str, rehearsed: bool = False) -> list[dict[str, Any]]:
    """The golden table; with ``rehearsed`` the merged columns ``rait build`` adds."""
    spec, make = (OEQA, oeqa_row) if kind == "oeqa" else (MCQA, mcqa_row)
    rows = []
    for id_, cor, cer, cor_r in spec:
        row = make(id_, cor, cer)
        if rehearsed:
            row.update(correctness_rehearsed=cor_r, certainty_rehearsed=cer, flow=cor_r - cor)
        rows.append(row)
    return rows


def rehearsed_table(kind: str) -> list[dict[str, Any]]:
    """The rehearsed model's own table (same ids; its correctness is the golden ``correctness_rehearsed``)."""
    spec, make = (OEQA, oeqa_row) if kind == "oeqa" else (MCQA, mcqa_row)
    return [make(id_, cor_r, cer) for id_, _, cer, cor_r in spec]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ids(rows: list[dict[str, Any]], label: str | None = None) -> list[str]:
    """Sorted ids of the rows (with ``label``), duplicates kept."""
    return sorted(r["id"] for r in rows if label is None or r["label"] == label)
