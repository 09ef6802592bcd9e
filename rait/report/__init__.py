"""``rait report``: markdown + self-contained HTML report of a run directory written by ``rait run``.

Reads ``run.json``, ``results.json``, the knowledge table ``probe/m0/table.jsonl``, each method's
``build/METHOD/decisions.jsonl`` and the per-item evaluations ``eval/METHOD/seed{S}/TEST/items.jsonl`` (any of
the last three may be missing; the report says so). Writes ``report.md`` (tables, linked PNG figures
``report_plane.png`` / ``report_knowledge.png``) and ``report.html`` (the same tables, the figures inlined as
data URIs, and a per-item browser in inline JavaScript — no network access). See ``docs/report.md``.

Example::

    rait report runs/demo                 # writes runs/demo/report.md and runs/demo/report.html
    rait report runs/demo --out /tmp/rep --max-items 200 --bins 8

    >>> from rait.report import fmt_cell
    >>> fmt_cell({"value": 41.25, "lo": 38.0, "hi": 44.5, "sd": 1.23})
    '41.2 [38.0, 44.5] ± 1.2'
"""

from __future__ import annotations

import argparse
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rait.core.artifacts import atomic_write_text, read_jsonl
from rait.errors import DataError, RaitError
from rait.methods import REFERENCE
from rait.report.views import VIEW_TITLES, delta_note, delta_tables, view_note, view_table

MAIN_METRICS = ("P_c", "P_w", "P_r", "THS")
EXTRA_METRICS = ("AUROC", "AP", "over_conservativeness", "prudence", "honesty")
NONE = "—"


@dataclass
class Run:
    """What the report needs from a run directory (methods and tests in run.json order)."""

    dir: Path
    info: dict[str, Any]
    methods: list[str]
    tests: list[str]
    results: dict[str, dict[str, dict[str, Any]]]
    reference: dict[str, dict[str, Any]]
    table: list[dict[str, Any]] | None = None
    decisions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    paired: dict[str, dict[str, Any]] = field(default_factory=dict)


def _num(x: Any) -> float | None:
    if isinstance(x, dict):
        x = x.get("value")
    if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x):
        return None
    return float(x)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, f"malformed JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise DataError(path, None, "expected a JSON object")
    return obj


def _ordered(preferred: Sequence[str], present: Sequence[str]) -> list[str]:
    """``preferred`` entries that are present, in order, then the other present ones."""
    pres = list(dict.fromkeys(present))
    return [x for x in preferred if x in pres] + [x for x in pres if x not in preferred]


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory; a RaitError names the missing/malformed file.

    Args:
        run_dir: directory written by ``rait run`` (needs ``results.json``; ``run.json`` is optional).
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise RaitError(f"{d}: run directory not found")
    rpath = d / "results.json"
    if not rpath.exists():
        raise RaitError(f"{rpath}: results.json not found — is {d} a run directory written by `rait run`?")
    res = _read_json(rpath)
    results = res.get("results")
    if not isinstance(results, dict) or not all(isinstance(v, dict) for v in results.values()):
        raise DataError(rpath, None, "expected {\"results\": {METHOD: {TEST: metrics}}, \"reference\": {...}}")
    info = _read_json(d / "run.json") if (d / "run.json").exists() else {}
    methods = _ordered(list(info.get("methods") or []), list(results))
    tests = _ordered(list((info.get("tests") or {}).keys()), [t for m in results.values() for t in m])
    reference = dict(res.get("reference") or {})
    for t in tests:  # fall back to Init-Basic's own point when no explicit reference was written
        ib = results.get(REFERENCE, {}).get(t)
        if t not in reference and ib and _num(ib.get("P_w")):
            reference[t] = {"P_c0": _num(ib.get("P_c")), "P_w0": _num(ib.get("P_w"))}
    run = Run(d, info, methods, tests, results, reference, paired=dict(res.get("paired") or {}))
    tpath = d / "probe" / "m0" / "table.jsonl"
    if tpath.exists():
        run.table = read_jsonl(tpath)
    first = f"seed{(info.get('seeds') or [0])[0]}"
    for m in methods:
        bdir = d / "build" / m
        if not (bdir / "decisions.jsonl").exists() and (bdir / first).is_dir():
            bdir = bdir / first  # one build per seed (methods that draw at random): show the first seed's
        dec = _decisions(bdir, run.table)
        if dec:
            run.decisions[m] = dec
    return run


def _decisions(bdir: Path, table: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """``{id: decision}`` from ``decisions.jsonl``; when that is absent or empty (a method that records none),
    rebuilt from ``train.jsonl`` labels, with the table ids missing from it counted as dropped."""
    p = bdir / "decisions.jsonl"
    dec = {r.get("id"): r for r in read_jsonl(p)} if p.exists() else {}
    if dec or not (bdir / "train.jsonl").exists():
        return dec
    for r in read_jsonl(bdir / "train.jsonl"):
        dec.setdefault(r.get("id"), {"id": r.get("id"), "label": r.get("label"), "reason": "in train.jsonl"})
    for r in table or []:
        dec.setdefault(r.get("id"), {"id": r.get("id"), "label": None, "reason": "not in train.jsonl"})
    return dec


def fmt_cell(m: Any, with_sd: bool = True) -> str:
    """``value [lo, hi]`` (+ ``± sd`` when finite) of a ``{value, lo, hi, sd}`` dict; ``—`` when absent."""
    from rait.stages.evaluate import fmt_ci

    v = _num(m)
    if v is None:
        return NONE
    if not isinstance(m, dict):
        return f"{v:.1f}"
    lo, hi, sd = _num(m.get("lo")), _num(m.get("hi")), _num(m.get("sd"))
    s = fmt_ci({"value": v, "lo": lo, "hi": hi}) if lo is not None and hi is not None else f"{v:.1f}"
    return s + (f" ± {sd:.1f}" if with_sd and sd is not None else "")


def _fmt_frac(x: Any) -> str:
    v = _num(x)
    return NONE if v is None else f"{v:.3f}"


def pretty(m: str) -> str:
    """Display name of a method."""
    from rait.report.plots import pretty as p

    return p(m)


def _cell_pair(m: Any) -> tuple[str, str]:
    """``(value, "[lo, hi] ± sd")`` for the HTML table (value on top, CI below)."""
    full = fmt_cell(m)
    v, _, rest = full.partition(" ")
    return v, rest


def main_table(run: Run) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the methods × test sets table (P_c, P_w, P_r, THS with CIs and seed sd)."""
    head = ["method"] + [f"{t} · {k}" for t in run.tests for k in MAIN_METRICS]
    rows = []
    for m in run.methods:
        r = run.results.get(m, {})
        rows.append([pretty(m)] + [fmt_cell((r.get(t) or {}).get(k)) for t in run.tests for k in MAIN_METRICS])
    return head, rows


def extra_table(run: Run) -> tuple[list[tuple[str, str]], list[list[str]]] | None:
    """Columns ``(test, metric)`` present anywhere and one row per method; None when no extra metric exists."""
    cols = [(t, k) for t in run.tests for k in EXTRA_METRICS
            if any(_num((run.results.get(m, {}).get(t) or {}).get(k)) is not None for m in run.methods)]
    if not cols:
        return None
    rows = [[pretty(m)] + [_fmt_frac((run.results.get(m, {}).get(t) or {}).get(k)) for t, k in cols]
            for m in run.methods]
    return cols, rows


def decision_counts(run: Run) -> list[list[str]]:
    """Rows ``method, van, idk, dropped`` for methods with decisions."""
    out = []
    for m in run.methods:
        dec = run.decisions.get(m)
        if dec:
            labels = [r.get("label") for r in dec.values()]
            out.append([pretty(m), str(labels.count("van")), str(labels.count("idk")),
                        str(sum(lab not in ("van", "idk") for lab in labels))])
    return out


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in [head, *rows]]
    return "\n".join(["| " + " | ".join(esc[0]) + " |", "|" + " --- |" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in esc[1:]])


def _seed_note(run: Run) -> str:
    seeds = run.info.get("seeds") or []
    sd = "; `± sd` is the standard deviation across seeds" if len(seeds) > 1 else ""
    return f"Rates in %, `value [95 % CI]`{sd}. THS against the reference point below (Init-Basic)."


def _ref_rows(run: Run) -> list[list[str]]:
    return [[t, fmt_cell(run.reference.get(t, {}).get("P_c0")), fmt_cell(run.reference.get(t, {}).get("P_w0")),
             str((run.info.get("tests") or {}).get(t, ""))] for t in run.tests]


def make_report(run_dir: str | Path, out: str | Path | None = None, max_items: int = 500,
                bins: int = 10) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (and the two PNG figures) for a run directory.

    Args:
        run_dir: the run directory.
        out: output directory (default: ``run_dir``).
        max_items: per-item browser cap per method / seed / test combination.
        bins: bins per axis of the knowledge-state chessboard.

    Returns:
        ``(report.md path, report.html path)``.
    """
    if max_items < 0 or bins < 1:
        raise RaitError("--max-items must be >= 0 and --bins >= 1")
    run = load_run(run_dir)
    out = Path(out) if out is not None else run.dir
    out.mkdir(parents=True, exist_ok=True)
    c = _content(run, out, bins)
    md_path = out / "report.md"
    atomic_write_text(md_path, "\n".join(_markdown(run, c)))
    html_path = out / "report.html"
    atomic_write_text(html_path, _page(run, c, max_items))
    return md_path, html_path


@dataclass
class _Content:
    """What the markdown and the HTML report both show: tables, figures (PNG bytes or None) and their notes."""

    name: str
    meta: list[str]
    head: list[str]
    rows: list[list[str]]
    extra: Any
    dec_rows: list[list[str]]
    views: list[tuple[str, Any]]
    deltas: list[tuple[str, list[str], list[list[str]]]]
    plane: bytes | None
    plane_note: str
    board: bytes | None
    board_note: str
    diag_md: list[str]
    diag_tables: list[Any]
    curve: bytes | None


def _content(run: Run, out: Path, bins: int) -> _Content:
    """Compute the report's tables and figures; the figures are written to ``out`` as PNG files."""
    from rait.report.diagnostics import sections
    from rait.report.plots import chessboard_png, plane_png

    plane = plane_png(run.methods, run.tests, run.results, run.reference) if run.tests else None
    cer_name = str((run.table or [{}])[0].get("certainty_method") or "certainty")
    board = chessboard_png(run.table or [], run.decisions, run.methods, bins=bins, certainty_name=cer_name)
    for fname, png in (("report_plane.png", plane), ("report_knowledge.png", board)):
        if png is not None:
            (out / fname).write_bytes(png)
    head, rows = main_table(run)
    board_note = ("Knowledge-state chessboard: x = correctness of M0, y = its certainty (binned); each cell is "
                  "coloured by the share of idk among the items a method labelled there (blue = van, red = idk), "
                  "grey = all dropped, white = empty; numbers = items in the cell.")
    if run.table is None:
        board_note = f"No knowledge table ({run.dir / 'probe/m0/table.jsonl'}): chessboard omitted."
    elif board is None:
        board_note = "No method has decisions (build/METHOD/decisions.jsonl): chessboard omitted."
    plane_note = ("P_c–P_w plane: each method with 95 % CIs on both axes; star = reference (Init-Basic); dashed "
                  "lines = THS iso-lines (slope P_c0/P_w0), solid = THS 0. Up and left is better.")
    meta = [f"model: `{run.info.get('model', '?')}`", f"seeds: {run.info.get('seeds', '?')}",
            f"methods: {', '.join(run.methods)}"]
    views = [(v, view_table(run, v)) for v in ("macro", "echo_safe")]
    deltas = [dt for t in run.tests for dt in delta_tables(run, t)]
    diag_md, diag_tables, curve = sections(run.dir, run.methods, run.tests, run.info.get("seeds") or [0], pretty)
    if curve is not None:
        (out / "report_curve.png").write_bytes(curve)
    return _Content(run.info.get("name") or run.dir.name, meta, head, rows, extra_table(run), decision_counts(run),
                    views, deltas, plane, plane_note, board, board_note, diag_md, diag_tables, curve)


def _markdown(run: Run, c: _Content) -> list[str]:
    """The lines of ``report.md``."""
    md = [f"# RAIT report: {c.name}", "", " · ".join(c.meta), "", "## Methods × test sets", "", _seed_note(run), "",
          _md_table(c.head, c.rows), ""]
    if c.extra:
        md += ["## Calibration and honesty", "", "AUROC/AP of the answer confidence; honesty metrics as fractions.", "",
               _md_table(["method"] + [f"{t} · {k}" for t, k in c.extra[0]], c.extra[1]), ""]
    for v, vt in c.views:
        if vt:
            md += [f"## Methods × test sets: {VIEW_TITLES[v]}", "", view_note(run, v), "", _md_table(*vt), ""]
    if c.deltas:
        md += ["## Paired differences (Δ)", "", delta_note(run), ""]
        for title, dh, dr in c.deltas:
            md += [f"### {title}", "", _md_table(dh, dr), ""]
    md += ["## Reference points (THS)", "", _md_table(["test", "P_c0", "P_w0", "spec"], _ref_rows(run)), ""]
    if c.dec_rows:
        md += ["## Training sets", "", _md_table(["method", "van", "idk", "dropped"], c.dec_rows), ""]
    md += ["## P_c–P_w plane", "", c.plane_note, ""]
    if c.plane is not None:
        md += ["![P_c–P_w plane](report_plane.png)", ""]
    md += ["## Knowledge-state chessboard", "", c.board_note, ""]
    if c.board is not None:
        md += ["![knowledge-state chessboard](report_knowledge.png)", ""]
    md += c.diag_md
    md += ["Per-item answers: open `report.html` (per-item browser).", ""]
    return md


def _page(run: Run, c: _Content, max_items: int) -> str:
    """The self-contained ``report.html``: the same tables, the figures inlined, the per-item browser."""
    from rait.report.diagnostics import NOTES
    from rait.report.page import browser_data, render_page, table_html

    h = [f"<h1>RAIT report: {html.escape(str(c.name))}</h1>",
         f'<p class="meta">{html.escape(" · ".join(x.replace("`", "") for x in c.meta))}</p>',
         "<h2>Methods × test sets</h2>", f'<p class="note">{html.escape(_seed_note(run).replace("`", ""))}</p>',
         table_html([[("method", 1)] + [(t, len(MAIN_METRICS)) for t in run.tests],
                     [("", 1)] + [(k, 1) for _ in run.tests for k in MAIN_METRICS]],
                    [[pretty(m)] + [_cell_pair((run.results.get(m, {}).get(t) or {}).get(k))
                                    for t in run.tests for k in MAIN_METRICS] for m in run.methods])]
    if c.extra:
        groups = [(t, sum(x[0] == t for x in c.extra[0])) for t in dict.fromkeys(x[0] for x in c.extra[0])]
        h += ["<h2>Calibration and honesty</h2>",
              table_html([[("method", 1)] + groups, [("", 1)] + [(k.replace("_", " "), 1) for _, k in c.extra[0]]],
                         c.extra[1])]
    for v, vt in c.views:
        if vt:
            h += [f"<h2>Methods × test sets: {html.escape(VIEW_TITLES[v])}</h2>",
                  f'<p class="note">{html.escape(view_note(run, v).replace("`", ""))}</p>',
                  table_html([[(col, 1) for col in vt[0]]], vt[1])]
    if c.deltas:
        h += ["<h2>Paired differences (Δ)</h2>",
              f'<p class="note">{html.escape(delta_note(run).replace("`", ""))}</p>']
        for title, dh, dr in c.deltas:
            h += [f"<h3>{html.escape(title)}</h3>", table_html([[(col, 1) for col in dh]], dr)]
    h += ["<h2>Reference points (THS)</h2>",
          table_html([[("test", 1), ("P_c0", 1), ("P_w0", 1), ("spec", 1)]], _ref_rows(run))]
    if c.dec_rows:
        h += ["<h2>Training sets</h2>",
              table_html([[("method", 1), ("van", 1), ("idk", 1), ("dropped", 1)]], c.dec_rows)]
    h.append("<h2>Knowledge boundary</h2>")
    h += [f"<h3>{html.escape(t)}</h3>" + table_html([[(col, 1) for col in head]], rows)
          for t, head, rows in c.diag_tables]
    figures = [("P_c–P_w plane", "P_c versus P_w per method and test set", c.plane, c.plane_note),
               ("Knowledge-state chessboard", "training labels over M0 correctness and certainty", c.board,
                c.board_note),
               ("Knowledge curve", "P_c and P_r per popularity decile", c.curve, NOTES["curve"])]
    return render_page(f"RAIT report: {c.name}", "\n".join(h), figures, browser_data(run, max_items))


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``rait report``."""
    p = sub.add_parser("report", help="markdown + HTML report of a run directory", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="run directory written by `rait run` (holds results.json)")
    p.add_argument("--out", help="output directory (default: RUN_DIR)")
    p.add_argument("--max-items", type=int, default=500, help="per-item browser cap per method/seed/test")
    p.add_argument("--bins", type=int, default=10, help="bins per axis of the knowledge-state chessboard")
    p.set_defaults(func=_main)
    return p


def _main(args: argparse.Namespace) -> int:
    md, page = make_report(args.run_dir, args.out, max_items=args.max_items, bins=args.bins)
    print(md)
    print(page)
    return 0
