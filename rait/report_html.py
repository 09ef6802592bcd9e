"""Self-contained HTML page of ``rait report``: inline CSS, inline PNGs, embedded per-item JSON, plain inline JS.

Nothing is loaded from the network: figures are ``data:`` URIs and the per-item browser reads its data from a
``<script type="application/json" id="items-data">`` block.

Example:
    >>> from rait.report_html import render_page
    >>> page = render_page("demo", "<p>x</p>", [], {"combos": []})
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
#items td{max-width:420px;overflow-wrap:anywhere}
.v-correct{color:#1a7f37}.v-wrong{color:#c62828}.v-refuse{color:#6a4fb3}.v-fail_parse{color:#9a6700}
.l-van{color:#1f5fbf}.l-idk{color:#c0392b}.l-dropped{color:#777}
"""

JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("items-data").textContent);
  var sel = document.getElementById("combo");
  var body = document.querySelector("#items tbody");
  var status = document.getElementById("status");
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input.vf"));
  var search = document.getElementById("search");
  data.combos.forEach(function (c, i) {
    var o = document.createElement("option");
    o.value = String(i);
    o.textContent = c.method + " / seed " + c.seed + " / " + c.test + " (" + c.n + " items)";
    sel.appendChild(o);
  });
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
  }
  function render() {
    while (body.firstChild) { body.removeChild(body.firstChild); }
    var c = data.combos[Number(sel.value)];
    if (!c) { status.textContent = "no evaluated items in this run"; return; }
    var keep = {};
    boxes.forEach(function (b) { keep[b.value] = b.checked; });
    var q = search.value.toLowerCase();
    var shown = 0;
    c.items.forEach(function (it) {
      // it = [id, question, gold, output, verdict, training label]
      if (keep.hasOwnProperty(it[4]) && !keep[it[4]]) { return; }
      if (q && (it[1] + " " + it[2] + " " + it[3]).toLowerCase().indexOf(q) < 0) { return; }
      var tr = document.createElement("tr");
      cell(tr, it[0]); cell(tr, it[1]); cell(tr, it[2]); cell(tr, it[3]);
      cell(tr, it[4], "v-" + it[4]); cell(tr, it[5], "l-" + it[5]);
      body.appendChild(tr);
      shown += 1;
    });
    var counts = c.counts, parts = [];
    Object.keys(counts).forEach(function (k) { parts.push(k + " " + counts[k]); });
    status.textContent = shown + " of " + c.items.length + " rows shown (" + parts.join(", ") + ")" +
      (c.truncated ? "; only the first " + c.items.length + " of " + c.n + " items are embedded" : "");
  }
  sel.addEventListener("change", render);
  search.addEventListener("input", render);
  boxes.forEach(function (b) { b.addEventListener("change", render); });
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
        items: ``{"combos": [{"method", "seed", "test", "n", "truncated", "counts", "items": [[...]]}]}``.
    """
    parts = [summary_html]
    for heading, alt, png, caption in figures:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if png is not None:
            parts.append(f'<img class="fig" alt="{html.escape(alt)}" src="{data_uri(png)}">')
        parts.append(f'<p class="note">{html.escape(caption)}</p>')
    checks = "".join(f'<label><input type="checkbox" class="vf" value="{v}" checked> {v}</label>' for v in VERDICTS)
    parts.append(f"""<h2>Per-item browser</h2>
<p class="note">Greedy answers of one method / seed / test set. "training label" is the label the method's build
assigned to the same id (van / idk / dropped); "—" when the id was not in the training pool (the usual case for
test items).</p>
<div id="controls">
<label>run: <select id="combo"></select></label>
<span>verdict: {checks}</span>
<label>search: <input type="search" id="search" placeholder="question, gold or answer"></label>
</div>
<p id="status" class="note"></p>
<table id="items"><thead><tr><th>id</th><th>question</th><th>gold</th><th>answer</th><th>verdict</th>
<th>training label</th></tr></thead><tbody></tbody></table>
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
