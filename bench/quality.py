"""The method comparison on real data: run a benchmark config with ``rait run`` and write the quality section
of ``docs/benchmarks.md`` (P_c, P_w, P_r, THS with 95 % CIs per method × test set, seeds aggregated; stage wall
times; whether the papers' ordering GRAIT ≥ CRaFT ≥ Cor-RAIT on THS holds here). Every number comes from the run's
``results.json``; rerunning with the same seeds reproduces it (stages already done are skipped).

Usage::

    python bench/quality.py                               # configs/triviaqa_nq.yaml (TriviaQA -> NQ)
    python bench/quality.py --config configs/mmlu_arc.yaml --section mcqa   # the MCQA pipeline check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parent / "docs" / "benchmarks.md"


def _cell(m: dict) -> str:
    sd = f" ± {m['sd']:.1f}" if m.get("sd") is not None else ""
    return f"{m['value']:.1f}{sd} [{m['lo']:.1f}, {m['hi']:.1f}]"


def render(plan, section: str, wall: float) -> str:
    """Markdown of a finished run."""
    from rait.pipeline import stage_times

    res = json.loads((plan.root / "results.json").read_text())
    results, ref = res["results"], res["reference"]
    c = plan.cfg
    tests = list(plan.tests())
    n = {t: results["init_basic"][t]["n"] for t in tests}
    lines = [f"<!-- {section}:start -->", f"## Quality: `{Path(plan.root).name}` ({section})", "",
             f"Model `{c.model}`; training pool {c.data.n_pool} items of `{c.data.pool or c.data.id}`; tests: "
             + ", ".join(f"{t} = {n[t]} items of `{getattr(c.data, t)}`" for t in tests)
             + f"; training seeds {c.seeds}; values are seed means ± sd across seeds with 95 % item-bootstrap CIs "
               "(paired across seeds); THS against Init-Basic of the same test set "
             + ", ".join(f"{t}: (P_c0, P_w0) = ({ref[t]['P_c0']:.1f}, {ref[t]['P_w0']:.1f})" for t in tests) + ".", ""]
    head = "| method | " + " | ".join(f"{t} {k}" for t in tests for k in ("P_c", "P_w", "P_r", "THS")) + " |"
    lines += [head, "|---" * (1 + 4 * len(tests)) + "|"]
    for m in c.methods:
        cells = [(_cell(results[m][t][k]) if k in results[m][t] else "-") for t in tests
                 for k in ("P_c", "P_w", "P_r", "THS")]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines.append("")
    if all(x in results for x in ("grait", "craft", "cor_rait")):
        for t in tests:
            g, cr, co = (results[x][t]["THS"]["value"] for x in ("grait", "craft", "cor_rait"))
            holds = g >= cr >= co
            lines.append(f"- {t}: THS GRAIT {g:.1f}, CRaFT {cr:.1f}, Cor-RAIT {co:.1f} — the papers' ordering "
                         f"GRAIT ≥ CRaFT ≥ Cor-RAIT {'holds' if holds else 'does not hold'} here.")
        lines.append("")
    times = stage_times(plan)
    groups: dict[str, float] = {}
    for k, v in times.items():
        groups[k.split(":")[0]] = groups.get(k.split(":")[0], 0.0) + v
    lines.append(f"Wall time of this invocation {wall / 60:.1f} min; time per stage kind (last run of each stage): "
                 + ", ".join(f"{k} {v / 60:.1f} min" for k, v in groups.items()) + ".")
    lines += ["", f"<!-- {section}:end -->"]
    return "\n".join(lines)


def write_section(section: str, block: str) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    start, end = f"<!-- {section}:start -->", f"<!-- {section}:end -->"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "triviaqa_nq.yaml"))
    ap.add_argument("--section", default="oeqa")
    ap.add_argument("--set", nargs="+", action="extend", default=[])
    args = ap.parse_args()
    from rait.pipeline import run

    t0 = time.time()
    plan = run(args.config, args.set)
    write_section(args.section, render(plan, args.section, time.time() - t0))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
