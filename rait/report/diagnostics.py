"""The knowledge-boundary diagnostics section of ``rait report`` (see :mod:`rait.run.diagnostics`).

Reads ``diagnostics.json`` of a run (written by ``rait run``'s aggregate stage; recomputed from the run directory
when absent) and renders three tables — knowledge curve per popularity decile, refusal alignment with the
inference cost of each method, label quality of each training set — and one figure (P_c and P_r per popularity
decile, one line per method).

Example:
    >>> from rait.report.diagnostics import curve_rows
    >>> kc = {"bins": [{"lo": 1, "hi": 9, "n": 2}], "methods": {"m": {"P_c": [50.0], "P_w": [0.0], "P_r": [50.0]}}}
    >>> curve_rows(kc, ["m"], str)
    (['decile', 'popularity', 'n', 'm'], [['1', '1–9', '2', '50 / 0 / 50']])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

NONE = "—"


def load(run_dir: Path, methods: Sequence[str], tests: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """``diagnostics.json`` of the run, or the diagnostics recomputed from its files."""
    p = Path(run_dir) / "diagnostics.json"
    if p.exists():
        return json.loads(p.read_text())
    from rait.methods import get
    from rait.run.diagnostics import run_diagnostics

    per = {m: (list(seeds) if get(m).trains else list(seeds)[:1]) for m in methods}
    return run_diagnostics(run_dir, methods, tests, per)


def _pop(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:g}"


def curve_rows(kc: dict[str, Any], methods: Sequence[str], pretty: Callable[[str], str]):
    """Header and rows: one row per popularity decile, cells ``P_c / P_w / P_r`` per method."""
    head = ["decile", "popularity", "n"] + [pretty(m) for m in methods if m in kc["methods"]]
    rows = []
    for k, b in enumerate(kc["bins"]):
        cells = [f"{c['P_c'][k]:.0f} / {c['P_w'][k]:.0f} / {c['P_r'][k]:.0f}"
                 for m in methods if (c := kc["methods"].get(m))]
        rows.append([str(k + 1), f"{_pop(b['lo'])}–{_pop(b['hi'])}", str(b["n"])] + cells)
    return head, rows


def _f(x: Any, nd: int = 3) -> str:
    return NONE if x is None else f"{x:.{nd}f}"


def alignment_rows(diag: dict[str, Any], methods: Sequence[str], tests: Sequence[str],
                   pretty: Callable[[str], str]):
    """Header and rows: refusal AUROC / precision / recall / refused share vs M0, and generations per question."""
    head = ["method"] + [f"{t} · {k}" for t in tests for k in ("AUROC", "precision", "recall", "refused")] + \
        ["generations/q", "extra forward/q"]
    rows = []
    for m in methods:
        cells = []
        for t in tests:
            a = diag["refusal_alignment"].get(t, {}).get(m)
            cells += [_f(a.get(k)) if a else NONE for k in ("auroc", "precision", "recall", "refused")]
        cost = next((diag["cost"][t][m] for t in tests if m in diag.get("cost", {}).get(t, {})), None)
        cells += [_f(cost["generations_per_q"], 0), _f(cost["forward_per_q"], 0)] if cost else [NONE, NONE]
        rows.append([pretty(m)] + cells)
    return head, rows


def label_rows(diag: dict[str, Any], methods: Sequence[str], pretty: Callable[[str], str]):
    """Header and rows of the label-quality table (methods with a training set and a greedy-probed pool)."""
    head = ["method", "van rows", "idk rows", "idk rows M0 gets wrong", "van rows M0 gets right",
            "pool unknowns labelled idk"]
    rows = [[pretty(m), str(q["n_van"]), str(q["n_idk"]), _f(q["idk_m0_wrong"]), _f(q["van_m0_right"]),
             _f(q["unknown_labelled_idk"])] for m in methods if (q := diag["label_quality"].get(m))]
    return head, rows


def curve_png(diag: dict[str, Any], methods: Sequence[str], tests: Sequence[str],
              pretty: Callable[[str], str]) -> bytes | None:
    """P_c (top) and P_r (bottom) per popularity decile, one panel column per test set; None without curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rait.report.plots import _png

    tests = [t for t in tests if t in diag["knowledge_curve"]]
    if not tests:
        return None
    fig, axes = plt.subplots(2, len(tests), figsize=(5.2 * len(tests), 6.4), squeeze=False, sharex=True)
    for j, t in enumerate(tests):
        kc = diag["knowledge_curve"][t]
        x = list(range(1, len(kc["bins"]) + 1))
        for m in methods:
            c = kc["methods"].get(m)
            if c:
                axes[0][j].plot(x, c["P_c"], marker="o", ms=3, label=pretty(m))
                axes[1][j].plot(x, c["P_r"], marker="o", ms=3, label=pretty(m))
        axes[0][j].set_title(f"{t}: correct by popularity decile")
        axes[1][j].set_title(f"{t}: refused by popularity decile")
        axes[0][j].set_ylabel("P_c (%)")
        axes[1][j].set_ylabel("P_r (%)")
        axes[1][j].set_xlabel("popularity decile (1 = least popular)")
        axes[1][j].set_xticks(x)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _png(fig)


NOTES = {
    "curve": "Knowledge curve: test items binned by the popularity of their subject (deciles, least popular first); "
             "cells are P_c / P_w / P_r in %. M0's greedy P_c (Init-Basic) shows where the model's knowledge "
             "ends; a method that learned the boundary refuses more where P_c falls.",
    "align": "Refusal alignment: how each method's refusals line up with M0's greedy verdict on the same test "
             "items — AUROC of 'refused' (share of seeds) as a detector of 'M0 answers wrongly', precision = "
             "refused items M0 gets wrong, recall = items M0 gets wrong that were refused. THS rewards exactly "
             "this. generations/q and extra forward/q: inference cost per test question.",
    "labels": "Label quality: each training set against M0's greedy verdict on the pool (needs the pool probed "
              "with greedy: true).",
}


def sections(run_dir: Path, methods: Sequence[str], tests: Sequence[str], seeds: Sequence[int],
             pretty: Callable[[str], str]) -> tuple[list[str], list[tuple[str, list, list]], bytes | None]:
    """``(markdown lines, [(heading, head, rows)] for HTML, knowledge-curve PNG)``."""
    from rait.report import _md_table

    diag = load(run_dir, methods, tests, seeds)
    md, tables = ["## Knowledge boundary", ""], []
    for t in tests:
        kc = diag["knowledge_curve"].get(t)
        if kc and kc["bins"]:
            head, rows = curve_rows(kc, methods, pretty)
            md += [f"### Knowledge curve · {t}", "", NOTES["curve"], "", _md_table(head, rows), ""]
            tables.append((f"Knowledge curve · {t}", head, rows))
    if not diag["knowledge_curve"]:
        md += ["No test item has a popularity field: knowledge curve omitted.", ""]
    head, rows = alignment_rows(diag, methods, tests, pretty)
    md += ["### Refusal alignment and inference cost", "", NOTES["align"], "", _md_table(head, rows), ""]
    tables.append(("Refusal alignment and inference cost", head, rows))
    head, rows = label_rows(diag, methods, pretty)
    if rows:
        md += ["### Label quality", "", NOTES["labels"], "", _md_table(head, rows), ""]
        tables.append(("Label quality", head, rows))
    png = curve_png(diag, methods, tests, pretty)
    if png is not None:
        md += ["![knowledge curve](report_curve.png)", ""]
    return md, tables, png
