"""Accuracy of a model on ``builtin:graded`` per relation and per popularity decile, from a ``rait eval`` run.

Reproduces the tables of ``docs/builtin_graded.md``::

    rait eval --model default --data builtin:graded --limit 1000 --prompt basic --out runs/graded_eval
    python bench/graded_table.py runs/graded_eval            # markdown tables on stdout

The set is stored in a seeded random order, so ``--limit N`` is a random sample over relations and popularity.
P_c is in %, with a 95 % item-bootstrap interval (1,000 resamples, seed 0).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rait.core.artifacts import read_jsonl  # noqa: E402
from rait.core.metrics import bootstrap_ci  # noqa: E402
from rait.data import load  # noqa: E402
from rait.data.builtin_graded import SPLITS  # noqa: E402
from rait.run.diagnostics import deciles  # noqa: E402


def cell(correct: list[bool]) -> str:
    """``P_c [lo, hi]`` in % of 0/1 verdicts."""
    ci = bootstrap_ci(np.asarray(correct, dtype=float), n_boot=1000, seed=0)
    return f"{100 * ci['value']:.1f} [{100 * ci['lo']:.1f}, {100 * ci['hi']:.1f}]"


def tables(eval_dir: Path) -> str:
    """The markdown of the per-relation and per-decile tables for one eval directory."""
    recs = read_jsonl(eval_dir / "items.jsonl")
    pop = {it.id: it.popularity for it in load("builtin:graded")}
    split = {t: s for s, ts in SPLITS.items() for t in ts}
    ok = [r["verdict"] == "correct" for r in recs]
    out = [f"All {len(recs)} items: P_c {cell(ok)} %.", "", "| relation | split | n | P_c (%) |",
           "| --- | --- | --- | --- |"]
    by_rel: dict[str, list[bool]] = defaultdict(list)
    for r, c in zip(recs, ok):
        by_rel[r["topic"]].append(c)
    for rel in sorted(by_rel, key=lambda t: (split[t], t)):
        out.append(f"| {rel} | {split[rel]} | {len(by_rel[rel])} | {cell(by_rel[rel])} |")
    bins = deciles([pop[r["id"]] for r in recs])
    out += ["", "| popularity decile | population | n | P_c (%) |", "| --- | --- | --- | --- |"]
    for k in range(10):
        members = [i for i, b in enumerate(bins) if b == k]
        pops = sorted(pop[recs[i]["id"]] for i in members)
        out.append(f"| {k + 1} | {pops[0]:,}–{pops[-1]:,} | {len(members)} | {cell([ok[i] for i in members])} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eval_dir", type=Path, help="output directory of `rait eval` on builtin:graded")
    print(tables(p.parse_args(argv).eval_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
