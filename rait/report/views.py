"""The alternative views of the results table (macro average, echo-safe scoring) and the paired Δ tables of
``rait report``, read from ``results.json`` (``macro``, ``echo_safe``, ``paired``; see :mod:`rait.core.paired`).

The Δ tables compare every method with the reference (Init-Basic) and with the other bases of
:data:`rait.methods.DELTA_BASES` (Van-Tuning), and give the ΔTHS matrix of every pair.

Example:
    >>> from rait.report.views import fmt_delta
    >>> fmt_delta(None)
    '—'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rait.methods import DELTA_BASES, REFERENCE
from rait.report.plots import pretty

if TYPE_CHECKING:
    from rait.report import Run

MAIN_METRICS = ("P_c", "P_w", "P_r", "THS")
NONE = "—"


def _fmt_cell(m: Any, with_sd: bool = True) -> str:
    from rait.report import fmt_cell

    return fmt_cell(m, with_sd)


VIEW_TITLES = {"macro": "macro average over topics (MMLU subjects, equal weight each)",
               "echo_safe": "echo-safe scoring (no credit for an alias the question contains)"}


def view_table(run: "Run", view: str) -> tuple[list[str], list[list[str]]] | None:
    """Methods × tests table of P_c, P_w, P_r, THS under a ``results.json`` view (``macro`` or ``echo_safe``),
    with the pooled / papers' THS beside it; None when no result has the view."""
    tests = [t for t in run.tests if any((run.results.get(m, {}).get(t) or {}).get(view) for m in run.methods)]
    if not tests:
        return None
    base = "pooled" if view == "macro" else "papers"
    head = ["method"] + [f"{t} · {k}" for t in tests for k in (*MAIN_METRICS, f"THS ({base})")]
    rows = []
    for m in run.methods:
        row = [pretty(m)]
        for t in tests:
            r = run.results.get(m, {}).get(t) or {}
            v = r.get(view) or {}
            row += [_fmt_cell(v.get(k)) for k in MAIN_METRICS] + [_fmt_cell(r.get("THS"), with_sd=False)]
        rows.append(row)
    return head, rows


def view_note(run: "Run", view: str) -> str:
    if view == "macro":
        groups = {t: (run.results.get(REFERENCE, {}).get(t) or {}).get("macro", {}).get("n_groups")
                  for t in run.tests}
        g = ", ".join(f"{t}: {n} topics" for t, n in groups.items() if n)
        return (f"Rates averaged over topics with equal weight, as the papers report MMLU ({g}); THS from the "
                "macro rates against Init-Basic's macro point. `± sd` across seeds.")
    echo = {t: (run.results.get(REFERENCE, {}).get(t) or {}).get("n_echo") for t in run.tests}
    e = ", ".join(f"{t}: {n} of {(run.results.get(REFERENCE, {}).get(t) or {}).get('n')}"
                  for t, n in echo.items() if n is not None)
    return (f"Test items whose question contains one of their own aliases (3+ characters): {e}. Echo-safe: such "
            "an alias gives no credit; THS against Init-Basic's echo-safe point. The papers' rule is the default.")


def fmt_delta(c: dict[str, Any] | None) -> str:
    """``+3.2 [0.5, 6.0]*`` (``*`` = the 95 % paired interval excludes 0); ``—`` when absent.

    >>> fmt_delta({"value": 3.21, "lo": 0.5, "hi": 6.0, "significant": True})
    '+3.2 [+0.5, +6.0]*'
    """
    if not c:
        return NONE
    return f"{c['value']:+.1f} [{c['lo']:+.1f}, {c['hi']:+.1f}]" + ("*" if c.get("significant") else "")


def delta_tables(run: "Run", test: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Δ tables of one test set from ``results.json["paired"]``: (title, header, rows) for Δ against
    Init-Basic and Van-Tuning (THS, P_c, P_w and the items a ±1-point ΔTHS interval needs) and the ΔTHS matrix
    of every pair (row − column)."""
    pr = run.paired.get(test) or {}
    pairs, methods = pr.get("pairs") or {}, [m for m in run.methods if m in (pr.get("methods") or [])]
    if not pairs:
        return []
    key = "THS" if any("THS" in c for d in pairs.values() for c in d.values()) else "P_c"
    out = []
    for base in [b for b in DELTA_BASES if b in methods]:
        head = ["method", f"Δ{key}", "ΔP_c", "ΔP_w", f"n for ±1 (Δ{key})"]
        rows = [[pretty(m)] + [fmt_delta(pairs[m][base].get(k)) for k in (key, "P_c", "P_w")]
                + [str(pairs[m][base].get(key, {}).get("n_for_1pt", NONE))] for m in methods if m != base]
        out.append((f"{test}: Δ against {pretty(base)}", head, rows))
    head = ["row − column"] + [pretty(b) for b in methods]
    rows = [[pretty(a)] + [NONE if a == b else fmt_delta(pairs[a][b].get(key)) for b in methods] for a in methods]
    out.append((f"{test}: Δ{key} of every pair", head, rows))
    return out


def delta_note(run: "Run") -> str:
    pr = next(iter(run.paired.values()), {})
    return (f"Paired differences on the same items (row − column; seeds averaged per item), 95 % paired item-"
            f"bootstrap intervals ({pr.get('n_boot', '?')} resamples, one shared resample for all pairs); `*` = "
            "the interval excludes 0. n for ±1: test items a ±1-point interval would need at the observed "
            "per-item spread.")
