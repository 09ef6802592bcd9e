"""Knowledge flow of GRAIT's "I don't know" picks: would CRaFT's flow filter change them?

"Flow-aware GRAIT" (GRAIT's gradient selection restricted to the idk rows CRaFT's filter keeps) differs from GRAIT
only in the picks whose knowledge flow Δcor = correctness after the rehearsal fine-tune − correctness of M0 is
positive (the rows CRaFT drops). This counts them on a finished run, so the candidate is judged before it is
trained: if few of GRAIT's picks have positive flow, flow-aware GRAIT is GRAIT with a few rows swapped.

>>> m0 = [{"id": "a", "correctness": 0.0}, {"id": "b", "correctness": 0.5}, {"id": "c", "correctness": 0.0}]
>>> mr = [{"id": "a", "correctness": 0.5}, {"id": "b", "correctness": 0.5}, {"id": "c", "correctness": 0.0}]
>>> flow_counts({"a", "b", "c"}, {"b", "c"}, m0, mr)
{'picks': 3, 'positive_flow': 1, 'also_craft': 2}
"""

from __future__ import annotations

from pathlib import Path

from rait.core.artifacts import read_jsonl


def flow_counts(grait_idk: set[str], craft_idk: set[str], m0: list[dict], mr: list[dict]) -> dict[str, int]:
    """GRAIT's idk picks, how many have Δcor > 0 (CRaFT's filter drops them) and how many CRaFT also labels idk."""
    before = {r["id"]: float(r["correctness"]) for r in m0}
    after = {r["id"]: float(r["correctness"]) for r in mr}
    positive = sum(1 for i in grait_idk if i in after and after[i] - before[i] > 0)
    return {"picks": len(grait_idk), "positive_flow": positive, "also_craft": len(grait_idk & craft_idk)}


def _idk_ids(build: Path, seed: int) -> set[str] | None:
    for d in (build, build / f"seed{seed}"):
        if (d / "train.jsonl").exists():
            return {r["id"] for r in read_jsonl(d / "train.jsonl") if r.get("label") == "idk"}
    return None


def grait_flow(root: Path, seed: int = 0) -> list[str]:
    """The doc lines for a run directory with GRAIT's and CRaFT's label sets and the rehearsed table (else [])."""
    g, c = _idk_ids(root / "build" / "grait", seed), _idk_ids(root / "build" / "craft", seed)
    m0, mr = root / "probe" / "m0" / "table.jsonl", root / "probe" / "mr" / "table.jsonl"
    if g is None or c is None or not m0.exists() or not mr.exists():
        return []
    n = flow_counts(g, c, read_jsonl(m0), read_jsonl(mr))
    return ["### Knowledge flow of GRAIT's picks", "",
            f"Of GRAIT's {n['picks']} \"I don't know\" rows, {n['positive_flow']} have positive knowledge flow "
            "(Δcor = correctness after the rehearsal fine-tune − M0's correctness > 0: the rows CRaFT's flow filter "
            f"drops), and {n['also_craft']} {'is' if n['also_craft'] == 1 else 'are'} also CRaFT's idk rows. A flow-aware GRAIT (GRAIT's gradient "
            f"selection on the rows CRaFT's filter keeps) would swap {n['positive_flow']} of its {n['picks']} picks "
            "(`bench/_flow.py`).", ""]
