"""``rait rehearse``: CRaFT stage 1b/1c — fine-tune the model on items it already masters (method-spec §C).

Selection from a knowledge table (docs/artifacts.md): OEQA rows with ``correctness >= 0.995`` and
``certainty >= 0.995``; MCQA rows with ``correctness_raw > 0.99``. Up to ``n`` (1,000) are drawn with a seeded
RNG, turned into training rows with the gold answer and the BASIC prompt and an empty system message, written to
``OUT/rehearsal.jsonl`` and trained with :func:`rait.stages.train.train` into ``OUT/model`` (the rehearsed model M_r).
With ``save_optimizer: true`` the Adam moments are kept in ``OUT/model/optimizer.safetensors`` (keys
``<peft parameter name>.exp_avg`` / ``.exp_avg_sq``; the LoRA adapter is then also saved in ``OUT/model/adapter``)
for GRAIT's warm-up gradients.

Command line::

    rait rehearse --table runs/probe/table.jsonl --model default --out runs/rehearse --set n=500

Example:
    >>> from rait.stages.rehearse import RehearseConfig, select
    >>> rows = [{"id": "a", "kind": "oeqa", "question": "Capital of France?", "answers": ["Paris"],
    ...          "correctness": 1.0, "certainty": 1.0},
    ...         {"id": "b", "kind": "oeqa", "question": "Obscure?", "answers": ["x"],
    ...          "correctness": 0.3, "certainty": 0.9}]
    >>> picked, info = select(rows, RehearseConfig(min_items=1))
    >>> [r["id"] for r in picked], info["qualified"]
    (['a'], 1)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rait.core.artifacts import atomic_write_text, file_info, write_manifest
from rait.core.config import ConfigError, add_config_arguments, check_choices, config_from_args, option, to_dict
from rait.core.prompts import build_messages
from rait.data.schema import QAItem
from rait.errors import DataError, RaitError
from rait.stages.train import TrainConfig, train


@dataclass
class RehearseConfig:
    """Settings of ``rait rehearse``; the ``train`` section is a :class:`rait.stages.train.TrainConfig`."""

    table: str = option("", "knowledge table (table.jsonl from rait probe)")
    model: str = option("default", "model spec to rehearse (M0)")
    out: str = option("", "output directory (rehearsal.jsonl, model/, manifest.json)")
    n: int = option(1000, "items to draw from those that qualify")
    seed: int = option(0, "seed of the draw (TriviaQA scripts: 0; MMLU scripts: 42)")
    oeqa_min_correctness: float = option(0.995, "OEQA: correctness >= this (all 10 samples correct)")
    oeqa_min_certainty: float = option(0.995, "OEQA: certainty >= this")
    mcqa_min_correctness_raw: float = option(0.99, "MCQA: un-normalised p(gold) > this")
    min_items: int = option(50, "fewer qualifying items than this is an error (or triggers the fallback)")
    fallback: str = option("none", "none (error) or top_k: take the top n by correctness, then certainty",
                           ("none", "top_k"))
    save_optimizer: bool = option(False, "keep Adam moments for GRAIT (OUT/model/optimizer.safetensors)")
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(warmup_ratio=0.0),
                                           metadata={"help": "training settings", "choices": None})

    def __post_init__(self) -> None:
        check_choices(self)
        if self.n < 1 or self.min_items < 0:
            raise ConfigError("n must be >= 1 and min_items >= 0")


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not math.isnan(x) else -math.inf


def _kind(row: dict[str, Any]) -> str:
    return row.get("kind") or ("mcqa" if row.get("choices") else "oeqa")


def qualifies(row: dict[str, Any], cfg: RehearseConfig) -> bool:
    """The CRaFT mastery rule for one table row."""
    if _kind(row) == "mcqa":
        return _num(row.get("correctness_raw")) > cfg.mcqa_min_correctness_raw
    return (_num(row.get("correctness")) >= cfg.oeqa_min_correctness
            and _num(row.get("certainty")) >= cfg.oeqa_min_certainty)


def select(rows: list[dict[str, Any]], cfg: RehearseConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Pick the rehearsal rows; returns ``(rows, info)`` where info says how and how many.

    Raises:
        RaitError: fewer than ``min_items`` qualify and ``fallback`` is ``none``.
    """
    good = [r for r in rows if qualifies(r, cfg)]
    info: dict[str, Any] = {"table_rows": len(rows), "qualified": len(good), "fallback_used": False,
                            "qualified_by_kind": {k: sum(_kind(r) == k for r in good) for k in ("oeqa", "mcqa")}}
    if len(good) < cfg.min_items:
        if cfg.fallback != "top_k":
            raise RaitError(
                f"only {len(good)} of {len(rows)} items qualify for rehearsal (need min_items={cfg.min_items}); "
                "lower the thresholds (oeqa_min_correctness, oeqa_min_certainty, mcqa_min_correctness_raw), "
                "lower min_items, or set fallback=top_k")
        def key(r: dict[str, Any]) -> tuple[float, float]:
            return (_num(r.get("correctness_raw") if _kind(r) == "mcqa" else r.get("correctness")),
                    _num(r.get("certainty")))

        picked = sorted(rows, key=key, reverse=True)[: cfg.n]
        info.update(fallback_used=True, selected=len(picked),
                    note=f"fewer than min_items={cfg.min_items} qualified; took the top {len(picked)} by "
                         "correctness then certainty")
        return picked, info
    picked = random.Random(cfg.seed).sample(good, min(cfg.n, len(good)))
    info["selected"] = len(picked)
    return picked, info


def training_row(row: dict[str, Any]) -> dict[str, Any]:
    """A TRL conversational row: BASIC prompt, empty system message, gold answer as target."""
    item = QAItem.from_dict(row)
    return {"messages": build_messages(item, "basic", system_prompt="", answer=item.target),
            "id": item.id, "label": "van", "weight": 1.0}


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a knowledge table (:func:`rait.core.artifacts.read_table`), each with its gold answer."""
    from rait.core.artifacts import read_table as read

    kt = read(path, required=("question",))
    for i, row in zip(kt.lines, kt.rows):
        if _kind(row) == "oeqa" and not row.get("answers"):
            raise DataError(path, i, "OEQA row without 'answers'")
        if _kind(row) == "mcqa" and not row.get("gold"):
            raise DataError(path, i, "MCQA row without 'gold'")
    return kt.rows


def rehearse(cfg: RehearseConfig, model: Any = None, tokenizer: Any = None) -> Path:
    """Select, write ``OUT/rehearsal.jsonl``, train into ``OUT/model``; returns the rehearsed model directory."""
    if not cfg.table or not cfg.out:
        raise ConfigError("rehearse: 'table' and 'out' are required")
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    picked, info = select(read_table(cfg.table), cfg)
    data = out / "rehearsal.jsonl"
    atomic_write_text(data, "".join(json.dumps(training_row(r), ensure_ascii=False) + "\n" for r in picked))
    tcfg = dataclasses.replace(cfg.train, data=str(data), model=cfg.model, out=str(out / "model"),
                               save_optimizer=cfg.save_optimizer or cfg.train.save_optimizer)
    if tcfg.save_optimizer and tcfg.method == "lora" and tcfg.save == "merged":
        tcfg = dataclasses.replace(tcfg, save="both")  # moments are keyed by adapter parameter names
    final = train(tcfg, model=model, tokenizer=tokenizer)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        write_manifest(out, "rehearse", to_dict(cfg), {"table": file_info(cfg.table)},
                       {"wall": round(time.time() - t0, 2)},
                       {"selection": info, "rehearsal": file_info(data), "model_dir": str(final), "seed": cfg.seed})
    return final


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rait rehearse``: one flag per RehearseConfig field (``--train.lr`` etc. for the training section)."""
    p = subparsers.add_parser(
        "rehearse", help="CRaFT rehearsal: fine-tune on mastered items, save M_r",
        description="Select mastered items from a knowledge table and fine-tune on their gold answers.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, RehearseConfig)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    import os

    final = rehearse(config_from_args(RehearseConfig, args))
    if int(os.environ.get("RANK", "0")) == 0:
        print(final)
    return 0
