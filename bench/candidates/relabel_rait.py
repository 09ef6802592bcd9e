"""Relabel-RAIT ("online relabelling"): a candidate for rait's own method that lost to Probe-RAIT in both domains
of the graded benchmark (docs/own_method.md). Kept as a plugin so that its measurement reruns; it is not part of
rait's method registry. Use: ``plugins: [bench/candidates/relabel_rait.py]`` and ``relabel_rait`` in ``methods:``.

Every method of the papers labels the pool by M0's answers, but tuning changes what the model knows: on the graded
benchmark, Van-Tuning (answers only) raises the in-domain correct rate from 12.5 % to 20.9 % on unseen questions.
A label set built on M0 tells the tuned model to refuse questions it would by then answer, and to answer some it
no longer does. Relabel-RAIT labels each pool item by the greedy answer of a model after the first epoch of answer
tuning:

    van (gold answer)  if the tuned model answers item i correctly,
    idk (refusal)      otherwise.

The ``relabel`` stage (artifact ``tuned_table``, registered by this file; :class:`RelabelConfig` at its defaults,
the run's train and probe sections filled in) measures that **cross-fitted**: the pool is split into ``folds``
seeded folds; for each fold, M0 is fine-tuned on the gold answers of the *other* folds (BASIC prompt, empty
system message: CRaFT's rehearsal rows) for ``epochs`` epochs, and that model answers the fold's questions (the
run's probe settings, ``k`` = 1 sample plus the greedy answer). Each verdict comes from a model tuned on the task
that never saw the item — knowledge, not a memorised row. Output: ``relabel/table.jsonl`` (the pool in M0's table
order with the tuned model's ``greedy``, ``greedy_correct``, ``correctness``, ``certainty`` and ``fold``),
``relabel/foldF/`` (training rows, model, probe table), ``manifest.json``.

The final model is trained from M0 on the relabelled rows by the pipeline's train stage like every other method,
so the relabelling emulates an epoch boundary rather than continuing the warm-up model: CRaFT's knowledge-flow
idea measured on a model tuned on the whole task instead of a rehearsal on already-known items.

Cost: two one-epoch fine-tunes on half the pool each and a greedy probe of the pool, on top of M0's pool probe;
``n_total`` items (default: all) are trained on.

Example:
    >>> from rait.methods import get, load_plugin
    >>> load_plugin("bench/candidates/relabel_rait.py")
    >>> get("relabel_rait").needs
    ('table', 'tuned_table')
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rait.core.artifacts import atomic_write_text, file_info, read_jsonl, write_manifest
from rait.core.config import ConfigError, option, to_dict
from rait.errors import DataError
from rait.methods import Summary, register
from rait.methods._common import CommonConfig, Decisions, draw_items, finish, make_row, resolve_seed, task_kind
from rait.run.providers import KINDS, Provider, _stage, provide
from rait.stages.probe import ProbeConfig
from rait.stages.train import TrainConfig

if TYPE_CHECKING:
    from rait.run.pipeline import Plan, Stage


@dataclass
class RelabelConfig:
    """Settings of the re-probe stage (``relabel:`` in a run config; ``train`` / ``probe`` come from the run's own
    sections, with ``epochs`` and ``k`` set here)."""

    table: str = option("", "M0's knowledge table of the pool (rait run sets it)")
    data: str = option("", "the pool's items, JSONL (rait run sets it)")
    model: str = option("default", "M0 (rait run sets it)")
    dtype: str = option("auto", "inference dtype of the probe (rait run sets it)")
    out: str = option("", "output directory (rait run sets it)")
    folds: int = option(2, "cross-fitting folds: each fold is probed by a model tuned on the others")
    epochs: float = option(1.0, "epochs of answer tuning before the re-probe (the epoch boundary)")
    k: int = option(1, "sampled answers per item in the re-probe (the greedy answer decides the label)")
    seed: int = option(0, "seed of the fold split and of the tuning")
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig,
                                           metadata={"help": "training settings (rait run: the run's train section)",
                                                     "choices": None})
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig,
                                           metadata={"help": "probe settings (rait run: the run's probe section)",
                                                     "choices": None})

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"relabel.folds={self.folds}: expected >= 2 (a fold is probed by a model tuned on the "
                              "others)")
        if self.epochs <= 0 or self.k < 1:
            raise ConfigError("relabel: epochs must be > 0 and k >= 1")


def fold_of(ids: list[str], folds: int, seed: int) -> dict[str, int]:
    """Seeded split of ``ids`` into ``folds`` folds of equal size (±1): id -> fold."""
    order = list(ids)
    random.Random(seed).shuffle(order)
    return {i: n % folds for n, i in enumerate(order)}


def relabel(cfg: RelabelConfig) -> Path:
    """Tune on the other folds, probe each fold, write ``OUT/table.jsonl``; returns its path."""
    from rait.stages.probe import probe
    from rait.stages.rehearse import read_table, training_row
    from rait.stages.train import train

    if not (cfg.table and cfg.data and cfg.out):
        raise ConfigError("relabel: 'table', 'data' and 'out' are required")
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    table = read_table(cfg.table)
    items = {r["id"]: r for r in read_jsonl(cfg.data)}
    missing = [r["id"] for r in table if r["id"] not in items]
    if missing:
        raise DataError(cfg.data, None, f"{len(missing)} table id(s) not among the pool items, e.g. {missing[0]!r}")
    folds = fold_of([r["id"] for r in table], cfg.folds, cfg.seed)
    probed: dict[str, dict[str, Any]] = {}
    timing: dict[str, float] = {}
    for f in range(cfg.folds):
        d = out / f"fold{f}"
        d.mkdir(exist_ok=True)
        rows = [training_row(r) for r in table if folds[r["id"]] != f]
        atomic_write_text(d / "train.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        atomic_write_text(d / "items.jsonl", "".join(json.dumps(items[r["id"]], ensure_ascii=False) + "\n"
                                                     for r in table if folds[r["id"]] == f))
        t = time.time()
        tcfg = dataclasses.replace(cfg.train, data=str(d / "train.jsonl"), model=cfg.model, out=str(d / "model"),
                                   epochs=cfg.epochs, seed=cfg.seed, save_steps=0)
        model = train(tcfg)
        timing[f"train_fold{f}"] = round(time.time() - t, 2)
        t = time.time()
        pcfg = dataclasses.replace(cfg.probe, model=str(model), dtype=cfg.dtype, data=f"jsonl:{d / 'items.jsonl'}",
                                   out=str(d / "probe"), k=cfg.k, greedy=True, seed=cfg.seed,
                                   certainty="answer_entropy" if cfg.k < 2 else cfg.probe.certainty)
        probe(pcfg)
        timing[f"probe_fold{f}"] = round(time.time() - t, 2)
        for r in read_jsonl(d / "probe" / "table.jsonl"):
            probed[r["id"]] = {**r, "fold": f}
    merged = [probed[r["id"]] for r in table]
    path = out / "table.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in merged))
    right = sum(bool(r.get("greedy_correct")) for r in merged)
    write_manifest(out, "relabel", to_dict(cfg), {"table": file_info(cfg.table), "data": file_info(cfg.data)},
                   {"wall": round(time.time() - t0, 2), **timing},
                   outputs={"table": file_info(path), "items": len(merged), "greedy_correct": right})
    return path


def _make_tuned_table(plan: "Plan") -> "Stage":
    p = KINDS.get("tuned_table")
    cfg = RelabelConfig(table=str(KINDS.get("table").path(plan.root)), data=str(plan.pool), model=plan.cfg.model,
                        dtype=plan.cfg.dtype, out=str(p.out(plan.root)), train=plan.cfg.stage("train"),
                        probe=plan.cfg.stage("probe"))
    return _stage(plan, p, cfg, relabel)


provide(Provider("tuned_table", "relabel", ("table",), lambda r: r / "relabel" / "table.jsonl",
                 lambda r: r / "relabel", _make_tuned_table, build_field="tuned_table"))


@dataclass
class RelabelRaitConfig(CommonConfig):
    """Relabel-RAIT: the pool labelled by the cross-fitted tuned model's greedy verdicts; ``n_total`` /
    ``fraction`` keep that many items, drawn at random (default: the whole pool); the van / idk quotas are
    unused."""

    tuned_table: str | None = option(None, "the re-probed pool table (rait run sets it from the 'relabel' stage)")

    def __post_init__(self) -> None:
        self._check_common()


def tuned_verdicts(table: list[dict[str, Any]], path: str) -> tuple[list[str], str, list[dict[str, Any]]]:
    """The tuned model's verdict ("correct" / "wrong") per table row, its source and the tuned rows, in table
    order. A table id missing from the tuned table is a DataError naming the file."""
    from rait.core.abstain import pool_verdicts

    tuned = {r["id"]: r for r in read_jsonl(path)}
    missing = [r["id"] for r in table if r["id"] not in tuned]
    if missing:
        raise DataError(path, None, f"no re-probed row for {len(missing)} pool id(s), e.g. {missing[0]!r}")
    rows = [tuned[r["id"]] for r in table]
    verdicts, source = pool_verdicts(rows)
    return verdicts, source, rows


@register("relabel_rait", "Relabel-RAIT (rait): labels from a model tuned on the other folds (online relabelling)",
          RelabelRaitConfig, needs=("table", "tuned_table"), display="Relabel-RAIT",
          paper="rait's own (docs/own_method.md)", random_draw=True)
def build(table: list[dict[str, Any]], cfg: RelabelRaitConfig) -> tuple[list[dict[str, Any]], Summary]:
    from rait.core.abstain import pool_verdicts

    if not cfg.tuned_table:
        raise ConfigError("relabel_rait: tuned_table is required (rait run sets it from the 'relabel' stage)")
    kind = task_kind(table)
    seed = resolve_seed(cfg, kind)
    verdicts, source, _ = tuned_verdicts(table, cfg.tuned_table)
    m0, _ = pool_verdicts(table)
    dec = Decisions(table, ("correctness",))
    rows: list[dict[str, Any]] = []
    picks, sizing = draw_items(table, cfg, seed)
    for i in picks:
        lab = "van" if verdicts[i] == "correct" else "idk"
        rows.append({**make_row(table[i], cfg, lab), "weight": 1.0 if lab == "van" else cfg.idk_weight})
        dec.pick(i, lab, f"tuned model {verdicts[i]} (M0 {m0[i]})")
    flips = {"gained": sum(a == "wrong" and b == "correct" for a, b in zip(m0, verdicts)),
             "lost": sum(a == "correct" and b == "wrong" for a, b in zip(m0, verdicts))}
    summary = {"method": "relabel_rait", "kind": kind, "as_released": cfg.as_released, "sizing": sizing,
               "thresholds": {"verdicts": source},
               "pools": {"van": verdicts.count("correct"), "idk": len(verdicts) - verdicts.count("correct")},
               "quotas": {}, "shortfall": {}, "m0_vs_tuned": {"m0_correct": m0.count("correct"), **flips}}
    return finish(table, rows, summary, dec, seed, unpicked_reason="not_drawn")
