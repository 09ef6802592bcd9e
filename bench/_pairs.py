"""Paired statements for the benchmark sections (``results.json["paired"]``): the papers' THS ordering judged
step by step on paired intervals, and the matrix of paired ΔTHS between every two methods.

Example:
    >>> d = {"value": 2.0, "lo": 0.5, "hi": 3.5, "significant": True}
    >>> verdict(d), verdict({**d, "lo": -1.0, "significant": False}), verdict({"value": -2.0, "lo": -3.5, "hi": -0.5})
    ('holds', 'not resolved', 'reversed')
"""

from __future__ import annotations

from rait.methods import REFERENCE
from rait.methods._claims import THS_ORDER, VANILLA
from rait.report import pretty


def verdict(d: dict) -> str:
    """One ordering step ``a ≥ b`` from the paired ΔTHS of a − b: holds / reversed (interval excludes 0) or not
    resolved."""
    return "holds" if d["lo"] > 0 else "reversed" if d["hi"] < 0 else "not resolved"


def ordering(paired: dict, t: str, where: str) -> list[str]:
    """The papers' ordering (``THS_ORDER`` then the vanilla baseline), each step on its paired interval."""
    pairs = paired.get(t, {}).get("pairs", {})
    chain = [m for m in (*THS_ORDER, VANILLA)]
    if not all(m in pairs for m in chain):
        return []
    steps = []
    for a, b in zip(chain, chain[1:]):
        d = pairs[a][b]["THS"]
        steps.append(f"{pretty(a)} − {pretty(b)} {d['value']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]: "
                     f"**{verdict(d)}**")
    names = " ≥ ".join(pretty(m) for m in chain)
    return [f"- {where}, the papers' ordering {names} on paired ΔTHS: " + "; ".join(steps) + "."]


def matrix(paired: dict, t: str, methods: list[str]) -> list[str]:
    """Paired ΔTHS of row − column for every two methods on test ``t`` (\\* = the interval excludes 0)."""
    pairs = paired.get(t, {}).get("pairs", {})
    ms = [m for m in methods if m in pairs and m != REFERENCE]
    if len(ms) < 2:
        return []
    lines = ["| row − column | " + " | ".join(pretty(m) for m in ms) + " |", "|---" * (len(ms) + 1) + "|"]
    for a in ms:
        cells = []
        for b in ms:
            d = pairs[a].get(b, {}).get("THS") if a != b else None
            cells.append(f"{d['value']:+.1f}" + (" \\*" if d.get("significant") else "") if d else "")
        lines.append(f"| {pretty(a)} | " + " | ".join(cells) + " |")
    return lines + [""]
