"""``rait eval``: greedy evaluation of a model on a QA test set (method-spec §F).

Per item: the greedy answer under the BASIC or REFUSE prompt, its verdict (correct / wrong / refuse, and
fail_parse for multiple choice) and the mean token log-probability of the answer (a cheap confidence score).
Per run: P_c, P_w, P_r (P_fail), THS against an explicit reference point (Init-Basic of the same model on the same
test set), 95 % bootstrap CIs (items resampled), AUROC/AP of the confidence against correctness, and — when the
reference run's per-item verdicts are given — over-conservativeness, prudence and honesty.

Writes ``OUT/items.jsonl`` and ``OUT/metrics.json``.

Example::

    rait eval --model default --data builtin:facts --prompt basic refuse
    rait eval --model runs/x/train/model --data triviaqa:../shared/data/triviaqa/dev.jsonl --limit 200 \\
        --prompt refuse --reference runs/x/eval/init_basic
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from rait.core.artifacts import atomic_write_text, read_jsonl, sha256_json, write_jsonl, write_manifest
from rait.core.config import ConfigError, add_config_arguments, check_choices, config_from_args, option, to_dict
from rait.data.schema import QAItem
from rait.errors import RaitError


@dataclass
class EvalConfig:
    """Settings of ``rait eval``."""

    model: str = option("default", "model spec: default | path.gguf | HF dir | hub id")
    data: str = option("builtin:facts", "test-set spec (see rait.data.load)")
    limit: int | None = option(None, "use only the first N items")
    prompt: str = option("basic", "prompt style", choices=("basic", "basic2", "refuse"))
    out: str = option("runs/eval", "output directory (one subdirectory per prompt when several are run)")
    backend: str = option("hf", "generation backend (rait.generation.BACKENDS: hf, vllm, or a registered one)")
    dtype: str = option("auto", "model dtype", choices=("auto", "float32", "bfloat16", "float16"))
    system_prompt: str | None = option("", "system message ('' = empty; null = template default)")
    max_new_tokens: int = option(32, "max new tokens per answer")
    stop: list[str] = option(["\n"], "stop strings")
    batch_size: int = option(128, "prompts per batch (greedy: 128 is 1.75x faster than 32 on the 2-core CPU)")
    match: str = option("contains", "answer matching rule", choices=("contains", "contains_norm", "exact"))
    refusal: str = option("lenient", "refusal detection (strict = the papers' substring)",
                          choices=("lenient", "strict"))
    mcqa_lenient_parse: bool = option(True, "MCQA: fall back to the first option letter anywhere (papers' parser)")
    mcqa_parse: str = option("opencompass", "MCQA letter parser: the papers' opencompass rule, or rait's old one",
                             choices=("opencompass", "legacy"))
    scoring: str = option("papers", "open-ended: papers' alias rule, or echo_safe (no credit for an alias the "
                          "question contains); metrics.json reports both", choices=("papers", "echo_safe"))
    reference: str | None = option(None, "eval dir (or metrics.json) of the THS reference (Init-Basic)")
    n_boot: int = option(1000, "bootstrap resamples for CIs (0 = none)")
    seed: int = option(0, "bootstrap seed")
    export: str | None = option(None, "also write the results in another harness's layout: lm-eval "
                                      "(OUT/lm-eval/<model>/results_<date>.json, see rait.stages.lm_eval_export)",
                                choices=(None, "lm-eval"))

    def __post_init__(self) -> None:
        check_choices(self)
        from rait.generation import BACKENDS

        BACKENDS.get(self.backend)  # a ConfigError with a did-you-mean for an unknown backend
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be >= 1")


def eval_prompt(item: QAItem, tok: Any, cfg: EvalConfig) -> str:
    """Rendered 0-shot evaluation prompt (chat template)."""
    from rait.core.prompts import build_messages, render

    return render(tok, build_messages(item, cfg.prompt, system_prompt=cfg.system_prompt))


def verdict(item: QAItem, output: str, cfg: EvalConfig, scoring: str | None = None) -> str:
    """Verdict of one answer under the configured rules (``scoring`` overrides ``cfg.scoring``)."""
    from rait.core.scoring import score_mcqa, score_oeqa

    if item.kind == "mcqa":
        return score_mcqa(output, item.gold, item.letters, refusal_mode=cfg.refusal, lenient=cfg.mcqa_lenient_parse,
                          rule=cfg.mcqa_parse)
    return score_oeqa(output, item.answers, refusal_mode=cfg.refusal, match_mode=cfg.match,
                      scoring=scoring or cfg.scoring, question=item.question)


def item_record(item: QAItem, output: str, cfg: EvalConfig, confidence: float | None = None) -> dict[str, Any]:
    """One ``items.jsonl`` record: the verdict under ``cfg`` and, for open-ended items, ``echo`` (the question
    contains one of its aliases) and the verdict under each scoring rule (``verdicts``)."""
    from rait.core.scoring import SCORINGS, echo_aliases

    rec: dict[str, Any] = {"id": item.id, "question": item.question,
                           "gold": item.gold if item.kind == "mcqa" else item.answers, "topic": item.topic,
                           "output": output, "verdict": verdict(item, output, cfg), "confidence": confidence}
    if item.kind == "mcqa":
        rec["letters"] = item.letters
    else:
        rec["echo"] = bool(echo_aliases(item.question, item.answers))
        rec["verdicts"] = {s: verdict(item, output, cfg, scoring=s) for s in SCORINGS}
    return rec


def record_item(rec: dict[str, Any]) -> QAItem:
    """The item behind an ``items.jsonl`` record (MCQA option texts are not stored; letters default to ABCD)."""
    gold = rec.get("gold")
    if isinstance(gold, list):
        return QAItem(id=str(rec["id"]), question=rec.get("question", ""), answers=gold, topic=rec.get("topic"))
    return QAItem(id=str(rec["id"]), question=rec.get("question", ""), choices=[""] * len(rec.get("letters") or "ABCD"),
                  gold=gold, topic=rec.get("topic"))


def load_reference(path: str | Path) -> tuple[dict[str, Any], dict[str, str] | None]:
    """(metrics, verdict per id or None) of a reference eval dir or metrics.json."""
    p = Path(path)
    mpath = p / "metrics.json" if p.is_dir() else p
    if not mpath.exists():
        raise RaitError(f"{mpath}: reference metrics not found")
    metrics = json.loads(mpath.read_text())
    ipath = mpath.parent / "items.jsonl"
    verdicts = {r["id"]: r["verdict"] for r in read_jsonl(ipath)} if ipath.exists() else None
    return metrics, verdicts


def score_items(items: Sequence[QAItem], outputs: Sequence[Any], cfg: EvalConfig) -> list[dict[str, Any]]:
    """Per-item records from completions."""
    recs = []
    for it, comp in zip(items, outputs):
        lps = comp.token_logprobs or []
        recs.append(item_record(it, comp.text.strip(), cfg, (sum(lps) / len(lps)) if lps else None))
    return recs


def _point(m: dict[str, Any] | None) -> tuple[float, float] | None:
    """(P_c, P_w) of a metrics dict (values or ``{value}`` dicts); None when absent or P_w = 0 (THS undefined)."""
    if not m or "P_c" not in m or "P_w" not in m:
        return None
    p = (_val(m["P_c"]), _val(m["P_w"]))
    return p if p[1] > 0 else None


def _extra_views(recs: Sequence[dict[str, Any]], verdicts: Sequence[str], cfg: EvalConfig,
                 ref_m: dict[str, Any] | None) -> dict[str, Any]:
    """``macro`` (rates averaged over topics, when there are 2+) and ``scorings`` (open-ended items: the run
    under each scoring rule, THS against the reference's point under the same rule) with ``n_echo``.
    ``ref_m`` is the reference's metrics; None when the run is its own reference (Init-Basic)."""
    from rait.core.metrics import macro_rates, rates, summarize
    from rait.core.scoring import SCORINGS

    out: dict[str, Any] = {}
    topics = [r.get("topic") for r in recs]
    if all(t is not None for t in topics) and len(set(topics)) > 1:
        ref = _point(ref_m.get("macro")) if ref_m is not None else _point(macro_rates(verdicts, topics))
        out["macro"] = macro_rates(verdicts, topics, ref=ref)
    if any("verdicts" in r for r in recs):
        out["n_echo"] = sum(bool(r.get("echo")) for r in recs)
        out["scorings"] = {}
        for name in SCORINGS:
            vs = [r.get("verdicts", {}).get(name, r["verdict"]) for r in recs]
            ref = _point((ref_m.get("scorings") or {}).get(name)) if ref_m is not None else _point(rates(vs))
            out["scorings"][name] = summarize(vs, ref=ref, n_boot=cfg.n_boot, seed=cfg.seed)
    return out


def compute_metrics(recs: Sequence[dict[str, Any]], cfg: EvalConfig,
                    reference: tuple[dict[str, Any], dict[str, str] | None] | None) -> dict[str, Any]:
    """Rates, THS, CIs, AUROC/AP and (with reference verdicts) honesty metrics."""
    from rait.core.metrics import auroc, average_precision, honesty_metrics, summarize

    verdicts = [r["verdict"] for r in recs]
    ref_point = None
    if reference is not None:
        rm = reference[0]
        ref_point = (_val(rm["P_c"]), _val(rm["P_w"]))
    elif cfg.prompt == "basic":
        # Evaluating Init-Basic itself: it is its own reference (THS = 0 by definition).
        from rait.core.metrics import rates

        r = rates(verdicts)
        ref_point = (r["P_c"], r["P_w"])
    if ref_point is not None and ref_point[1] == 0:
        ref_point = None  # THS undefined when the reference makes no wrong answer
    m = summarize(verdicts, ref=ref_point, n_boot=cfg.n_boot, seed=cfg.seed)
    # Reference metrics for the macro / per-scoring THS: None = this run is its own reference (Init-Basic);
    # {} = no reference at all (no THS).
    ref_m = reference[0] if reference is not None else (None if cfg.prompt == "basic" else {})
    m.update(_extra_views(recs, verdicts, cfg, ref_m))
    answered = [r for r in recs if r["verdict"] in ("correct", "wrong") and r["confidence"] is not None]
    if answered:
        scores = [r["confidence"] for r in answered]
        labels = [r["verdict"] == "correct" for r in answered]
        if len(set(labels)) == 2:
            m["AUROC"] = auroc(scores, labels)
            m["AP"] = average_precision(scores, labels)
    if reference is not None and reference[1] is not None:
        ref_v = reference[1]
        missing = [r["id"] for r in recs if r["id"] not in ref_v]
        if missing:
            raise RaitError(f"reference verdicts lack {len(missing)} test id(s), e.g. {missing[0]!r}")
        known = [ref_v[r["id"]] == "correct" for r in recs]
        if any(known) and not all(known):
            m.update(honesty_metrics(verdicts, known))
    return m


def _val(x: Any) -> float:
    return float(x["value"]) if isinstance(x, dict) else float(x)


def evaluate(cfg: EvalConfig, backend: Any = None, progress: bool = True) -> dict[str, Any]:
    """Run one evaluation; writes ``items.jsonl``, ``metrics.json`` and ``manifest.json`` under ``cfg.out``.

    Args:
        cfg: settings.
        backend: an already-built generation backend for ``cfg.model`` (else built here).
        progress: show a progress bar.

    Returns:
        The metrics dict.
    """
    from rait.core import safety
    from rait.core.progress import bar, track_batches
    from rait.data import load
    from rait.generation.base import SamplingConfig

    items = load(cfg.data, limit=cfg.limit)
    if not items:
        raise RaitError(f"{cfg.data}: no items to evaluate; check the file and --limit")
    reference = load_reference(cfg.reference) if cfg.reference else None
    safety.check_writable(cfg.out)  # before the model loads and every answer is generated
    safety.clean_stale_temps(cfg.out)
    if backend is None:
        from rait.generation import get_backend

        backend = get_backend(cfg.backend, cfg.model, dtype=cfg.dtype, batch_size=cfg.batch_size)
    s = SamplingConfig(temperature=0.0, max_new_tokens=cfg.max_new_tokens, stop=list(cfg.stop), logprobs=True)
    t0 = time.time()
    outputs = []
    step = max(cfg.batch_size * 4, 64)
    with bar(len(items), f"eval {cfg.prompt}", unit="q", disable=not progress) as b:
        for i in range(0, len(items), step):
            chunk = items[i: i + step]
            with track_batches(getattr(backend, "model", None), b, len(chunk)):
                res = backend.generate([eval_prompt(it, backend.tok, cfg) for it in chunk], n=1, sampling=s)
            outputs.extend(o[0] for o in res)
    seconds = time.time() - t0
    recs = score_items(items, outputs, cfg)
    metrics = compute_metrics(recs, cfg, reference)
    metrics.update({"model": cfg.model, "data": cfg.data, "prompt": cfg.prompt, "seconds": round(seconds, 2),
                    "items_per_s": round(len(items) / max(seconds, 1e-9), 2)})
    out = Path(cfg.out)
    write_jsonl(out / "items.jsonl", recs)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True, default=_json_num) + "\n")
    write_manifest(out, "eval", to_dict(cfg), {"data_sha256": sha256_json([it.to_dict() for it in items]),
                                               "reference": cfg.reference}, {"generate": seconds})
    if cfg.export == "lm-eval":
        from rait.stages.lm_eval_export import export

        export(out)
    return metrics


def _json_num(x: Any) -> Any:
    return float(x)


def fmt_ci(m: dict[str, Any] | float | None) -> str:
    """``12.3 [10.1, 14.6]`` from a ``{value, lo, hi}`` dict."""
    if m is None:
        return "-"
    if not isinstance(m, dict):
        return "-" if isinstance(m, float) and math.isnan(m) else f"{m:.3f}"
    if m["lo"] == m["hi"] == m["value"]:
        return f"{m['value']:.1f}"
    return f"{m['value']:.1f} [{m['lo']:.1f}, {m['hi']:.1f}]"


def format_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """A markdown table of named metric dicts: n, P_c, P_w, P_r, THS (with 95 % CIs)."""
    head = "| run | n | P_c | P_w | P_r | THS |\n| --- | --- | --- | --- | --- | --- |"
    lines = [head]
    for name, m in rows:
        lines.append(f"| {name} | {m['n']} | {fmt_ci(m['P_c'])} | {fmt_ci(m['P_w'])} | {fmt_ci(m['P_r'])} | "
                     f"{fmt_ci(m.get('THS'))} |")
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    """Register ``rait eval``."""
    p = sub.add_parser("eval", help="greedy evaluation: P_c / P_w / P_r / THS", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, EvalConfig)
    p.set_defaults(func=_main)
    # --prompt may name several styles: each is evaluated; the basic run is the others' THS reference.
    for a in p._actions:
        if a.dest == "cfg__prompt":
            a.nargs = "+"


def _main(args: argparse.Namespace) -> int:
    flag_prompts = getattr(args, "cfg__prompt", None)
    if flag_prompts is not None:
        args.cfg__prompt = flag_prompts[0]
    base = config_from_args(EvalConfig, args)
    prompts = list(flag_prompts) if flag_prompts and len(flag_prompts) > 1 else [base.prompt]
    from rait.data import load

    if not load(base.data, limit=base.limit):  # bad data fails here, before a model is loaded
        raise RaitError(f"{base.data}: no items to evaluate; check the file and --limit")
    from rait.core.safety import check_writable

    check_writable(base.out)
    order = sorted(prompts, key=lambda p: p != "basic")  # basic first: it is the reference
    backend = None
    rows = []
    ref_dir = base.reference
    for prompt in order:
        out = str(Path(base.out) / prompt) if len(order) > 1 else base.out
        reference = None if prompt == "basic" and not base.reference else ref_dir
        cfg = replace(base, prompt=prompt, out=out, reference=reference)
        if backend is None:
            from rait.generation import get_backend

            backend = get_backend(cfg.backend, cfg.model, dtype=cfg.dtype, batch_size=cfg.batch_size)
        m = evaluate(cfg, backend=backend)
        if prompt == "basic" and ref_dir is None:
            ref_dir = out
        rows.append((prompt, m))
        print(f"wrote {out}/items.jsonl and metrics.json ({m['seconds']} s)")
    print(format_table(rows))
    return 0
