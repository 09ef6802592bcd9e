"""Knowledge-boundary diagnostics: *why* a method's refusals do or do not line up with what the model knows.

Three views of a run (``rait report`` shows them; ``results.json`` keeps the numbers):

* **knowledge curve** — test items binned by popularity decile (any set with a ``popularity`` field, e.g.
  ``builtin:graded``): M0's greedy P_c per decile (Init-Basic), and each method's P_c / P_w / P_r per decile.
* **refusal alignment** — per method and test set, how its refusals line up with M0's greedy verdict on the
  *same* items: AUROC of the method's refusal (the share of its seeds that refused the item) as a detector of
  "M0 answers this wrongly", precision (refused items M0 gets wrong) and recall (items M0 gets wrong that were
  refused). THS rewards exactly this: refusing what M0 would get wrong, answering what it gets right.
* **label quality** — per trained method, its training labels against M0's greedy verdict on the pool (the probe
  with ``greedy: true``): the share of "I don't know" rows whose question M0 answers wrongly, of answer rows it
  answers rightly, and the share of the pool's unknown items that received an "I don't know" label.

Example:
    >>> from rait.run.diagnostics import refusal_alignment, deciles
    >>> m0 = {"a": "correct", "b": "wrong", "c": "wrong", "d": "correct"}
    >>> refusal_alignment({"a": [0.0], "b": [1.0], "c": [0.0], "d": [0.0]}, m0)
    {'n': 4, 'm0_wrong': 2, 'refused': 0.25, 'auroc': 0.75, 'precision': 1.0, 'recall': 0.5}
    >>> deciles([5, 1, 3, 2, 4], n_bins=5)
    [4, 0, 2, 1, 3]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


def deciles(values: Sequence[float], n_bins: int = 10) -> list[int]:
    """Bin index (0 = least popular) of each value by rank; ties share the bin of their first rank."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return []
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v), dtype=int)
    ranks[order] = np.arange(len(v))
    for val in np.unique(v):  # ties: every member gets the lowest rank of the tie
        idx = np.flatnonzero(v == val)
        ranks[idx] = ranks[idx].min()
    return [int(r * n_bins // len(v)) for r in ranks]


def _rates(verdicts: Sequence[Sequence[str]]) -> dict[str, float]:
    """P_c / P_w / P_r in % over items × seeds (each inner list: one item's verdicts across seeds)."""
    flat = [v for per in verdicts for v in per]
    n = max(len(flat), 1)
    return {k: 100.0 * sum(v == name for v in flat) / n
            for k, name in (("P_c", "correct"), ("P_w", "wrong"), ("P_r", "refuse"))}


def knowledge_curve(popularity: Mapping[str, float], per_method: Mapping[str, Mapping[str, Sequence[str]]],
                    n_bins: int = 10) -> dict[str, Any]:
    """P_c / P_w / P_r per popularity decile for every method.

    Args:
        popularity: test item id → popularity (items without one are left out).
        per_method: method → item id → that item's verdicts (one per seed).
        n_bins: number of bins (deciles by default).

    Returns:
        ``{"bins": [{"lo", "hi", "n"}], "methods": {method: {"P_c": [...], "P_w": [...], "P_r": [...]}}}``.
    """
    ids = sorted(popularity, key=lambda i: (popularity[i], i))
    if not ids:
        return {"bins": [], "methods": {}}
    bins = deciles([popularity[i] for i in ids], n_bins)
    members = [[i for i, b in zip(ids, bins) if b == k] for k in range(n_bins)]
    members = [m for m in members if m]
    out = {"bins": [{"lo": popularity[m[0]], "hi": popularity[m[-1]], "n": len(m)} for m in members],
           "methods": {}}
    for method, verdicts in per_method.items():
        curves = {"P_c": [], "P_w": [], "P_r": []}
        for m in members:
            r = _rates([verdicts[i] for i in m if i in verdicts])
            for k in curves:
                curves[k].append(round(r[k], 2))
        out["methods"][method] = curves
    return out


def refusal_alignment(refusal: Mapping[str, Sequence[float]], m0: Mapping[str, str]) -> dict[str, Any]:
    """How a method's refusals track M0's wrong answers on the same items.

    Args:
        refusal: item id → 1.0/0.0 per seed (refused or not); the mean over seeds is the refusal score.
        m0: item id → M0's greedy verdict (Init-Basic) on that item.

    Returns:
        ``n``, ``m0_wrong`` (count), ``refused`` (share), ``auroc`` (None when M0 is all right or all wrong),
        ``precision`` (None when nothing is refused), ``recall`` (None when M0 is never wrong).
    """
    from rait.core.metrics import auroc

    ids = [i for i in refusal if i in m0]
    score = np.array([float(np.mean(refusal[i])) for i in ids])
    wrong = np.array([m0[i] != "correct" for i in ids])
    out: dict[str, Any] = {"n": len(ids), "m0_wrong": int(wrong.sum()),
                           "refused": round(float(score.mean()), 4) if ids else None}
    both = 0 < wrong.sum() < len(ids)
    out["auroc"] = round(float(auroc(score, wrong)), 4) if both else None
    out["precision"] = round(float((score * wrong).sum() / score.sum()), 4) if score.sum() > 0 else None
    out["recall"] = round(float(score[wrong].mean()), 4) if wrong.any() else None
    return out


def label_quality(rows: Sequence[Mapping[str, Any]], table: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Training labels against M0's greedy verdict on the pool (``greedy_correct`` in the knowledge table).

    Args:
        rows: the method's training rows (``id``, ``label`` "van"/"idk").
        table: the pool's knowledge table; None is returned when it has no greedy verdicts.

    >>> t = [{"id": "a", "greedy_correct": True}, {"id": "b", "greedy_correct": False},
    ...      {"id": "c", "greedy_correct": False}]
    >>> label_quality([{"id": "a", "label": "van"}, {"id": "b", "label": "idk"}, {"id": "a", "label": "idk"}], t)
    {'n_van': 1, 'n_idk': 2, 'idk_m0_wrong': 0.5, 'van_m0_right': 1.0, 'unknown_labelled_idk': 0.5}
    """
    if not table or not all("greedy_correct" in r for r in table):
        return None
    right = {r["id"]: bool(r["greedy_correct"]) for r in table}
    van = [right[r["id"]] for r in rows if r.get("label") == "van" and r["id"] in right]
    idk = [not right[r["id"]] for r in rows if r.get("label") == "idk" and r["id"] in right]
    idk_ids = {r["id"] for r in rows if r.get("label") == "idk"}
    unknown = [i for i, ok in right.items() if not ok]
    def mean(xs: list[bool]) -> float | None:
        return round(float(np.mean(xs)), 4) if xs else None

    return {"n_van": len(van), "n_idk": len(idk), "idk_m0_wrong": mean(idk), "van_m0_right": mean(van),
            "unknown_labelled_idk": mean([i in idk_ids for i in unknown])}


# ------------------------------------------------------------------------------------------------- a whole run
def _verdicts(run_dir: Path, method: str, seeds: Sequence[int], test: str) -> dict[str, list[str]]:
    from rait.core.artifacts import read_jsonl

    out: dict[str, list[str]] = {}
    for s in seeds:
        p = run_dir / "eval" / method / f"seed{s}" / test / "items.jsonl"
        if p.exists():
            for r in read_jsonl(p):
                out.setdefault(r["id"], []).append(r["verdict"])
    return out


def inference_cost(run_dir: Path, method: str, seed: int, test: str) -> dict[str, float]:
    """Generations and extra forward passes per test question (abstention baselines record theirs)."""
    import json

    p = run_dir / "eval" / method / f"seed{seed}" / test / "metrics.json"
    extra = json.loads(p.read_text()).get("abstain", {}) if p.exists() else {}
    return {"generations_per_q": float(extra.get("cost_generations", 1)),
            "forward_per_q": float(extra.get("cost_forward", 0))}


def run_diagnostics(run_dir: str | Path, methods: Sequence[str], tests: Sequence[str],
                    seeds: Mapping[str, Sequence[int]], reference: str = "init_basic",
                    n_bins: int = 10) -> dict[str, Any]:
    """All three diagnostics of a run directory written by ``rait run`` (see the module docstring).

    Args:
        run_dir: the run root (``data/``, ``eval/``, ``probe/m0/table.jsonl``, ``build/``).
        methods: methods in report order.
        tests: test-set names (``id``, ``ood``).
        seeds: method → the seeds it was evaluated with.
        reference: the method whose verdicts are M0's (Init-Basic).
        n_bins: popularity bins.
    """
    from rait.core.artifacts import read_jsonl

    root = Path(run_dir)
    out: dict[str, Any] = {"knowledge_curve": {}, "refusal_alignment": {}, "label_quality": {}, "cost": {}}
    for test in tests:
        per = {m: _verdicts(root, m, seeds[m], test) for m in methods}
        m0 = {i: v[0] for i, v in per.get(reference, {}).items()}
        data = root / "data" / f"{test}.jsonl"
        pop = {r["id"]: r["popularity"] for r in read_jsonl(data) if r.get("popularity") is not None} \
            if data.exists() else {}
        if pop:
            out["knowledge_curve"][test] = knowledge_curve(pop, per, n_bins)
        out["refusal_alignment"][test] = {
            m: refusal_alignment({i: [float(x == "refuse") for x in v] for i, v in per[m].items()}, m0)
            for m in methods if m != reference and per[m]}
        out["cost"][test] = {m: inference_cost(root, m, seeds[m][0], test) for m in methods}
    table_path = root / "probe" / "m0" / "table.jsonl"
    table = read_jsonl(table_path) if table_path.exists() else None
    for m in methods:
        builds = sorted((root / "build").glob(f"{m}/**/train.jsonl")) if (root / "build").exists() else []
        if table and builds:
            q = label_quality(read_jsonl(builds[0]), table)
            if q is not None:
                out["label_quality"][m] = q
    return out


def write_diagnostics(plan: Any) -> dict[str, Any]:
    """``diagnostics.json`` of a ``rait run`` plan (called by its aggregate stage after ``results.json``)."""
    import json

    from rait.core.artifacts import atomic_write_text
    from rait.methods import get

    c = plan.cfg
    seeds = {m: (list(c.seeds) if get(m).trains else [c.seeds[0]]) for m in c.methods}
    d = run_diagnostics(plan.root, c.methods, list(plan.tests()), seeds)
    atomic_write_text(plan.root / "diagnostics.json", json.dumps(d, indent=2, sort_keys=True) + "\n")
    return d
