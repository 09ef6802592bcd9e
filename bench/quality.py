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
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import cpu_line  # noqa: E402
from _doc import DOC, write_section  # noqa: E402
from _flow import grait_flow  # noqa: E402
from _pairs import matrix, ordering  # noqa: E402

from rait.methods import REFERENCE, get  # noqa: E402
from rait.methods._claims import PAIR, THS_ORDER, VANILLA  # noqa: E402
from rait.report import pretty  # noqa: E402


def _cell(m: dict) -> str:
    """``value ± sd [lo, hi]`` — unlike rait.report.fmt_cell, a degenerate CI ([0.0, 0.0]) is still printed:
    every figure of the benchmark doc carries its interval."""
    sd = f" ± {m['sd']:.1f}" if m.get("sd") is not None else ""
    return f"{m['value']:.1f}{sd} [{m['lo']:.1f}, {m['hi']:.1f}]"


def _sizes(summary: dict) -> list[str]:
    """Cells (quota, pool, taken, shortfall) as "van / idk" from a build summary (one schema for every method;
    a method without a van:idk quota, such as R-Tuning's random subset, has empty ``quotas``)."""
    counts = summary["counts"]
    if not summary.get("quotas"):
        n = summary.get("sizing", {}).get("n_total", summary.get("n_rows"))
        return [f"{n} rows, {summary.get('sizing', {}).get('rule', 'no van:idk quota')}", "-",
                f"{counts.get('van', 0)} / {counts.get('idk', 0)}", "-", _idk_share(summary)]

    def pair(d: dict, default="-") -> str:
        return f"{d.get('van', default)} / {d.get('idk', default)}"

    return [pair(summary["quotas"], 0), pair(summary.get("pools", {})), pair(counts, 0),
            pair(summary.get("shortfall", {}), 0), _idk_share(summary)]


def _idk_share(summary: dict) -> str:
    c = summary["counts"]
    n = c.get("van", 0) + c.get("idk", 0)
    return f"{100 * c.get('idk', 0) / n:.0f} %" if n else "-"


def label_sets(plan) -> list[str]:
    """How the label sets were sized (the papers' ratio scaled to this pool) and what each method got."""
    from rait.methods import paper_sizes

    c = plan.cfg
    bdirs = {m: plan.root / "build" / m for m in c.methods}  # per-seed builds: the first seed's label set
    paths = {m: next((p for p in (d / "summary.json", d / f"seed{c.seeds[0]}" / "summary.json") if p.exists()), None)
             for m, d in bdirs.items()}
    trained = [m for m in c.methods if paths[m]]
    if not trained:
        return []
    rows = {m: json.loads(paths[m].read_text()) for m in trained}
    kind = next((r["kind"] for r in rows.values() if "kind" in r), "oeqa")
    paper = paper_sizes(kind)
    n_table = next((r["n_table"] for r in rows.values() if "n_table" in r), c.data.n_pool)
    scaled = round(paper["total"] * min(1.0, n_table / paper["pool"]))
    n_total = c.build.get("n_total")
    bs = int(c.train.get("batch_size", 16)) * int(c.train.get("grad_accum", 1))
    lines = ["### Label sets", "",
             f"The papers build {paper['total']:,} training rows from a pool of {paper['pool']:,} questions "
             f"({100 * paper['total'] / paper['pool']:.1f} % of it), 80 % answered (\"van\") and 20 % \"I don't "
             f"know\" (\"idk\"). Here the pool is {n_table:,} questions. Scaling the papers' share of the pool would "
             f"give {scaled} rows; "
             + (f"this config fixes `build.n_total = {n_total}` ({100 * n_total / n_table:.0f} % of the pool: "
                f"{math.ceil(n_total / bs)} optimizer steps per epoch at batch {bs}, where the scaled size would give "
                f"{math.ceil(scaled / bs)}) and keeps the papers' 80:20 van:idk split. "
                if n_total else "this run uses exactly that (the default sizing rule), split 80:20. ")
             + "Every method gets the same quotas; when a method's pool is smaller than its quota (a small model "
               "knows few of the pool's answers, so its van pool is small) the pool is taken whole and the shortfall "
               "is recorded, not resampled (`on_shortfall=take_all`; the released code asserts or resamples). "
               "Van-Tuning trains on the whole quota with gold answers; R-Tuning (the original \"unknown\" variant) "
               "labels a random subset of the same size by M0's correctness, with no van:idk quota, and its refusals "
               "are its 16 own phrases (counted as refusals by the default lenient detector). Numbers from "
               "`build/METHOD/summary.json`:", "",
             "| method | quota van / idk | pool van / idk | taken van / idk | shortfall van / idk "
             "| idk share of rows |",
             "|---|---|---|---|---|---|"]
    for m in trained:
        lines.append(f"| {pretty(m)} | " + " | ".join(_sizes(rows[m])) + " |")
    return lines + [""]


def _overlap(a: dict, b: dict) -> bool:
    return not (a["lo"] > b["hi"] or b["lo"] > a["hi"])


def _ordering(results: dict, t: str, where: str) -> list[str]:
    """The papers' THS ordering (``rait.methods._claims.THS_ORDER``) on test ``t``."""
    if not all(x in results and "THS" in results[x][t] for x in THS_ORDER):
        return []
    ths = [results[x][t]["THS"] for x in THS_ORDER]
    names = [pretty(x) for x in THS_ORDER]
    holds = all(a["value"] >= b["value"] for a, b in zip(ths, ths[1:]))
    unresolved = [f"{names[i]} vs {names[i + 1]}" for i in range(len(ths) - 1) if _overlap(ths[i], ths[i + 1])]
    return [f"- {where}: THS " + ", ".join(f"{n} {x['value']:.1f}" for n, x in zip(names, ths))
            + f" — the papers' ordering {' ≥ '.join(names)} **{'holds' if holds else 'does not hold'}** here"
            + (f" (95 % CIs overlap for {', '.join(unresolved)}: that step is not resolved at this n)."
               if unresolved else " (CIs separate).")]


def _pair(results: dict, t: str, where: str) -> list[str]:
    """The papers' head-to-head (``rait.methods._claims.PAIR``) on P_c, P_w, P_r."""
    a, b = PAIR
    if a not in results or b not in results:
        return []
    parts = []
    for k, what in (("P_c", "correct"), ("P_w", "wrong"), ("P_r", "refused")):
        x, y = results[a][t][k], results[b][t][k]
        rel = "similar" if _overlap(x, y) else ("more" if x["value"] > y["value"] else "less")
        parts.append(f"{what} {rel} ({x['value']:.1f} vs {y['value']:.1f})")
    return [f"- {where}: {pretty(a)} vs {pretty(b)} (the papers: {pretty(a)} cuts wrong answers with less "
            "over-refusal): " + ", ".join(parts) + " — 'more'/'less' where the 95 % CIs separate."]


def _vanilla(results: dict, t: str, where: str, rait_methods: list[str]) -> list[str]:
    """Do the refusal-aware methods answer wrongly less often than the vanilla baseline?"""
    if VANILLA not in results or not rait_methods:
        return []
    v = results[VANILLA][t]["P_w"]
    lower = [m for m in rait_methods if results[m][t]["P_w"]["hi"] < v["lo"]]
    return [f"- {where}: the papers' RAIT methods answer wrongly less often than {pretty(VANILLA)} (P_w "
            f"{v['value']:.1f}): " + (", ".join(f"{pretty(m)} {results[m][t]['P_w']['value']:.1f}" for m in lower)
                                      + " — agrees" if lower else "no method is significantly lower — disagrees")
            + (f"; not significantly lower: {', '.join(pretty(m) for m in rait_methods if m not in lower)}."
               if lower and len(lower) < len(rait_methods) else ".")]


def claims(results: dict, tests: list[str], methods: list[str], paired: dict | None = None) -> list[str]:
    """Plain statements of where this run agrees or disagrees with the papers' claims, per test set."""
    label = {"id": "in-domain", "ood": "out-of-domain"}
    lines = ["### Against the papers' claims", ""]
    if REFERENCE in results:
        known = ", ".join(f"{label.get(t, t)} {results[REFERENCE][t]['P_c']['value']:.1f} %" for t in tests)
        lines += ["The papers measure on 7–8B chat models (LLaMA2-7B-Chat, LLaMA3-8B-Instruct) that know much of the "
                  f"training domain; here {pretty(REFERENCE)} answers correctly on {known} of the test questions. "
                  "With so little known, the van pool is small, the label sets are refusal-heavy (table above) and a "
                  "method can gain little THS: keeping P_c while cutting P_w is what THS rewards, and there is almost "
                  "no P_c to keep. The statements below are what this run measured, not a test of the papers at "
                  "their scale.", ""]
    rait_methods = [m for m in methods if get(m).trains and m != VANILLA]
    for t in tests:
        where = label.get(t, t)
        lines += _ordering(results, t, where) + ordering(paired or {}, t, where) + _pair(results, t, where)
        lines += _vanilla(results, t, where, rait_methods)
        pairs = ((paired or {}).get(t) or {}).get("pairs") or {}
        d = {m: pairs[m][REFERENCE]["THS"] for m in methods if REFERENCE in pairs.get(m, {})}
        how = "paired 95 % interval of ΔTHS"
        if not d:  # no paired statistics in this results.json: the methods' own THS intervals
            d, how = {m: results[m][t]["THS"] for m in methods if "THS" in results[m][t]}, "CI of THS"
        pos = [m for m in methods if m in d and d[m]["lo"] > 0]
        neg = [m for m in methods if m in d and d[m]["hi"] < 0]
        lines.append(f"- {where}: THS significantly above {pretty(REFERENCE)} ({how} > 0): "
                     f"{', '.join(pretty(m) for m in pos) or 'none'}; significantly below ({how} < 0): "
                     f"{', '.join(pretty(m) for m in neg) or 'none'}.")
    return lines + [""]


def chance_check(plan, results: dict) -> list[str]:
    """For multiple-choice tests: is Init-Basic at chance (1 / number of options, averaged over the items)?"""
    from rait.core.artifacts import read_jsonl

    lines = []
    for t, path in plan.tests().items():
        rows = list(read_jsonl(path))
        if not rows or not rows[0].get("choices"):
            continue
        chance = 100 * sum(1 / len(r["choices"]) for r in rows) / len(rows)
        pc = results[REFERENCE][t]["P_c"]
        at = pc["lo"] <= chance <= pc["hi"]
        lines.append(f"- {t}: chance is {chance:.1f} % (1 / options); {pretty(REFERENCE)} gets P_c {pc['value']:.1f} "
                     f"[{pc['lo']:.1f}, {pc['hi']:.1f}] — {'at chance' if at else 'not at chance'}.")
    if not lines:
        return []
    at_chance = sum("— at chance" in line for line in lines)
    head = ("**Pipeline check, not a quality claim.** " if at_chance else "") + (
        f"The model `{plan.cfg.model}` is at chance on {at_chance} of {len(lines)} multiple-choice test sets, so it "
        "has no knowledge boundary for the methods to find: this run shows that every stage works on MCQA; claims "
        "about the methods need a bigger model (`--set model=<HF model>`)." if at_chance else
        f"The model `{plan.cfg.model}` is above chance on every multiple-choice test set.")
    return [head, "", *lines, ""]


def _d(c: dict | None) -> str:
    if not c:
        return "-"
    return f"{c['value']:+.1f} [{c['lo']:+.1f}, {c['hi']:+.1f}]" + (" \\*" if c.get("significant") else "")


def _vsd(m: dict | None) -> str:
    """``value ± sd`` (the macro figures carry no item-bootstrap interval)."""
    if not m:
        return "-"
    return f"{m['value']:.1f}" + (f" ± {m['sd']:.1f}" if m.get("sd") else "")


def macro_table(results: dict, tests: list[str], methods: list[str]) -> list[str]:
    """Rates and THS macro-averaged over topics (MMLU: subjects, as the papers report MMLU) beside the pooled THS,
    for the test sets whose items carry 2+ topics (``results[m][t]["macro"]``)."""
    tests = [t for t in tests if results.get(REFERENCE, {}).get(t, {}).get("macro")]
    if not tests:
        return []
    groups = ", ".join(f"{t}: {results[REFERENCE][t]['macro']['n_groups']}" for t in tests)
    lines = ["### Macro averages over topics", "",
             f"P_c / P_w / P_r averaged over the topics of each test set (topics per set: {groups}; MMLU's are its "
             "subjects, as the papers average MMLU), THS from the macro rates against Init-Basic's macro rates; "
             "pooled THS (the table above) beside it. Seed means ± sd across seeds.", ""]
    head = ["method"] + [f"{t} {k}" for t in tests for k in ("macro P_c", "macro P_w", "macro P_r", "macro THS",
                                                              "pooled THS")]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for m in methods:
        cells = []
        for t in tests:
            mac = results.get(m, {}).get(t, {}).get("macro") or {}
            cells += [_vsd(mac.get(k)) for k in ("P_c", "P_w", "P_r", "THS")]
            cells.append(_cell(results[m][t]["THS"]) if "THS" in results.get(m, {}).get(t, {}) else "-")
        lines.append(f"| {pretty(m)} | " + " | ".join(cells) + " |")
    return lines + [""]


def pool_echo(root: Path) -> tuple[int, int] | None:
    """(echo items, open-ended items) of the run's knowledge table (M0's pool probe), or None without one."""
    from rait.core.artifacts import read_jsonl
    from rait.core.scoring import echo_aliases

    path = Path(root) / "probe" / "m0" / "table.jsonl"
    if not path.exists():
        return None
    rows = [r for r in read_jsonl(path) if r.get("kind", "oeqa") == "oeqa" and r.get("answers")]
    return sum(bool(echo_aliases(r["question"], r["answers"])) for r in rows), len(rows)


def echo_table(results: dict, tests: list[str], methods: list[str], pool: tuple[int, int] | None = None
               ) -> list[str]:
    """P_c and THS under the papers' rule and echo-safe (no credit for an alias the question itself contains), for
    the open-ended test sets scored both ways (``results[m][t]["echo_safe"]`` and ``n_echo``); ``pool`` adds the
    knowledge table's count (:func:`pool_echo`)."""
    tests = [t for t in tests if "echo_safe" in results.get(REFERENCE, {}).get(t, {})]
    if not tests:
        return []
    counts = ", ".join(f"{t}: {results[REFERENCE][t].get('n_echo', 0)} of {results[REFERENCE][t]['n']}"
                       for t in tests) + (f"; training pool (knowledge table): {pool[0]} of {pool[1]}" if pool else "")
    if not any(results[REFERENCE][t].get("n_echo") for t in tests):
        return ["### Echo-safe scoring", "",
                f"No test item's question contains one of its own gold aliases ({counts}), so the echo-safe rule "
                "(`--set eval.scoring=echo_safe`, [deviations.md](deviations.md)) gives every answer the papers' "
                "verdict.", ""]
    lines = ["### Echo-safe scoring", "",
             f"Test items whose question contains one of its own gold aliases (3+ characters) — {counts}. Under the "
             "papers' rule (the default, the table above) an answer that restates such a question counts as correct; "
             "echo-safe scoring (`--set eval.scoring=echo_safe`, [deviations.md](deviations.md)) gives no credit for "
             "an alias the question contains. THS echo-safe is against Init-Basic scored echo-safe.", ""]
    head = ["method"] + [f"{t} {k}" for t in tests for k in ("P_c papers", "P_c echo-safe", "THS papers",
                                                              "THS echo-safe")]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for m in methods:
        cells = []
        for t in tests:
            r = results.get(m, {}).get(t, {})
            e = r.get("echo_safe") or {}
            cells += [_cell(r["P_c"]) if "P_c" in r else "-", _cell(e["P_c"]) if "P_c" in e else "-",
                      _cell(r["THS"]) if "THS" in r else "-", _cell(e["THS"]) if "THS" in e else "-"]
        lines.append(f"| {pretty(m)} | " + " | ".join(cells) + " |")
    return lines + [""]


def delta_table(res: dict, tests: list[str], methods: list[str]) -> list[str]:
    """Paired differences (``results.json["paired"]``): ΔP_c, ΔP_w, ΔTHS against Init-Basic, ΔTHS against
    Van-Tuning, with the items a ±1-point interval would need."""
    paired = res.get("paired") or {}
    if not paired:
        return []
    bases = [b for b in (REFERENCE, VANILLA) if b in methods]
    lines = ["### Paired differences", "",
             "Each cell is method − baseline on the same test items (seeds kept together), with the paired 95 % "
             "item-bootstrap interval; \\* = the interval excludes 0. n ±1 = test items a ±1-point interval on "
             "ΔTHS vs Init-Basic would need at the observed per-item spread.", ""]
    head = ["method"] + [f"{t} {k}" for t in tests for k in
                         ("ΔP_c vs Init-Basic", "ΔP_w vs Init-Basic", "ΔTHS vs Init-Basic", "n ±1")
                         + tuple(f"ΔTHS vs {pretty(b)}" for b in bases[1:])]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for m in methods:
        if m == REFERENCE:
            continue
        cells = []
        for t in tests:
            pairs = paired.get(t, {}).get("pairs", {}).get(m, {})
            ref = pairs.get(REFERENCE, {})
            n1 = (ref.get("THS") or {}).get("n_for_1pt")
            cells += [_d(ref.get("P_c")), _d(ref.get("P_w")), _d(ref.get("THS")), f"{n1:,}" if n1 else "-"]
            cells += [_d(pairs.get(b, {}).get("THS")) if b != m else "-" for b in bases[1:]]
        lines.append(f"| {pretty(m)} | " + " | ".join(cells) + " |")
    return lines + [""]


def diagnostics(plan, tests: list[str], methods: list[str]) -> list[str]:
    """Refusal alignment, inference cost and label quality from the run's ``diagnostics.json``."""
    path = plan.root / "diagnostics.json"
    if not path.exists():
        return []
    diag = json.loads(path.read_text())
    ra, cost, lq = diag.get("refusal_alignment", {}), diag.get("cost", {}), diag.get("label_quality", {})
    lines = ["### Diagnostics", "",
             "Refusal alignment: the method's refusals as a detector of M0's wrong greedy answers on the same items "
             "(AUROC; 0.5 = refusals unrelated to what M0 knows), precision (refused items M0 gets wrong) and recall "
             "(M0's wrong items refused). Cost: generations and extra forward passes per test question. Label "
             "quality (trained methods): share of idk rows whose question M0 answers wrongly, of answer rows it "
             "answers rightly, and of the pool's unknown items labelled idk.", ""]
    head = ["method"] + [f"{t} {k}" for t in tests for k in ("refused", "AUROC", "precision", "recall")] + \
        ["generations / q", "forward / q", "idk rows M0-wrong", "van rows M0-right", "unknowns labelled idk"]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]

    def f(x, pct=False):
        return "-" if x is None else (f"{100 * x:.0f} %" if pct else f"{x:.2f}")

    for m in methods:
        if m == REFERENCE:
            continue
        cells = []
        for t in tests:
            a = ra.get(t, {}).get(m, {})
            cells += [f(a.get("refused"), True), f(a.get("auroc")), f(a.get("precision")), f(a.get("recall"))]
        c = cost.get(tests[0], {}).get(m, {})
        q = lq.get(m, {})
        cells += [f"{c.get('generations_per_q', 1):g}", f"{c.get('forward_per_q', 0):g}",
                  f(q.get("idk_m0_wrong"), True), f(q.get("van_m0_right"), True), f(q.get("unknown_labelled_idk"), True)]
        lines.append(f"| {pretty(m)} | " + " | ".join(cells) + " |")
    return lines + [""]


def method_times(times: dict[str, float], methods: list[str], seeds: list[int]) -> dict[str, dict[str, float]]:
    """Pipeline minutes per method and training seed, from the stage times: the stages writing the artifacts the
    method needs (shared stages counted whole, as if the method ran alone: M0's pool probe, rehearsal, gradients,
    hidden states, the re-probe ...) plus the mean over seeds of its own build, training and evaluations (the
    untrained reference's evaluations are not counted for any method). Returns {method: {"shared", "own",
    "total"}} in minutes."""
    from rait.run.providers import closure, deps_of

    out = {}
    for m in methods:
        if m == REFERENCE:
            continue
        shared = sum(times.get(st, 0.0) for st in deps_of(closure(get(m).needs)))
        own = sum(v for k, v in times.items() if k.split(":")[0] in ("build", "train", "eval")
                  and k.split(":")[1] == m) / max(1, len(seeds))
        out[m] = {"shared": shared / 60, "own": own / 60, "total": (shared + own) / 60}
    return out


def method_time_table(per: dict[str, dict[str, float]]) -> list[str]:
    """Markdown of :func:`method_times`, with the ratio to GRAIT's total when GRAIT ran."""
    if not per:
        return []
    base = per.get("grait", {}).get("total")
    lines = ["", "Pipeline time per method and training seed (minutes): the stages writing the artifacts it needs, "
             "counted whole as if it ran alone, plus the mean per seed of its own build, training and evaluations"
             + (", and the ratio to GRAIT's" if base else "") + ".", "",
             "| method | artifacts | own stages | total" + (" | × GRAIT" if base else "") + " |",
             "|---|---|---|---" + ("|---" if base else "") + "|"]
    for m, v in per.items():
        lines.append(f"| {pretty(m)} | {v['shared']:.1f} | {v['own']:.1f} | {v['total']:.1f}"
                     + (f" | {v['total'] / base:.2f}" if base else "") + " |")
    return lines


def render(plan, section: str, wall: float, config: str, report: str | None = None) -> str:
    """Markdown of a finished run: results table, label sets, claims, stage times."""
    from rait.run.pipeline import stage_times

    res = json.loads((plan.root / "results.json").read_text())
    results, ref = res["results"], res["reference"]
    c = plan.cfg
    tests = list(plan.tests())
    n = {t: results[REFERENCE][t]["n"] for t in tests}
    lines = [f"<!-- {section}:start -->", f"## Quality: `{Path(plan.root).name}` ({section})", "",
             f"Produced by `python bench/quality.py --config {_rel(config)} --section {section}` "
             f"(every stage of `rait run`; numbers read from `{_rel(plan.root)}/results.json`)."
             + (f" HTML report: [{report}]({Path(report).relative_to('docs')})." if report else ""), "",
             f"Model `{c.model}`; training pool {c.data.n_pool} items of `{c.data.pool or c.data.id}`; tests: "
             + ", ".join(f"{t} = {n[t]} items of `{getattr(c.data, t)}`" for t in tests)
             + f"; training seeds {c.seeds} (Init-Basic / Init-Refuse are untrained: one greedy evaluation); values "
               "are seed means ± sd across seeds with 95 % item-bootstrap CIs (paired across seeds); THS against "
               "Init-Basic of the same test set "
             + ", ".join(f"{t}: (P_c0, P_w0) = ({ref[t]['P_c0']:.1f}, {ref[t]['P_w0']:.1f})" for t in tests) + ".",
             ""]
    head = "| method | " + " | ".join(f"{t} {k}" for t in tests for k in ("P_c", "P_w", "P_r", "THS")) + " |"
    lines += [head, "|---" * (1 + 4 * len(tests)) + "|"]
    for m in c.methods:
        cells = [(_cell(results[m][t][k]) if k in results[m][t] else "-") for t in tests
                 for k in ("P_c", "P_w", "P_r", "THS")]
        lines.append(f"| {pretty(m)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += chance_check(plan, results)
    lines += macro_table(results, tests, c.methods)
    lines += echo_table(results, tests, c.methods, pool_echo(plan.root))
    lines += delta_table(res, tests, c.methods)
    for t in tests:
        block = matrix(res.get("paired") or {}, t, c.methods)
        lines += [f"Paired ΔTHS between methods, {t} (row − column, \\* = the 95 % interval excludes 0):", "",
                  *block] if block else []
    lines += diagnostics(plan, tests, c.methods)
    lines += label_sets(plan)
    lines += grait_flow(plan.root, c.seeds[0])
    lines += claims(results, tests, c.methods, res.get("paired"))
    times = stage_times(plan)
    groups: dict[str, float] = {}
    for k, v in times.items():
        groups[k.split(":")[0]] = groups.get(k.split(":")[0], 0.0) + v
    total = sum(times.values())
    lines += ["### Wall time", "",
              f"Sum of the stage times (stages run one after another, each timed when it last ran): "
              f"**{total / 60:.1f} min**. This invocation took {wall / 60:.1f} min (stages already done are skipped) "
              f"on {cpu_line()}.", "",
              "| stage kind | runs | minutes | share |", "|---|---|---|---|"]
    for k, v in groups.items():
        runs = sum(1 for x in times if x.split(":")[0] == k)
        lines.append(f"| {k} | {runs} | {v / 60:.1f} | {100 * v / total:.0f} % |" if total else f"| {k} | {runs} | "
                     f"{v / 60:.1f} | - |")
    lines += method_time_table(method_times(times, list(c.methods), list(c.seeds)))
    lines += ["", f"<!-- {section}:end -->"]
    return "\n".join(lines)


def _rel(p) -> str:
    p = Path(p).resolve()
    try:
        return str(p.relative_to(HERE.parent))
    except ValueError:
        return str(p)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "triviaqa_nq.yaml"))
    ap.add_argument("--section", default="oeqa")
    ap.add_argument("--set", nargs="+", action="extend", default=[])
    ap.add_argument("--report-items", type=int, default=40,
                    help="items per method/seed/test in the docs copy of the HTML report (the run's own has 500)")
    args = ap.parse_args()
    from rait.run.pipeline import run

    t0 = time.time()
    plan = run(args.config, args.set)
    wall = time.time() - t0
    report = None
    if plan.cfg.report:  # publish the run's HTML report beside the doc, item browser cut to keep the repo small
        from rait.report import make_report

        with tempfile.TemporaryDirectory() as tmp:
            _, html = make_report(plan.root, out=tmp, max_items=args.report_items)
            dest = DOC.parent / "reports" / f"{plan.cfg.name}.html"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(html, dest)
        report = _rel(dest)
    write_section(args.section, render(plan, args.section, wall, args.config, report), DOC)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
