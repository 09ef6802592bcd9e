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

from rait.artifacts import atomic_write_text, read_jsonl, sha256_json, write_jsonl, write_manifest
from rait.config import ConfigError, add_config_arguments, check_choices, config_from_args, option, to_dict
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
    backend: str = option("hf", "generation backend", choices=("hf", "vllm"))
    dtype: str = option("auto", "model dtype", choices=("auto", "float32", "bfloat16", "float16"))
    system_prompt: str | None = option("", "system message ('' = empty; null = template default)")
    max_new_tokens: int = option(32, "max new tokens per answer")
    stop: list[str] = option(["\n"], "stop strings")
    batch_size: int = option(128, "prompts per batch (greedy: 128 is 1.75x faster than 32 on the 2-core CPU)")
    match: str = option("contains", "answer matching rule", choices=("contains", "contains_norm", "exact"))
    refusal: str = option("lenient", "refusal detection (strict = the papers' substring)", choices=("lenient", "strict"))
    mcqa_lenient_parse: bool = option(True, "MCQA: fall back to the first option letter anywhere (papers' parser)")
    reference: str | None = option(None, "eval dir (or metrics.json) of the THS reference (Init-Basic)")
    n_boot: int = option(1000, "bootstrap resamples for CIs (0 = none)")
    seed: int = option(0, "bootstrap seed")
    export: str | None = option(None, "also write the results in another harness's layout: lm-eval "
                                      "(OUT/lm-eval/<model>/results_<date>.json, see rait.lm_eval_export)",
                                choices=(None, "lm-eval"))

    def __post_init__(self) -> None:
        check_choices(self)
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ConfigError("max_new_tokens and batch_size must be >= 1")


def eval_prompt(item: QAItem, tok: Any, cfg: EvalConfig) -> str:
    """Rendered 0-shot evaluation prompt (chat template)."""
    from rait.prompts import build_messages, render

    return render(tok, build_messages(item, cfg.prompt, system_prompt=cfg.system_prompt))


def verdict(item: QAItem, output: str, cfg: EvalConfig) -> str:
    """Verdict of one answer under the configured rules."""
    from rait.scoring import score_mcqa, score_oeqa

    if item.kind == "mcqa":
        return score_mcqa(output, item.gold, item.letters, refusal_mode=cfg.refusal, lenient=cfg.mcqa_lenient_parse)
    return score_oeqa(output, item.answers, refusal_mode=cfg.refusal, match_mode=cfg.match)


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
        text = comp.text.strip()
        lps = comp.token_logprobs or []
        recs.append({
            "id": it.id, "question": it.question, "gold": it.gold if it.kind == "mcqa" else it.answers,
            "topic": it.topic, "output": text, "verdict": verdict(it, text, cfg),
            "confidence": (sum(lps) / len(lps)) if lps else None,
        })
    return recs


def compute_metrics(recs: Sequence[dict[str, Any]], cfg: EvalConfig,
                    reference: tuple[dict[str, Any], dict[str, str] | None] | None) -> dict[str, Any]:
    """Rates, THS, CIs, AUROC/AP and (with reference verdicts) honesty metrics."""
    from rait.metrics import average_precision, auroc, honesty_metrics, summarize

    verdicts = [r["verdict"] for r in recs]
    ref_point = None
    if reference is not None:
        rm = reference[0]
        ref_point = (_val(rm["P_c"]), _val(rm["P_w"]))
    elif cfg.prompt == "basic":
        # Evaluating Init-Basic itself: it is its own reference (THS = 0 by definition).
        from rait.metrics import rates

        r = rates(verdicts)
        ref_point = (r["P_c"], r["P_w"])
    if ref_point is not None and ref_point[1] == 0:
        ref_point = None  # THS undefined when the reference makes no wrong answer
    m = summarize(verdicts, ref=ref_point, n_boot=cfg.n_boot, seed=cfg.seed)
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
    from rait import safety
    from rait.data import load
    from rait.generation.base import SamplingConfig
    from rait.progress import bar, track_batches

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
        from rait.lm_eval_export import export

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
    from rait.safety import check_writable

    check_writable(base.out)
    order = sorted(prompts, key=lambda p: p != "basic")  # basic first: it is the reference
    backend = None
    rows = []
    ref_dir = base.reference
    for prompt in order:
        out = str(Path(base.out) / prompt) if len(order) > 1 else base.out
        cfg = replace(base, prompt=prompt, out=out, reference=None if prompt == "basic" and not base.reference else ref_dir)
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
