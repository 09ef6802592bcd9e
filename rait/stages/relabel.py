"""The re-probe stage of Relabel-RAIT: what the pool looks like to a model tuned on the task, item by item.

Tuning changes what a model knows: on the graded benchmark one epoch-pair of plain answer tuning (Van-Tuning)
raises the in-domain correct rate from 12.5 % to 20.9 % on *unseen* test questions, so labels computed on M0
are stale for the model being trained. This stage measures the pool with a model after ``epochs`` of answer
tuning, **cross-fitted**: the pool is split into ``folds`` seeded folds; for each fold, M0 is fine-tuned on the
gold answers of the *other* folds (BASIC prompt, empty system message: CRaFT's rehearsal rows) with the run's
training settings for ``epochs`` epochs, and that model answers the fold's questions (the run's probe settings,
``k`` samples plus the greedy answer). Each item's verdict thus comes from a model that was tuned on the task
but never saw the item — knowledge, not memorised rows.

Output: ``OUT/table.jsonl`` (a knowledge table of the pool in M0's table order, the tuned model's ``greedy``,
``greedy_correct``, ``correctness`` and ``certainty`` per item, plus ``fold``), ``OUT/foldF/`` (training rows,
model, probe table) and ``manifest.json``.

Cost: ``folds`` short fine-tunes on ``(folds-1)/folds`` of the pool for ``epochs`` epochs, and one probe of the
pool at ``k`` samples (rait run: k = 1 plus the greedy answer).

Example:
    >>> from rait.stages.relabel import fold_of
    >>> fold_of(["a", "b", "c", "d", "e"], folds=2, seed=0)
    {'c': 0, 'b': 1, 'a': 0, 'e': 1, 'd': 0}
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rait.core.artifacts import atomic_write_text, file_info, read_jsonl, write_manifest
from rait.core.config import ConfigError, option, to_dict
from rait.errors import DataError
from rait.stages.probe import ProbeConfig
from rait.stages.train import TrainConfig


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
