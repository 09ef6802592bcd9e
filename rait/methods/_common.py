"""Helpers shared by the RAIT data-construction methods: config fields, sizing, pools, sampling, rows, summary.

Every method config inherits :class:`CommonConfig` (a plain dataclass of shared fields, no behaviour). A method
``build`` typically does::

    kind = task_kind(table)                       # "oeqa" / "mcqa" from the rows' ``kind``
    seed = resolve_seed(cfg, kind)                # paper seeds: 0 (OEQA), 42 (MCQA)
    plan = plan_sizes(cfg, kind, len(table))      # scaled n_van / n_idk (rule below)
    van, idk, thr = correctness_pools(table, kind, cfg, dec)
    ...select...
    return finish(rows, summary, seed)            # seeded final shuffle + counts

**Sizing rule** (documented in every method): the papers build 10,000 rows (80 % van / 20 % idk) from the
87,622-question TriviaQA unfiltered-web train split (OEQA), and 4,000 van + 1,000 idk from the 14,042 MMLU test
questions (MCQA). ``n_total`` fixes the size; else ``fraction`` takes that share of the table; else the paper's
total is scaled by ``len(table) / paper_pool`` (capped at the paper's total), i.e. the same share of the pool
as in the paper. ``idk_share`` (0.2) splits it: ``n_idk = round(n_total * idk_share)``, ``n_van = n_total -
n_idk`` (equal to the released ``total_n // 10 * 2`` at the paper sizes). ``n_van`` / ``n_idk`` override.
A pool smaller than its quota is taken whole and the shortfall recorded (``on_shortfall=take_all``, default),
resampled with replacement (``resample``; the released MCQA code), or an error (``error``; the released OEQA
``assert``).

Every method records one decision per table id (``summary["decisions"]``): the values it looked at, the pool,
rank/quota, and the final label or drop reason. ``rait build`` writes them to ``decisions.jsonl``.

Example:
    >>> from rait.methods._common import CommonConfig, plan_sizes
    >>> plan_sizes(CommonConfig(), "oeqa", 87622)["n_van"], plan_sizes(CommonConfig(), "mcqa", 14042)["n_idk"]
    (8000, 1000)
    >>> plan_sizes(CommonConfig(n_total=10), "oeqa", 30)["n_idk"]
    2
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from rait.core.config import ConfigError, check_choices, option
from rait.core.prompts import STYLES, build_messages, refusal_for
from rait.data.schema import QAItem
from rait.errors import DataError
from rait.methods import Summary

#: Paper sizes per task kind: (pool the papers drew from, total rows, default seed).
PAPER = {
    "oeqa": {"pool": 87622, "total": 10000, "seed": 0},  # TriviaQA unfiltered-web train; triviaqa_RAI.py
    "mcqa": {"pool": 14042, "total": 5000, "seed": 42},  # MMLU test; mmlu_RAI.py (4,000 van + 1,000 idk)
}

SHORTFALL = ("take_all", "resample", "error")


@dataclass
class CommonConfig:
    """Fields shared by every method config (inherit and add method-specific ones)."""

    n_total: int | None = option(None, "total rows (van + idk); default: the paper's total scaled to the table size")
    fraction: float | None = option(None, "alternative to n_total: this share of the table (0 < f <= 1)")
    idk_share: float = option(0.2, "share of n_total given to the idk quota (papers: 20 %)")
    n_van: int | None = option(None, "explicit van quota (overrides the split of n_total)")
    n_idk: int | None = option(None, "explicit idk quota (overrides the split of n_total)")
    seed: int | None = option(None, "RNG seed; default: 0 for OEQA, 42 for MCQA (the released scripts' seeds)")
    on_shortfall: str | None = option(
        None, "pool smaller than its quota: take_all (default) | resample (with replacement) | error; "
        "None = take_all, or the released behaviour when as_released", choices=(None,) + SHORTFALL)
    prompt_style: str = option("refuse", "prompt style of the training inputs (papers: REFUSE)", choices=STYLES)
    system_prompt: str | None = option("", "system message of every row ('' = empty turn; null = none)")
    refusal: str | None = option(None, "refusal target; default: \"I don't know\" (OEQA) / \"I don't know.\" (MCQA)")
    as_released: bool = option(False, "reproduce the released reference code (bugs included) instead of the paper")
    idk_weight: float = option(1.0, "loss weight of every refusal (idk) row, multiplied into a method's own weights "
                               "(1.0 = the papers; < 1 counters over-refusal)", added=True)

    def _check_common(self) -> None:
        check_choices(self)
        if self.n_total is not None and self.fraction is not None:
            raise ConfigError("give n_total or fraction, not both")
        if self.n_total is not None and self.n_total < 0:
            raise ConfigError(f"n_total={self.n_total}: expected >= 0")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise ConfigError(f"fraction={self.fraction}: expected 0 < fraction <= 1")
        if not 0 <= self.idk_share <= 1:
            raise ConfigError(f"idk_share={self.idk_share}: expected 0 <= idk_share <= 1")
        if not self.idk_weight > 0:
            raise ConfigError(f"idk_weight={self.idk_weight}: expected > 0")
        for name in ("n_van", "n_idk"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: expected >= 0")

    def __post_init__(self) -> None:
        self._check_common()


# ----------------------------------------------------------------------------------------------------- inputs
def row_kind(row: dict[str, Any]) -> str:
    """The task kind of a table row: its ``kind`` field, else inferred from ``choices``."""
    return row.get("kind") or QAItem.from_dict(row).kind


def task_kind(table: Sequence[dict[str, Any]]) -> str:
    """The single task kind of a table; a DataError if it mixes OEQA and MCQA rows or is empty."""
    if not table:
        raise DataError("table", None, "the knowledge table is empty")
    kinds = {row_kind(r) for r in table}
    if len(kinds) != 1 or not kinds <= {"oeqa", "mcqa"}:
        raise DataError("table", None, f"expected one task kind (oeqa or mcqa), found {sorted(map(str, kinds))}")
    return kinds.pop()


def require(table: Sequence[dict[str, Any]], columns: Iterable[str], method: str, source: str = "table") -> None:
    """Raise a DataError naming the method, the column and the first row (1-based line) lacking it."""
    for col in columns:
        for i, row in enumerate(table):
            if row.get(col) is None:
                hint = " (pass --rehearsed-table)" if col.endswith("_rehearsed") or col == "flow" else ""
                raise DataError(source, i + 1, f"method {method!r} needs column {col!r}, missing for id "
                                               f"{row.get('id')!r}{hint}")


def resolve_seed(cfg: CommonConfig, kind: str) -> int:
    return PAPER[kind]["seed"] if cfg.seed is None else cfg.seed


def rng_for(seed: int, purpose: str) -> random.Random:
    """An independent, platform-stable RNG stream per purpose (string seeds hash with SHA-512)."""
    return random.Random(f"rait/{seed}/{purpose}")


def shortfall_mode(cfg: CommonConfig, released_default: str = "take_all") -> str:
    if cfg.on_shortfall is not None:
        return cfg.on_shortfall
    return released_default if cfg.as_released else "take_all"


# ----------------------------------------------------------------------------------------------------- sizing
def plan_sizes(cfg: CommonConfig, kind: str, n_table: int, split: bool = True) -> dict[str, Any]:
    """Quotas for a table of ``n_table`` rows (module docstring: sizing rule).

    Args:
        cfg: the method config.
        kind: ``oeqa`` / ``mcqa``.
        n_table: rows in the knowledge table.
        split: False for single-pool methods (Van-Tuning): ``n_van = n_total``, ``n_idk = 0``.
    """
    paper = PAPER[kind]
    if cfg.n_total is not None:
        n_total, rule = cfg.n_total, "n_total"
    elif cfg.fraction is not None:
        n_total, rule = round(cfg.fraction * n_table), f"fraction {cfg.fraction} of the table"
    else:
        scale = min(1.0, n_table / paper["pool"])
        n_total = round(paper["total"] * scale)
        rule = f"paper total {paper['total']} x min(1, {n_table}/{paper['pool']})"
    if split:
        n_idk = round(n_total * cfg.idk_share) if cfg.n_idk is None else cfg.n_idk
        n_van = (n_total - round(n_total * cfg.idk_share)) if cfg.n_van is None else cfg.n_van
    else:
        n_van, n_idk = (n_total if cfg.n_van is None else cfg.n_van), 0
    return {"rule": rule, "n_table": n_table, "n_total": n_total, "n_van": n_van, "n_idk": n_idk}


# ------------------------------------------------------------------------------------------------------ pools
def check_thresholds(cfg: Any) -> None:
    """Config-time check (``__post_init__``): ``idk_max < van_min`` when both are given."""
    if cfg.van_min is not None and cfg.idk_max is not None and cfg.idk_max >= cfg.van_min:
        raise ConfigError(f"idk_max={cfg.idk_max} must be below van_min={cfg.van_min}")


def thresholds(cfg: Any, kind: str) -> tuple[float, float | None]:
    """(van_min, idk_max): OEQA 0.51 / 0.49 (<= 6/10 and >= 4/10); MCQA 0.5 / None (None: cor < van_min)."""
    van_min = cfg.van_min if cfg.van_min is not None else (0.51 if kind == "oeqa" else 0.5)
    idk_max = cfg.idk_max if cfg.idk_max is not None else (0.49 if kind == "oeqa" else None)
    if idk_max is not None and idk_max >= van_min:
        raise ConfigError(f"idk_max={idk_max} must be below van_min={van_min}")
    return van_min, idk_max


def correctness_pools(
    table: Sequence[dict[str, Any]], kind: str, cfg: Any, dec: "Decisions"
) -> tuple[list[int], list[int], dict[str, str]]:
    """Split table indices into the van pool (cor >= van_min) and idk pool (cor <= idk_max, or < van_min).

    Rows in between (OEQA: exactly 5/10) are dropped with reason ``middle_band``.
    """
    van_min, idk_max = thresholds(cfg, kind)
    van, idk = [], []
    for i, row in enumerate(table):
        c = float(row["correctness"])
        if c >= van_min:
            van.append(i)
            dec.set(i, pool="van")
        elif (c <= idk_max) if idk_max is not None else (c < van_min):
            idk.append(i)
            dec.set(i, pool="idk")
        else:
            dec.drop(i, "middle_band", f"{idk_max} < correctness {c} < {van_min}")
    desc = {"van": f"correctness >= {van_min}",
            "idk": f"correctness <= {idk_max}" if idk_max is not None else f"correctness < {van_min}"}
    return van, idk, desc


# -------------------------------------------------------------------------------------------------- selection
def draw(rng: random.Random, pool: Sequence[int], k: int, mode: str, what: str) -> tuple[list[int], dict[str, Any]]:
    """Draw ``k`` of ``pool`` at random; ``mode`` = take_all | resample | error | always_replace.

    ``always_replace`` samples with replacement even when the pool is large enough (the released MMLU
    baselines). Returns (indices sorted by table order, info).
    """
    info = {"pool": len(pool), "quota": k, "shortfall": max(0, k - len(pool)), "with_replacement": False}
    if k == 0:
        return [], info
    if not pool:
        if mode == "error":
            raise DataError("table", None, f"{what} pool is empty but its quota is {k}")
        return [], info
    if mode == "always_replace" or (mode == "resample" and len(pool) < k):
        info["with_replacement"], info["shortfall"] = True, 0
        return sorted(rng.choices(list(pool), k=k)), info
    if len(pool) < k:
        if mode == "error":
            raise DataError("table", None, f"{what} pool has {len(pool)} rows, fewer than its quota {k} "
                                           "(on_shortfall=error, the released OEQA assert)")
        return sorted(pool), info
    return sorted(rng.sample(list(pool), k)), info


def draw_items(table: list[dict[str, Any]], cfg: CommonConfig, seed: int) -> tuple[list[int], dict[str, Any]]:
    """The pool items used: all, or ``n_total`` / ``fraction`` of them drawn at random."""
    n = len(table)
    if cfg.n_total is None and cfg.fraction is None:
        return list(range(n)), {"rule": "whole table", "n_table": n, "n_items": n}
    k = cfg.n_total if cfg.n_total is not None else round(cfg.fraction * n)
    picks, _ = draw(rng_for(seed, "items"), range(n), min(k, n), "take_all", "items")
    return picks, {"rule": "n_total" if cfg.n_total is not None else f"fraction {cfg.fraction}", "n_table": n,
                   "n_items": len(picks)}


def rank(table: Sequence[dict[str, Any]], pool: Sequence[int], key: str, highest: bool) -> list[int]:
    """Pool indices ordered by ``key`` (highest first if ``highest``), ties by table order (stable)."""
    sign = -1.0 if highest else 1.0
    return sorted(pool, key=lambda i: (sign * float(table[i][key]), i))


def take_ranked(
    table: Sequence[dict[str, Any]], ordered: Sequence[int], k: int, key: str, keep_all_ties: bool
) -> list[int]:
    """The first ``k`` of ``ordered``; with ``keep_all_ties`` also every later row tied with the k-th value
    (pandas ``nsmallest/nlargest(keep='all')``, so the result may exceed ``k``)."""
    head = list(ordered[:k])
    if keep_all_ties and head and len(ordered) > k:
        last = float(table[head[-1]][key])
        head += [i for i in ordered[k:] if float(table[i][key]) == last]
    return head


# ----------------------------------------------------------------------------------------------- decisions
class Decisions:
    """Per-id decision records (``summary["decisions"]``) and drop counts per reason."""

    def __init__(self, table: Sequence[dict[str, Any]], fields: Sequence[str] = ("correctness",)):
        self.table = table
        self.records: list[dict[str, Any]] = []
        for i, row in enumerate(table):
            rec: dict[str, Any] = {"id": row["id"], "index": i, "label": None, "count": 0, "reason": None}
            for f in fields:
                if f in row:
                    rec[f] = row[f]
            self.records.append(rec)
        self.dropped: dict[str, int] = {}

    def set(self, i: int, **kv: Any) -> None:
        self.records[i].update(kv)

    def drop(self, i: int, reason: str, detail: str = "") -> None:
        rec = self.records[i]
        if rec["reason"] is None:  # first reason wins
            rec["reason"] = f"dropped: {reason}" + (f" ({detail})" if detail else "")
            self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def pick(self, i: int, label: str, detail: str) -> None:
        rec = self.records[i]
        rec["label"], rec["count"], rec["reason"] = label, rec["count"] + 1, f"selected as {label}: {detail}"

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.records}


# ------------------------------------------------------------------------------------------------------- rows
def make_row(row: dict[str, Any], cfg: CommonConfig, label: str, target: str | None = None) -> dict[str, Any]:
    """A TRL conversational training row. ``target`` defaults to the gold (van) or the refusal (idk); an idk row
    weighs ``cfg.idk_weight`` (1.0 unless set)."""
    item = QAItem.from_dict(row)
    if target is None:
        target = item.target if label == "van" else refusal_target(item, cfg)
    msgs = build_messages(item, cfg.prompt_style, system_prompt=cfg.system_prompt, answer=target)
    return {"messages": msgs, "id": item.id, "label": label, "weight": cfg.idk_weight if label == "idk" else 1.0}


def refusal_target(item: QAItem, cfg: CommonConfig) -> str:
    return cfg.refusal if cfg.refusal is not None else refusal_for(item)


def emit(
    table: Sequence[dict[str, Any]], cfg: CommonConfig, dec: Decisions, picks: Sequence[int], label: str,
    detail: Callable[[int], str], target: Callable[[int], str | None] = lambda i: None,
) -> list[dict[str, Any]]:
    """Rows for ``picks`` (duplicates allowed) with their decisions recorded."""
    out = []
    for i in picks:
        dec.pick(i, label, detail(i))
        out.append(make_row(table[i], cfg, label, target(i)))
    return out


def finish(
    table: Sequence[dict[str, Any]], rows: list[dict[str, Any]], summary: dict[str, Any], dec: Decisions,
    seed: int, unpicked_reason: str = "not_sampled", shuffle: random.Random | None = None,
) -> tuple[list[dict[str, Any]], Summary]:
    """Record leftover rows as dropped, shuffle ``rows`` (``shuffle``, default: the seed's ``shuffle`` stream), and
    return them with the typed :class:`~rait.methods.Summary` (``summary`` supplies its fields and details)."""
    for i, rec in enumerate(dec.records):
        if rec["reason"] is None:
            dec.drop(i, unpicked_reason)
    (shuffle or rng_for(seed, "shuffle")).shuffle(rows)
    counts: dict[str, int] = {"van": 0, "idk": 0}
    for r in rows:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    summary = dict(summary)
    summary.update(
        n_table=len(table), n_rows=len(rows), n_unique_ids=len({r["id"] for r in rows}), counts=counts,
        dropped=dict(sorted(dec.dropped.items())), seed=seed, decisions=dec.by_id(),
    )
    return rows, Summary.from_dict(summary)
