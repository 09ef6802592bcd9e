"""``rait probe``: the knowledge table of a model on a QA pool (method-spec §B).

Open-ended items: k sampled answers per question (default 10, temperature 1.0), per-sample correctness (the
papers' alias-substring rule) and refusal, correctness = mean correct, certainty from a named estimator
(default ``embedding``: CRaFT's mean pairwise cosine of all-MiniLM-L6-v2 embeddings), greedy answer optional.
Multiple-choice items: option probabilities from one forward pass (the letter token after the prompt) or the
papers' per-option scoring; correctness = p(gold)/Σp (``correctness_raw`` = p(gold)); certainty = −entropy.

Work is split into fixed chunks of ``chunk_size`` items (chunk c = items [c·size, (c+1)·size)). Each chunk is
processed identically whatever the sharding (its own seed, its own batches), written atomically to
``OUT/chunks/``, and skipped when it already exists — so a killed probe resumes, ``--shard i/n`` splits chunks
between processes or machines (chunk c goes to shard c mod n), and the merged ``OUT/table.jsonl`` is
byte-identical to a single-process run.

Example::

    rait probe --model default --data builtin:facts --out runs/probe --k 10
    rait probe --model default --data triviaqa:../shared/data/triviaqa/train.jsonl --limit 2000 \\
        --out runs/tqa --shard 0/2 &  rait probe ... --shard 1/2; rait probe merge runs/tqa
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rait.core.artifacts import atomic_write_text, dumps_row, read_jsonl, sha256_json, write_manifest
from rait.core.config import ConfigError, add_config_arguments, check_choices, config_from_args, option, to_dict
from rait.data.schema import QAItem
from rait.errors import RaitError

log = logging.getLogger(__name__)


@dataclass
class ProbeConfig:
    """Settings of ``rait probe``."""

    model: str = option("default", "model spec: default | path.gguf | HF dir | hub id")
    data: str = option("builtin:facts", "dataset spec (see rait.data.load)")
    limit: int | None = option(None, "use only the first N items")
    out: str = option("runs/probe", "output directory")
    backend: str = option("hf", "generation backend (rait.generation.BACKENDS: hf, vllm, or a registered one)")
    dtype: str = option("auto", "model dtype", choices=("auto", "float32", "bfloat16", "float16"))
    k: int = option(10, "samples per open-ended question")
    temperature: float = option(1.0, "sampling temperature")
    top_p: float = option(1.0, "nucleus sampling mass")
    max_new_tokens: int = option(32, "max new tokens per sample")
    stop: list[str] = option(["\n"], "stop strings")
    prompt: str = option("basic", "prompt style of the query", choices=("basic", "basic2", "refuse"))
    fewshot: int = option(3, "open-ended: the papers' multi-turn few-shot demonstrations (0-3; papers use 3)")
    system_prompt: str | None = option("", "system message ('' = empty, overriding template defaults; null = none)")
    seed: int = option(0, "sampling seed")
    certainty: str = option("embedding", "open-ended certainty estimator",
                            choices=("embedding", "answer_entropy", "mean_logprob"))
    certainty_round: int | None = option(None, "round certainty to N decimals (papers: 2)")
    mcqa_scoring: str = option("next_token", "MCQA option scoring: one forward pass, or the papers' per-option pass",
                               choices=("next_token", "per_option"))
    mcqa_prompt: str = option("chat", "MCQA query: 0-shot chat prompt, or the papers' 5-shot plain-text prompt",
                              choices=("chat", "papers"))
    mcqa_shots: str | None = option(None, "papers prompt: dataset spec of the demonstrations, the first "
                                    "mcqa_nshot rows of each subject (e.g. mmlu:../shared/data/mmlu/dev)")
    mcqa_nshot: int = option(5, "papers prompt: demonstrations per question (papers: 5)")
    mcqa_entropy: str = option("raw", "MCQA entropy over raw (as released) or normalised option probs",
                               choices=("raw", "normalized"))
    match: str = option("contains", "answer matching rule", choices=("contains", "contains_norm", "exact"))
    refusal: str = option("lenient", "refusal detection", choices=("lenient", "strict"))
    greedy: bool = option(False, "also record the greedy answer and its correctness")
    batch_size: int = option(32, "prompts per batch")
    chunk_size: int = option(128, "items per resumable chunk")
    shard: str = option("0/1", "this process's share of the chunks, i/n")

    def __post_init__(self) -> None:
        check_choices(self)
        from rait.generation import BACKENDS

        BACKENDS.get(self.backend)  # a ConfigError with a did-you-mean for an unknown backend
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        if not 0 <= self.fewshot <= 3:
            raise ConfigError(f"fewshot must be 0-3, got {self.fewshot}")
        if self.chunk_size < 1 or self.batch_size < 1:
            raise ConfigError("chunk_size and batch_size must be >= 1")
        if self.mcqa_prompt == "papers" and not self.mcqa_shots:
            raise ConfigError("mcqa_prompt=papers needs mcqa_shots, the demonstrations' dataset spec "
                              "(e.g. mmlu:../shared/data/mmlu/dev)")
        if self.mcqa_nshot < 0:
            raise ConfigError(f"mcqa_nshot must be >= 0, got {self.mcqa_nshot}")
        self.shard_index, self.shard_count = parse_shard(self.shard)


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n) with 0 ≤ i < n."""
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ConfigError(f"shard {spec!r}: expected i/n, e.g. 0/2") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"shard {spec!r}: need 0 <= i < n")
    return i, n


def _sampling(cfg: ProbeConfig, greedy: bool = False):
    from rait.generation.base import SamplingConfig

    return SamplingConfig(
        temperature=0.0 if greedy else cfg.temperature, top_p=1.0 if greedy else cfg.top_p,
        max_new_tokens=cfg.max_new_tokens, stop=list(cfg.stop), logprobs=cfg.certainty == "mean_logprob",
    )


def oeqa_prompt(item: QAItem, tok: Any, cfg: ProbeConfig) -> str:
    """The rendered knowledge-query prompt of an open-ended item."""
    from rait.core.prompts import build_messages, render

    return render(tok, build_messages(item, cfg.prompt, system_prompt=cfg.system_prompt, fewshot=cfg.fewshot))


def mcqa_demos(cfg: ProbeConfig) -> dict[str, list[QAItem]]:
    """The papers' prompt's demonstrations: the first ``mcqa_nshot`` items of each topic of ``mcqa_shots``."""
    from rait.data import load

    by: dict[str, list[QAItem]] = {}
    for it in load(cfg.mcqa_shots):
        if it.kind == "mcqa" and len(by.setdefault(it.topic or "", [])) < cfg.mcqa_nshot:
            by[it.topic or ""].append(it)
    return by


def mcqa_prompt(item: QAItem, tok: Any, cfg: ProbeConfig, demos: dict[str, list[QAItem]] | None = None) -> str:
    """The knowledge-query prompt of a multiple-choice item: 0-shot with the chat template (``chat``), or the
    papers' plain-text few-shot prompt (``papers``; ``demos`` from :func:`mcqa_demos`)."""
    from rait.core.prompts import build_messages, mcqa_fewshot_text, plain_prefix, render

    if cfg.mcqa_prompt == "chat":
        return render(tok, build_messages(item, cfg.prompt, system_prompt=cfg.system_prompt))
    shots = (demos if demos is not None else mcqa_demos(cfg)).get(item.topic or "", [])
    if len(shots) < cfg.mcqa_nshot:
        raise RaitError(f"{cfg.mcqa_shots}: {len(shots)} demonstration(s) for subject {item.topic!r}, need "
                        f"{cfg.mcqa_nshot}; point mcqa_shots at a split that has this subject (or lower mcqa_nshot)")
    return plain_prefix(tok) + mcqa_fewshot_text(item, shots)


def probe_oeqa(items: Sequence[QAItem], backend: Any, cfg: ProbeConfig, seed: int) -> list[dict[str, Any]]:
    """Knowledge-table rows of open-ended items (see docs/artifacts.md)."""
    from rait.core.certainty import answer_entropy_certainty, embedding_certainty, mean_logprob_certainty
    from rait.core.scoring import is_correct, is_refusal

    prompts = [oeqa_prompt(it, backend.tok, cfg) for it in items]
    outs = backend.generate(prompts, n=cfg.k, sampling=_sampling(cfg), seed=seed)
    samples = [[c.text.strip() for c in o] for o in outs]
    if cfg.certainty == "embedding":
        cert = embedding_certainty(samples, round_to=cfg.certainty_round)
    elif cfg.certainty == "answer_entropy":
        cert = answer_entropy_certainty(samples)
    else:
        cert = mean_logprob_certainty([[c.token_logprobs or [] for c in o] for o in outs])
    greedy = None
    if cfg.greedy:
        greedy = [o[0].text.strip() for o in backend.generate(prompts, n=1, sampling=_sampling(cfg, True), seed=seed)]
    rows = []
    for i, it in enumerate(items):
        refused = [is_refusal(s, cfg.refusal) for s in samples[i]]
        correct = [not r and is_correct(s, it.answers, cfg.match) for s, r in zip(samples[i], refused)]
        c = sum(correct) / len(correct)
        row = {**it.to_dict(), "kind": "oeqa", "samples": samples[i], "correct": correct, "refused": refused,
               "correctness": c, "correctness_raw": c, "certainty": _num(cert[i], cfg.certainty_round),
               "certainty_method": cfg.certainty,
               "n_tokens": [o.n_tokens for o in outs[i]]}
        if greedy is not None:
            row["greedy"] = greedy[i]
            row["greedy_correct"] = (not is_refusal(greedy[i], cfg.refusal)
                                     and is_correct(greedy[i], it.answers, cfg.match))
        rows.append(row)
    return rows


def _num(x: float, nd: int | None) -> float:
    x = float(x)
    return round(x, nd) if nd is not None else x


def probe_mcqa(items: Sequence[QAItem], backend: Any, cfg: ProbeConfig) -> list[dict[str, Any]]:
    """Knowledge-table rows of multiple-choice items (option probabilities, no sampling)."""
    from rait.core.certainty import option_entropy

    demos = mcqa_demos(cfg) if cfg.mcqa_prompt == "papers" else None
    prompts = [mcqa_prompt(it, backend.tok, cfg, demos) for it in items]
    if cfg.mcqa_scoring == "next_token":
        by_letters: dict[str, list[int]] = {}
        for i, it in enumerate(items):
            by_letters.setdefault(it.letters, []).append(i)
        probs: list[list[float]] = [[] for _ in items]
        for letters, idx in by_letters.items():
            res = backend.next_token_probs([prompts[i] for i in idx], list(letters))
            for i, p in zip(idx, res):
                probs[i] = p
    else:
        texts = [prompts[i] + x for i, it in enumerate(items) for x in it.letters]
        flat = backend.last_token_probs(texts)
        probs, pos = [], 0
        for it in items:
            probs.append(flat[pos: pos + len(it.letters)])
            pos += len(it.letters)
    ent = option_entropy(probs, normalize=cfg.mcqa_entropy == "normalized")
    rows = []
    for i, it in enumerate(items):
        p = probs[i]
        gold = p[it.letters.index(it.gold)]
        total = sum(p)
        rows.append({**it.to_dict(), "kind": "mcqa", "samples": [], "correct": [], "refused": [],
                     "option_probs": p, "correctness": gold / total if total > 0 else 0.0,
                     "correctness_raw": gold, "entropy": float(ent[i]), "certainty": -float(ent[i]),
                     "certainty_method": f"entropy_{cfg.mcqa_entropy}",
                     "greedy": it.letters[max(range(len(p)), key=p.__getitem__)]})
        rows[-1]["greedy_correct"] = rows[-1]["greedy"] == it.gold
    return rows


def chunk_path(out: Path, c: int) -> Path:
    return out / "chunks" / f"chunk-{c:05d}.jsonl"


def load_items(cfg: ProbeConfig) -> list[QAItem]:
    """The items to probe (a dataset spec plus limit)."""
    from rait.data import load

    items = load(cfg.data, limit=cfg.limit)
    if not items:
        raise RaitError(f"{cfg.data}: no items to probe")
    return items


def probe(cfg: ProbeConfig, backend: Any = None, progress: bool = True) -> Path | None:
    """Run (or resume) this shard's chunks; merge into ``table.jsonl`` when every chunk exists.

    Args:
        cfg: probe settings.
        backend: an already-built generation backend (else built from ``cfg``).
        progress: show a progress bar.

    Returns:
        The path of the merged table, or None if other shards still have chunks to do.
    """
    from rait.core import safety
    from rait.core.progress import bar, track_batches
    from rait.generation.cache import release_freed_memory

    out = Path(cfg.out)
    items = load_items(cfg)
    safety.check_writable(out)  # before a model is loaded
    lock = f".rait-shard-{cfg.shard.replace('/', 'of')}.lock"
    safety.acquire(out, lock)  # one process per shard of a probe directory
    safety.clean_stale_temps(out, log.info)
    n_chunks = (len(items) + cfg.chunk_size - 1) // cfg.chunk_size
    mine = [c for c in range(n_chunks) if c % cfg.shard_count == cfg.shard_index]
    todo = [c for c in mine if not chunk_path(out, c).exists()]
    _write_plan(out, cfg, items, n_chunks)
    t0 = time.time()
    if todo:
        if backend is None:
            from rait.generation import get_backend

            backend = get_backend(cfg.backend, cfg.model, dtype=cfg.dtype, batch_size=cfg.batch_size)
        total = sum(min(cfg.chunk_size, len(items) - c * cfg.chunk_size) for c in todo)
        with bar(total, f"probe {cfg.shard}", unit="q", disable=not progress) as b:
            for c in todo:
                chunk = items[c * cfg.chunk_size: (c + 1) * cfg.chunk_size]
                with track_batches(getattr(backend, "model", None), b, len(chunk)):
                    rows = probe_chunk(chunk, backend, cfg, seed=cfg.seed * 1_000_003 + c)
                atomic_write_text(chunk_path(out, c), "".join(dumps_row(r) + "\n" for r in rows))
                release_freed_memory()  # the chunk's freed blocks back to the OS: the heap does not creep
    _record_timing(out, cfg.shard, time.time() - t0, len(todo))
    try:
        if all(chunk_path(out, c).exists() for c in range(n_chunks)):
            return merge(out)
    finally:
        safety.release(out, lock)
    log.info("shard %s done; waiting for other shards before merging", cfg.shard)
    return None


def probe_chunk(items: Sequence[QAItem], backend: Any, cfg: ProbeConfig, seed: int) -> list[dict[str, Any]]:
    """Rows for one chunk, in item order (OEQA and MCQA items may be mixed)."""
    oe = [i for i, it in enumerate(items) if it.kind == "oeqa"]
    mc = [i for i, it in enumerate(items) if it.kind == "mcqa"]
    rows: list[dict[str, Any] | None] = [None] * len(items)
    if oe:
        for i, r in zip(oe, probe_oeqa([items[i] for i in oe], backend, cfg, seed)):
            rows[i] = r
    if mc:
        for i, r in zip(mc, probe_mcqa([items[i] for i in mc], backend, cfg)):
            rows[i] = r
    return rows  # type: ignore[return-value]


def _write_plan(out: Path, cfg: ProbeConfig, items: Sequence[QAItem], n_chunks: int) -> None:
    """Record the probe plan once; a rerun with different settings into the same dir is refused."""
    plan = {k: v for k, v in to_dict(cfg).items() if k not in ("shard", "out")}
    plan_hash = sha256_json({"plan": plan, "items": sha256_json([it.to_dict() for it in items])})
    p = out / "plan.json"
    if p.exists():
        old = json.loads(p.read_text())
        if old.get("hash") != plan_hash:
            raise RaitError(f"{p}: this directory holds a probe with other settings or data; use another --out")
        return
    atomic_write_text(p, json.dumps({"hash": plan_hash, "config": plan, "n_items": len(items),
                                     "n_chunks": n_chunks, "data_sha256": sha256_json([it.to_dict() for it in items])},
                                    indent=2, sort_keys=True) + "\n")


def _record_timing(out: Path, shard: str, seconds: float, chunks: int) -> None:
    p = out / "timings" / f"shard-{shard.replace('/', 'of')}.json"
    atomic_write_text(p, json.dumps({"seconds": seconds, "chunks": chunks}) + "\n")


def merge(out: str | Path) -> Path:
    """Join every chunk of a probe directory into ``table.jsonl`` + ``manifest.json``.

    Raises:
        RaitError: when chunks are missing (names the first missing chunk).
    """
    out = Path(out)
    plan_path = out / "plan.json"
    if not plan_path.exists():
        raise RaitError(f"{plan_path}: not a probe directory (no plan.json)")
    plan = json.loads(plan_path.read_text())
    missing = [c for c in range(plan["n_chunks"]) if not chunk_path(out, c).exists()]
    if missing:
        raise RaitError(f"{out}: {len(missing)} chunk(s) missing, e.g. {chunk_path(out, missing[0]).name}; "
                        "run the remaining shards first")
    text = "".join(chunk_path(out, c).read_text(encoding="utf-8") for c in range(plan["n_chunks"]))
    table = out / "table.jsonl"
    atomic_write_text(table, text)
    timings = {p.stem: json.loads(p.read_text())["seconds"] for p in sorted((out / "timings").glob("*.json"))}
    rows = read_jsonl(table)
    write_manifest(out, "probe", plan["config"], {"data_sha256": plan["data_sha256"]}, timings,
                   {"n_items": len(rows), "plan_hash": plan["hash"], "table_sha256": sha256_json(text)})
    return table


def add_parser(sub: Any) -> None:
    """Register ``rait probe`` (and ``rait probe merge DIR``)."""
    p = sub.add_parser("probe", help="knowledge probe: k samples, correctness and certainty per item",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=("run", "merge"), default="run",
                   help="run (default) or merge the chunks of DIR (--out)")
    p.add_argument("dir", nargs="?", help="with merge: the probe directory")
    add_config_arguments(p, ProbeConfig)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.action == "merge":
        target = args.dir or getattr(args, "cfg__out", None)
        if not target:
            raise RaitError("rait probe merge DIR: give the probe directory")
        print(merge(target))
        return 0
    cfg = config_from_args(ProbeConfig, args)
    table = probe(cfg)
    print(table if table else f"shard {cfg.shard} done; run `rait probe merge {cfg.out}` after the others")
    return 0
