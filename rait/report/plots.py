"""Figures of ``rait report``: the P_c–P_w plane with THS iso-lines and the knowledge-state chessboard.

Both return PNG bytes (matplotlib, Agg, no pyplot state) so the report can inline them as data URIs and also
write them next to ``report.md``.

Example:
    >>> from rait.report.plots import plane_png
    >>> m = {"P_c": {"value": 40, "lo": 35, "hi": 45}, "P_w": {"value": 20, "lo": 16, "hi": 24}}
    >>> png = plane_png(["m1"], ["id"], {"m1": {"id": m}}, {"id": {"P_c0": 50, "P_w0": 40}})
    >>> png[:4] == b"\\x89PNG"
    True
"""

from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

import numpy as np

from rait.methods import REFERENCE


def pretty(method: str) -> str:
    """Display name of a method (its registration's ``display``; unregistered names as they are)."""
    from rait.methods import display_name

    return display_name(method)


def _val(m: Any, key: str = "value") -> float:
    if isinstance(m, Mapping):
        m = m.get(key)
    try:
        x = float(m)
    except (TypeError, ValueError):
        return math.nan
    return x


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _ths_levels(lo: float, hi: float) -> list[float]:
    """Round THS values (multiples of 10, or coarser when the range is wide) spanning [lo, hi]."""
    step = 10.0
    while (hi - lo) / step > 12:
        step *= 2
    return [k * step for k in range(math.floor(lo / step), math.ceil(hi / step) + 1)]


def _plane_axes(ax: Any, test: str, methods: Sequence[str], results: Mapping[str, Any], ref: Mapping[str, Any] | None,
                colors: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    pts = []
    for meth in methods:
        m = results.get(meth, {}).get(test)
        if not m:
            continue
        pw, pc = _val(m.get("P_w")), _val(m.get("P_c"))
        if math.isnan(pw) or math.isnan(pc):
            continue
        pts.append((meth, pw, pc, m))
    fixed: list[Any] = []  # THS labels (stay), method labels (moved off each other by declutter)
    movable: list[Any] = []
    c0 = _val(ref.get("P_c0")) if ref else math.nan
    w0 = _val(ref.get("P_w0")) if ref else math.nan
    # np.fmax ignores a NaN bound (a point without a CI)
    xs = [float(np.fmax(_val(m.get("P_w"), "hi"), w)) for _, w, _, m in pts] + ([w0] if not math.isnan(w0) else [])
    ys = [float(np.fmax(_val(m.get("P_c"), "hi"), c)) for _, _, c, m in pts] + ([c0] if not math.isnan(c0) else [])
    xmax = min(100.0, max(xs + [5.0]) * 1.15 + 1)
    ymax = min(100.0, max(ys + [5.0]) * 1.15 + 1)
    ax.set_xlim(-0.02 * xmax, xmax)  # a margin so points on an axis stay visible
    ax.set_ylim(-0.02 * ymax, ymax)
    # THS iso-lines: THS = P_c − P_w·P_c0/P_w0 = t  ⇔  P_c = t + slope·P_w with slope = P_c0/P_w0.
    if w0 > 0 and not math.isnan(c0):
        slope = c0 / w0
        corners = [y - slope * x for x in (0, xmax) for y in (0, ymax)]
        x = np.linspace(0, xmax, 50)
        for t in _ths_levels(min(corners), max(corners)):
            y = t + slope * x
            ax.plot(x, y, color="0.55" if t else "0.25", lw=0.7 if t else 1.0, ls="--" if t else "-", zorder=1)
            # label where the line leaves the box (right or top edge)
            xr = xmax if slope == 0 or t + slope * xmax <= ymax else (ymax - t) / slope  # P_c0 = 0: flat lines
            yr = t + slope * xr
            if 0 <= xr <= xmax and 0 <= yr <= ymax:
                fixed.append(ax.annotate(f"THS {t:g}", (xr, yr), xytext=(-2, -2), textcoords="offset points",
                                         fontsize=7, color="0.35", ha="right", va="top", rotation=0, zorder=2))
        ax.plot([w0], [c0], marker="*", ms=14, color="black", zorder=5, label=f"reference ({pretty(REFERENCE)})",
                ls="none")
    for meth, pw, pc, m in pts:
        xerr = [[max(0.0, pw - _val(m["P_w"], "lo"))], [max(0.0, _val(m["P_w"], "hi") - pw)]] \
            if isinstance(m.get("P_w"), Mapping) and not math.isnan(_val(m["P_w"], "lo")) else None
        yerr = [[max(0.0, pc - _val(m["P_c"], "lo"))], [max(0.0, _val(m["P_c"], "hi") - pc)]] \
            if isinstance(m.get("P_c"), Mapping) and not math.isnan(_val(m["P_c"], "lo")) else None
        ax.errorbar([pw], [pc], xerr=xerr, yerr=yerr, fmt="o", ms=6, capsize=3, color=colors[meth], zorder=4,
                    label=pretty(meth))
        movable.append(ax.annotate(pretty(meth), (pw, pc), xytext=(5, 4), textcoords="offset points", fontsize=8,
                                   color=colors[meth], zorder=6,
                                   arrowprops={"arrowstyle": "-", "lw": 0.5, "color": colors[meth], "alpha": 0.6,
                                               "shrinkA": 0, "shrinkB": 3}))
    ax.set_title(test)
    ax.set_xlabel("P_w  (% wrong)")
    ax.set_ylabel("P_c  (% correct)")
    ax.grid(alpha=0.2)
    return fixed, movable


def declutter(fig: Any, fixed: Sequence[Any], movable: Sequence[Any], step: float = 9.0, tries: int = 20) -> int:
    """Move point labels (annotations in offset points) until no two labels' boxes overlap.

    Each movable label in turn is tried at offsets below / above / to the left of its point, further out each
    round, and keeps the first position inside its axes that overlaps no label placed before it (a thin leader
    line joins a moved label to its point).

    Returns:
        The number of labels still overlapping (0 when every label found a free spot).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()

    def extent(t: Any) -> Any:  # the text only (an Annotation's own extent includes its leader line)
        return Text.get_window_extent(t, renderer).expanded(1.02, 1.1)

    boxes = [extent(t) for t in fixed]
    left = 0
    for t in movable:
        x0, y0 = t.xyann
        ax_box = t.axes.get_window_extent(renderer) if t.axes is not None else None
        cands = [(x0, y0)] + [(x0 + dx, y0 + dy) for k in range(1, tries + 1)
                              for dx, dy in ((0, -step * k), (0, step * k), (-step * 4 - 40, -step * (k - 1)),
                                             (-step * 4 - 40, step * k))]
        for pos in cands:
            t.xyann = pos
            box = extent(t)
            inside = ax_box is None or (ax_box.x0 <= box.x0 and box.x1 <= ax_box.x1 and
                                        ax_box.y0 <= box.y0 and box.y1 <= ax_box.y1)
            if inside and not any(box.overlaps(b) for b in boxes):
                break
        else:
            t.xyann, left = (x0, y0), left + 1
            box = extent(t)
        boxes.append(box)
    return left


def plane_png(methods: Sequence[str], tests: Sequence[str], results: Mapping[str, Any],
              reference: Mapping[str, Any]) -> bytes:
    """The P_c–P_w plane, one subplot per test set.

    Args:
        methods: method names in display order.
        tests: test-set names.
        results: ``{method: {test: metrics}}`` (``P_c``/``P_w`` as ``{value, lo, hi}`` in %).
        reference: ``{test: {"P_c0", "P_w0"}}`` — the Init-Basic point that defines THS.

    Returns:
        PNG bytes.
    """
    from matplotlib.figure import Figure

    n = max(1, len(tests))
    fig = Figure(figsize=(5.2 * n, 4.8), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    cmap = _cmap("tab10")
    colors = {m: cmap(i % 10) for i, m in enumerate(methods)}
    annots: list[tuple[list, list]] = []
    for ax, test in zip(axes, tests):
        annots.append(_plane_axes(ax, test, methods, results, reference.get(test), colors))
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # constrained layout places the axes once ...
    fig.set_layout_engine("none")  # ... and stays put while the point labels move off each other
    for fixed, movable in annots:
        declutter(fig, fixed, movable)
    return _png(fig)


def _cmap(name: str) -> Any:
    import matplotlib

    return matplotlib.colormaps[name]


def _bins(values: np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    """Bin index per value and a tick label per bin: categories when few distinct values, else equal width."""
    finite = values[np.isfinite(values)]
    distinct = np.unique(np.round(finite, 6))
    if 0 < distinct.size <= max(n + 1, 11):
        idx = np.searchsorted(distinct, np.round(values, 6)).clip(0, distinct.size - 1)
        return np.where(np.isfinite(values), idx, -1), [f"{v:.2g}" for v in distinct]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    edges = np.linspace(lo, hi, n + 1)
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, n - 1)
    return np.where(np.isfinite(values), idx, -1), [f"{(a + b) / 2:.2g}" for a, b in zip(edges[:-1], edges[1:])]


def chessboard_counts(table: Sequence[Mapping[str, Any]], decisions: Mapping[str, Mapping[str, Any]],
                      bins: int = 10) -> dict[str, Any]:
    """Per-cell label counts of one method's decisions over M0's (correctness, certainty) grid.

    Args:
        table: knowledge-table rows (``id``, ``correctness``, ``certainty``).
        decisions: ``{id: decision}`` with ``label`` ∈ {"van", "idk", None (dropped)}.
        bins: bins per axis (correctness with ≤ 11 distinct values keeps one column per value).

    Returns:
        ``{"van", "idk", "drop"}`` count arrays of shape (certainty bins, correctness bins), tick labels
        ``xlabels``/``ylabels`` and ``unplaced`` (table rows without a decision or without numbers).
    """
    cor = np.array([_val(r.get("correctness")) for r in table], dtype=float)
    cer = np.array([_val(r.get("certainty")) for r in table], dtype=float)
    xi, xl = _bins(cor, bins)
    yi, yl = _bins(cer, bins)
    out = {k: np.zeros((len(yl), len(xl)), dtype=int) for k in ("van", "idk", "drop")}
    unplaced = 0
    for r, x, y in zip(table, xi, yi):
        d = decisions.get(r.get("id"))
        if d is None or x < 0 or y < 0:
            unplaced += 1
            continue
        key = {"van": "van", "idk": "idk"}.get(d.get("label"), "drop")
        out[key][y, x] += 1
    return {**out, "xlabels": xl, "ylabels": yl, "unplaced": unplaced}


def _chessboard_panel(ax: Any, c: Mapping[str, Any], cmap: Any) -> Any:
    """Draw one method's chessboard (the counts of :func:`chessboard_counts`) on ``ax``; returns the share image."""
    from matplotlib.colors import ListedColormap

    lab = c["van"] + c["idk"]
    tot = lab + c["drop"]
    share = np.where(lab > 0, c["idk"] / np.maximum(lab, 1), np.nan)
    # background: white (empty) / grey (dropped only); labelled cells are drawn on top
    bg = np.where(tot == 0, 0, np.where(lab == 0, 1, 0))
    ny, nx = share.shape
    ext = (-0.5, nx - 0.5, -0.5, ny - 0.5)
    ax.imshow(bg, cmap=ListedColormap(["white", "0.75"]), vmin=0, vmax=1, origin="lower", extent=ext,
              aspect="auto")
    im = ax.imshow(np.ma.masked_invalid(share), cmap=cmap, vmin=0, vmax=1, origin="lower", extent=ext,
                   aspect="auto")
    if nx * ny <= 144:
        for (y, x), n in np.ndenumerate(tot):
            if n:  # white digits on saturated cells
                dark = not np.isnan(share[y, x]) and abs(share[y, x] - 0.5) > 0.3
                ax.text(x, y, str(n), ha="center", va="center", fontsize=6, color="white" if dark else "0.1")
    ax.set_xticks(range(nx), c["xlabels"], fontsize=6, rotation=90 if nx > 8 else 0)
    ax.set_yticks(range(ny), c["ylabels"], fontsize=6)
    ax.set_xticks(np.arange(-0.5, nx), minor=True)
    ax.set_yticks(np.arange(-0.5, ny), minor=True)
    ax.grid(which="minor", color="0.85", lw=0.4)
    ax.tick_params(which="minor", length=0)
    return im


def chessboard_png(table: Sequence[Mapping[str, Any]], decisions: Mapping[str, Mapping[str, Mapping[str, Any]]],
                   methods: Sequence[str], bins: int = 10, certainty_name: str = "certainty") -> bytes | None:
    """The CRaFT-style knowledge-state chessboard, one panel per method that has decisions.

    Cells are coloured by the idk share among the labelled items in them (blue = all van, red = all idk), grey
    when every item in the cell was dropped, white when empty; the number is the item count of the cell.

    Args:
        table: M0's knowledge-table rows.
        decisions: ``{method: {id: decision}}``.
        methods: display order.
        bins: bins per axis.
        certainty_name: y-axis label (the estimator's name).

    Returns:
        PNG bytes, or None when no method has decisions.
    """
    from matplotlib.figure import Figure

    shown = [m for m in methods if decisions.get(m)]
    if not shown or not table:
        return None
    ncol = min(4, len(shown))
    nrow = math.ceil(len(shown) / ncol)
    fig = Figure(figsize=(3.9 * ncol + 0.9, 3.6 * nrow + 0.3), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False)
    cmap = _cmap("coolwarm")
    im = None
    for k, ax in enumerate(axes.flat):
        if k >= len(shown):
            ax.set_axis_off()
            continue
        meth = shown[k]
        c = chessboard_counts(table, decisions[meth], bins)
        im = _chessboard_panel(ax, c, cmap)
        ax.set_title(f"{pretty(meth)}  (van {c['van'].sum()}, idk {c['idk'].sum()}, dropped {c['drop'].sum()})",
                     fontsize=8)
        if k % ncol == 0:
            est = f" ({certainty_name})" if certainty_name and certainty_name != "certainty" else ""
            ax.set_ylabel(f"M0 certainty{est}", fontsize=8)
        if k // ncol == nrow - 1 or k + ncol >= len(shown):
            ax.set_xlabel("M0 correctness", fontsize=8)
    if im is not None:
        cb = fig.colorbar(im, ax=axes, shrink=0.8, pad=0.01)
        cb.set_label("idk share of labelled items (grey = dropped only)", fontsize=8)
    return _png(fig)
