"""Self-contained HTML page of ``rait report``: inline CSS, inline PNGs, embedded per-item JSON, plain inline JS.

Nothing is loaded from the network: figures are ``data:`` URIs and the per-item browser reads its data from a
``<script type="application/json" id="items-data">`` block.

Example:
    >>> from rait.report.page import render_page
    >>> page = render_page("demo", "<p>x</p>", [], {"groups": []})
    >>> page.startswith("<!DOCTYPE html>") and 'id="items-data"' in page
    True
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any, Sequence

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1600px}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 7px;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
tr.ref td{background:#fafafa;font-style:italic}
.scroll{overflow-x:auto}.ci{color:#666;font-size:.85em}
img.fig{max-width:100%;height:auto;border:1px solid #eee}
.note{color:#666;font-size:.85em}
#controls{margin:.5em 0;display:flex;gap:14px;flex-wrap:wrap;align-items:center}
#items td{max-width:420px;overflow-wrap:anywhere}#items td.ans{min-width:140px}
.meta2{font-size:.8em;color:#555;margin-top:2px}
.v-correct{color:#1a7f37}.v-wrong{color:#c62828}.v-refuse{color:#6a4fb3}.v-fail_parse{color:#9a6700}
.l-van{color:#1f5fbf}.l-idk{color:#c0392b}.l-dropped{color:#777}
"""

JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("items-data").textContent);
  var sel = document.getElementById("group");
  var mbox = document.getElementById("methods");
  var head = document.querySelector("#items thead tr");
  var body = document.querySelector("#items tbody");
  var status = document.getElementById("status");
  var vboxes = Array.prototype.slice.call(document.querySelectorAll("input.vf"));
  var search = document.getElementById("search");
  var disagree = document.getElementById("disagree");
  var shownMethods = {};
  data.groups.forEach(function (g, i) {
    var o = document.createElement("option");
    o.value = String(i);
    o.textContent = g.test + " / seed " + g.seed + " (" + g.methods.length + " methods, " + g.n + " items)";
    sel.appendChild(o);
  });
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }
  function methodBoxes(g) {
    while (mbox.firstChild) { mbox.removeChild(mbox.firstChild); }
    g.methods.forEach(function (m) {
      if (!shownMethods.hasOwnProperty(m)) { shownMethods[m] = true; }
      var l = el("label"), b = el("input");
      b.type = "checkbox"; b.className = "mf"; b.value = m; b.checked = shownMethods[m];
      b.addEventListener("change", function () { shownMethods[m] = b.checked; render(); });
      l.appendChild(b); l.appendChild(document.createTextNode(" " + m + " "));
      mbox.appendChild(l);
    });
  }
  function render() {
    while (body.firstChild) { body.removeChild(body.firstChild); }
    while (head.children.length > 3) { head.removeChild(head.lastChild); }
    var g = data.groups[Number(sel.value)];
    if (!g) { status.textContent = "no evaluated items in this run"; return; }
    var cols = [];
    g.methods.forEach(function (m, k) { if (shownMethods[m]) { cols.push(k); head.appendChild(el("th", m)); } });
    var keep = {};
    vboxes.forEach(function (b) { keep[b.value] = b.checked; });
    var q = search.value.toLowerCase(), shown = 0;
    g.items.forEach(function (it) {
      // it = [id, question, gold, [[answer, verdict, training label, matched alias] or null per method]]
      var cells = cols.map(function (k) { return it[3][k]; });
      var vs = cells.filter(function (c) { return c; }).map(function (c) { return c[1]; });
      if (!vs.some(function (v) { return !keep.hasOwnProperty(v) || keep[v]; })) { return; }
      if (disagree.checked && vs.every(function (v) { return v === vs[0]; })) { return; }
      var hay = it[1] + " " + it[2] + " " + cells.map(function (c) { return c ? c[0] : ""; }).join(" ");
      if (q && hay.toLowerCase().indexOf(q) < 0) { return; }
      var tr = el("tr");
      tr.appendChild(el("td", it[0])); tr.appendChild(el("td", it[1])); tr.appendChild(el("td", it[2]));
      cells.forEach(function (c) {
        var td = el("td");
        if (!c) { td.textContent = "\u2014"; tr.appendChild(td); return; }
        td.className = "ans v-" + c[1];
        td.appendChild(el("div", c[0] === "" ? "(empty)" : c[0]));
        var meta = el("div", null, "meta2");
        meta.appendChild(el("span", c[1], "v-" + c[1]));
        meta.appendChild(document.createTextNode(" \u00b7 train: "));
        meta.appendChild(el("span", c[2], "l-" + c[2]));
        if (c[3]) { meta.appendChild(document.createTextNode(" \u00b7 matched: ")); meta.appendChild(el("b", c[3])); }
        td.appendChild(meta);
        tr.appendChild(td);
      });
      body.appendChild(tr);
      shown += 1;
    });
    status.textContent = shown + " of " + g.items.length + " items shown; " +
      (g.items.length < g.n ? "a random sample (seed " + g.sample_seed + ") of " + g.n + " items" : "all " + g.n + " items");
  }
  sel.addEventListener("change", function () { methodBoxes(data.groups[Number(sel.value)] || {methods: []}); render(); });
  search.addEventListener("input", render);
  disagree.addEventListener("change", render);
  vboxes.forEach(function (b) { b.addEventListener("change", render); });
  methodBoxes(data.groups[0] || {methods: []});
  render();
})();
"""

VERDICTS = ("correct", "wrong", "refuse", "fail_parse")


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def embed_json(obj: Any) -> str:
    """JSON safe to place inside a ``<script>`` element (no ``</script>`` or ``<!--`` can end it early)."""
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _cell(c: str | tuple[str, str]) -> str:
    if isinstance(c, tuple):  # (value, detail): the detail goes on a second, smaller line
        return f'{html.escape(c[0])}<br><span class="ci">{html.escape(c[1])}</span>' if c[1] else html.escape(c[0])
    return html.escape(c)


def table_html(head: Sequence[Sequence[tuple[str, int]]], rows: Sequence[Sequence[str | tuple[str, str]]],
               num_from: int = 1, row_classes: Sequence[str] | None = None) -> str:
    """An HTML table: ``head`` is a list of header rows of ``(text, colspan)``; a cell is a string or a
    ``(value, detail)`` pair; everything is escaped here."""
    out = ['<div class="scroll"><table>', "<thead>"]
    for hr in head:
        out.append("<tr>" + "".join(f'<th colspan="{span}">{html.escape(t)}</th>' if span > 1
                                    else f"<th>{html.escape(t)}</th>" for t, span in hr) + "</tr>")
    out.append("</thead><tbody>")
    for i, r in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(f'<td class="num">{_cell(c)}</td>' if j >= num_from else f"<td>{_cell(c)}</td>"
                        for j, c in enumerate(r))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def render_page(title: str, summary_html: str, figures: Sequence[tuple[str, str, bytes | None, str]],
                items: dict[str, Any]) -> str:
    """The full page.

    Args:
        title: page title.
        summary_html: pre-rendered HTML (header, tables) placed before the figures.
        figures: ``(section heading, alt text, png bytes or None, caption)``; None shows the caption only.
        items: the per-item browser's data, see :func:`browser_data`.
    """
    parts = [summary_html]
    for heading, alt, png, caption in figures:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if png is not None:
            parts.append(f'<img class="fig" alt="{html.escape(alt)}" src="{data_uri(png)}">')
        parts.append(f'<p class="note">{html.escape(caption)}</p>')
    checks = "".join(f'<label><input type="checkbox" class="vf" value="{v}" checked> {v}</label>' for v in VERDICTS)
    parts.append(f"""<h2>Per-item browser</h2>
<p class="note">The methods side by side on the same test items (one test set and seed at a time; the baselines are
evaluated once). Each cell: the greedy answer, its verdict, the label the method's build gave the same id ("train":
van / idk / dropped, "—" when the id was not in its training pool, the usual case for test items) and the gold alias
the answer matched. A verdict box keeps the items where any shown method has that verdict.</p>
<div id="controls">
<label>test / seed: <select id="group"></select></label>
<span id="methods"></span>
<span>verdict: {checks}</span>
<label><input type="checkbox" id="disagree"> only where the shown methods disagree</label>
<label>search: <input type="search" id="search" placeholder="question, gold or answer"></label>
</div>
<p id="status" class="note"></p>
<table id="items"><thead><tr><th>id</th><th>question</th><th>gold</th></tr></thead><tbody></tbody></table>
<script type="application/json" id="items-data">{embed_json(items)}</script>
<script>{JS}</script>""")
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
{body}
</body>
</html>
"""


def matched_alias(output: str, gold: Any, mode: str = "contains") -> str:
    """The first gold alias an open-ended answer matches (``""`` for none, and for multiple-choice items).

    >>> matched_alias("It is Paris, France", ["France", "Paris"])
    'France'
    """
    from rait.core.scoring import is_correct

    if not isinstance(gold, list):
        return ""
    return next((str(a) for a in gold if str(a).strip() and is_correct(output, [str(a)], mode)), "")


def browser_data(run: Any, max_items: int = 500, seed: int = 0) -> dict[str, Any]:
    """Per-item browser data: one group per (test set, seed) with every method that has answers there.

    The items are the union of the evaluated ids in file order; above ``max_items`` a random sample (seeded with
    ``seed``, the same ids for every method) is kept. Each item is ``[id, question, gold, cells]`` with one cell per
    method, ``[answer, verdict, training label, matched alias]`` or None.

    Args:
        run: a :class:`rait.report.Run`.
        max_items: items per group.
        seed: seed of the sample.
    """
    import random

    from rait.report.plots import pretty

    evals, only_seed = _browser_evals(run)
    groups = []
    all_seeds = sorted({s for _, s in evals})
    for t, s in sorted(evals, key=lambda k: ((run.tests or []).index(k[0]) if k[0] in (run.tests or []) else 99, k[1])):
        per = dict(evals[(t, s)])
        for m, s0 in only_seed.items():  # a method evaluated once (the baselines) joins every seed's group
            if m not in per and (t, s0) in evals and m in evals[(t, s0)] and len(all_seeds) > 1:
                per[m] = evals[(t, s0)][m]
        methods = [m for m in run.methods if m in per]
        ids: dict[str, dict[str, Any]] = {}
        for m in methods:
            for i, r in per[m][0].items():
                ids.setdefault(i, r)
        order = list(ids)
        if len(order) > max_items:
            keep = sorted(random.Random(seed).sample(range(len(order)), max_items))
            order = [order[k] for k in keep]
        items = [_browser_item(run, i, ids[i], methods, per) for i in order]
        groups.append({"test": t, "seed": s, "n": len(ids), "sample_seed": seed,
                       "methods": [pretty(m) for m in methods], "items": items})
    return {"groups": groups}


def _browser_evals(run: Any) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[str, int]]:
    """``{(test, seed): {method: ({id: record}, match mode)}}`` of the run's evals, and the methods evaluated
    under one seed only (-> that seed)."""
    from rait.core.artifacts import read_jsonl

    evals: dict[tuple[str, int], dict[str, Any]] = {}
    only_seed: dict[str, int] = {}
    for m in run.methods:
        mdir = run.dir / "eval" / m
        seeds = sorted(int(p.name[4:]) for p in mdir.glob("seed*") if p.name[4:].isdigit()) if mdir.is_dir() else []
        if len(seeds) == 1:
            only_seed[m] = seeds[0]
        for s in seeds:
            for t in run.tests or sorted(p.name for p in (mdir / f"seed{s}").iterdir()):
                ipath = mdir / f"seed{s}" / t / "items.jsonl"
                if ipath.is_file():
                    match = _match_mode(ipath.parent)
                    evals.setdefault((t, s), {})[m] = ({str(r.get("id")): r for r in read_jsonl(ipath)}, match)
    return evals, only_seed


def _browser_item(run: Any, i: str, r0: dict[str, Any], methods: list[str], per: dict[str, Any]) -> list[Any]:
    """``[id, question, gold, cells]``: one cell per method, ``[answer, verdict, training label, matched alias]``
    or None where the method has no answer for the item."""
    gold = r0.get("gold")
    cells = []
    for m in methods:
        r = per[m][0].get(i)
        if r is None:
            cells.append(None)
            continue
        d = run.decisions.get(m, {}).get(i)
        label = "\u2014" if d is None else (d.get("label") if d.get("label") in ("van", "idk") else "dropped")
        out = str(r.get("output", ""))
        cells.append([out, str(r.get("verdict")), label,
                      matched_alias(out, gold, per[m][1]) if r.get("verdict") == "correct" else ""])
    gold_s = " | ".join(map(str, gold)) if isinstance(gold, list) else ("" if gold is None else str(gold))
    return [i, str(r0.get("question", "")), gold_s, cells]


def _match_mode(eval_dir: Any) -> str:
    """The answer-matching rule an eval ran with (its manifest), default ``contains``."""
    try:
        return json.loads((eval_dir / "manifest.json").read_text(encoding="utf-8"))["config"].get("match", "contains")
    except (OSError, ValueError, KeyError, AttributeError):
        return "contains"
