"""``rait build``: turn a knowledge table into a refusal-aware training set with a registered method.

Reads ``table.jsonl`` (and, for CRaFT, the rehearsed model's table, joined by id: adds
``correctness_rehearsed``, ``certainty_rehearsed`` and ``flow`` = Δcorrectness), checks that the rows carry the
columns the method needs, calls the method's pure ``build(table, cfg)`` and writes to ``--out``:

  * ``train.jsonl``: TRL conversational rows (sorted keys, one per line; docs/artifacts.md);
  * ``summary.json``: counts per label, thresholds, pool sizes, quotas, shortfalls, drops per reason, seed;
  * ``decisions.jsonl``: one record per table id (values used, pool, rank/quota, label or drop reason);
  * ``manifest.json``: method, resolved config, input paths + sha256, versions, git SHA, timings.

Same inputs and config give byte-identical files (the manifest differs only in its timings). Command line::

    rait build --list                                   # methods and descriptions
    rait build --list --method craft                    # that method's config keys
    rait build --method craft --table probe/table.jsonl --rehearsed-table probe_r/table.jsonl \\
        --out runs/x/build --set n_total=2000 seed=0
    rait build --method craft --table ... --rehearsed-table ... --explain q123   # why q123 got its label

Example:
    >>> import json, tempfile, pathlib
    >>> from rait.stages.build import run_build
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"], "kind": "oeqa",
    ...          "correctness": i / 4} for i in range(5)]
    >>> _ = (d / "table.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> run_build("cor_rait", d / "table.jsonl", d / "out", {"n_van": 1, "n_idk": 1})["counts"]
    {'van': 1, 'idk': 1}
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Mapping

from rait.core.artifacts import atomic_write_text, file_info, read_table, write_manifest
from rait.core.config import (
    ConfigError,
    add_config_arguments,
    apply_overrides,
    from_dict,
    help_lines,
    read_yaml,
    to_dict,
)
from rait.errors import DataError, RaitError
from rait.methods import Method, available, get, load_plugin
from rait.methods._common import CommonConfig

REHEARSED_COLUMNS = ("correctness_rehearsed", "certainty_rehearsed", "flow")


# ------------------------------------------------------------------------------------------------------ input
def merge_rehearsed(
    table: list[dict[str, Any]], rehearsed: list[dict[str, Any]], table_path: Any, rehearsed_path: Any
) -> list[dict[str, Any]]:
    """Copy of ``table`` with the rehearsed model's ``correctness``/``certainty`` joined by id, plus ``flow``."""
    by_id = {r["id"]: r for r in rehearsed}
    ids = [r["id"] for r in table]
    missing = [i for i in ids if i not in by_id]
    extra = sorted(set(by_id) - set(ids), key=str)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} id(s) of {table_path} are missing (e.g. {missing[0]!r})")
        if extra:
            parts.append(f"{len(extra)} id(s) are not in {table_path} (e.g. {extra[0]!r})")
        raise DataError(rehearsed_path, None, "rehearsed table ids do not match the knowledge table: "
                        + "; ".join(parts))
    out = []
    for row in table:
        reh = by_id[row["id"]]
        merged = dict(row)
        merged["correctness_rehearsed"] = reh.get("correctness")
        merged["certainty_rehearsed"] = reh.get("certainty")
        if reh.get("correctness") is not None and row.get("correctness") is not None:
            merged["flow"] = float(reh["correctness"]) - float(row["correctness"])
        else:
            merged["flow"] = None
        out.append(merged)
    return out


def check_columns(method: Method, table: list[dict[str, Any]], lines: list[int], path: Any, rehearsed: bool) -> None:
    """DataError naming the method, the column and the file/line of the first row without it."""
    for col in method.columns:
        for row, line in zip(table, lines):
            if row.get(col) is None:
                if col in REHEARSED_COLUMNS and not rehearsed:
                    raise DataError(path, None, f"method {method.name!r} needs column {col!r}, which comes from "
                                                "the rehearsed model's table: pass --rehearsed-table PATH")
                raise DataError(path, line, f"method {method.name!r} needs column {col!r}, missing for id "
                                            f"{row['id']!r}")


def load_config(
    method: Method, config_path: str | Path | None = None, overrides: Any = None
) -> Any:
    """The method's config: YAML file (its fields, or nested under the method name), then overrides.

    Args:
        method: the registered method.
        config_path: optional YAML file.
        overrides: a mapping of field -> value, ``key=value`` strings, or a ready config instance.
    """
    if isinstance(overrides, method.config_cls):
        return overrides
    data: dict[str, Any] = {}
    if config_path is not None:
        data = read_yaml(config_path)
        if set(data) == {method.name} and isinstance(data[method.name], dict):
            data = data[method.name]
    where = str(config_path) if config_path is not None else method.name
    if isinstance(overrides, Mapping):
        data = {**data, **overrides}
        overrides = ()
    cfg = from_dict(method.config_cls, data, where=where)
    return apply_overrides(cfg, list(overrides or ()))


# ---------------------------------------------------------------------------------------------------- running
def build_in_memory(
    method: str, table_path: str | Path, cfg_overrides: Any = None,
    rehearsed_path: str | Path | None = None, config_path: str | Path | None = None,
) -> dict[str, Any]:
    """Read, merge, check and build without writing: ``{"method", "cfg", "rows", "summary", "decisions", "inputs"}``."""
    m = get(method)
    if not m.trains:
        raise ConfigError(f"method {method!r} is training-free: it has no training set to build")
    cfg = load_config(m, config_path, cfg_overrides)
    kt = read_table(table_path)
    table, lines = kt.rows, kt.lines
    inputs = {"table": file_info(table_path)}
    if rehearsed_path is not None:
        table = merge_rehearsed(table, read_table(rehearsed_path).rows, table_path, rehearsed_path)
        inputs["rehearsed_table"] = file_info(rehearsed_path)
    check_columns(m, table, lines, table_path, rehearsed_path is not None)
    try:
        rows, summary = m.build(table, cfg)
    except DataError as e:
        if e.path != "table":  # errors about other files keep their own path
            raise
        raise DataError(table_path, e.line, e.message) from None  # a method's own check on the table rows
    decisions = summary.decisions
    summary = summary.to_dict()
    return {"method": m, "cfg": cfg, "rows": rows, "summary": summary, "decisions": decisions, "inputs": inputs}


def run_build(
    method: str, table_path: str | Path, out_dir: str | Path,
    cfg_overrides: Any = None, rehearsed_path: str | Path | None = None, config_path: str | Path | None = None,
) -> dict[str, Any]:
    """Build a training set and write ``train.jsonl``, ``summary.json``, ``decisions.jsonl``, ``manifest.json``.

    Args:
        method: registered method name (``rait build --list``).
        table_path: the knowledge table (JSONL).
        out_dir: output directory (created).
        cfg_overrides: config fields as a mapping or ``key=value`` strings (applied after ``config_path``), or the
            method's config instance itself.
        rehearsed_path: the rehearsed model's knowledge table (CRaFT).
        config_path: optional YAML with the method's config.

    Returns:
        The summary (as written to ``summary.json``).
    """
    t0 = time.time()
    res = build_in_memory(method, table_path, cfg_overrides, rehearsed_path, config_path)
    t1 = time.time()
    out = Path(out_dir)
    from rait.core.safety import check_overwrite  # never replace another method's (or the user's) files

    name = res["method"].name
    check_overwrite(out, ["train.jsonl", "decisions.jsonl", "summary.json"],
                    lambda m: m.get("stage") == "build" and (m.get("outputs") or {}).get("method") == name,
                    f"training set of method {name!r}")
    atomic_write_text(out / "train.jsonl", "".join(_line(r) for r in res["rows"]))
    atomic_write_text(out / "decisions.jsonl", "".join(_line(d) for d in res["decisions"].values()))
    atomic_write_text(out / "summary.json", json.dumps(res["summary"], indent=2, sort_keys=True,
                                                       ensure_ascii=False) + "\n")
    write_manifest(out, "build", to_dict(res["cfg"]), res["inputs"], {"build": round(t1 - t0, 3)},
                   {"method": res["method"].name, "seed": res["summary"].get("seed"), "n_rows": len(res["rows"]),
                    "files": ["train.jsonl", "summary.json", "decisions.jsonl"]})
    return res["summary"]


def explain(decisions: Mapping[str, Any], summary: Mapping[str, Any], item_id: str) -> str:
    """Human-readable account of why ``item_id`` got its label (or was dropped)."""
    if not decisions:
        raise RaitError(f"method {summary.get('method')!r} records no per-item decisions")
    by_str = {str(k): v for k, v in decisions.items()}
    if str(item_id) not in by_str:
        raise RaitError(f"id {item_id!r} is not in the knowledge table (e.g. {next(iter(by_str), None)!r})")
    rec = dict(by_str[str(item_id)])
    head = f"{item_id}: {rec.pop('reason')}"
    lines = [head, f"  method {summary.get('method')} ({summary.get('kind')}, as_released={summary.get('as_released')}"
                   f", seed={summary.get('seed')})"]
    for k, v in (summary.get("thresholds") or {}).items():
        lines.append(f"  threshold {k}: {v}")
    for k in ("pools", "quotas"):
        if summary.get(k):
            lines.append(f"  {k}: " + ", ".join(f"{a}={b}" for a, b in summary[k].items()))
    rec.pop("id", None)
    lines.append("  item: " + ", ".join(f"{k}={_fmt(v)}" for k, v in rec.items() if v is not None))
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------- cli
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "build", help="build a refusal-aware training set with a registered method",
        description="Turn a knowledge table into a refusal-aware training set with a registered method.")
    p.add_argument("--method", help="registered method name (see --list)")
    p.add_argument("--table", help="knowledge table (table.jsonl from rait probe)")
    p.add_argument("--rehearsed-table", help="knowledge table of the rehearsed model M_r (CRaFT)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--list", action="store_true", help="list methods (with --method: its config keys) and exit")
    p.add_argument("--explain", metavar="ID", help="print why one item got its label (writes nothing without --out)")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                   help="import a method file (or module) first, so that its method can be named (repeatable)")
    add_config_arguments(p, CommonConfig)  # the fields every method shares; method-specific ones: --set key=value
    p.set_defaults(func=_main)
    return p


def _main(args: argparse.Namespace) -> int:
    for plugin in args.plugin:
        load_plugin(plugin)
    if args.list:
        if args.method:
            m = get(args.method)
            print(f"{m.name} ({m.display}; {m.paper or 'no paper'}): {m.description}")
            print(f"  needs: {', '.join(m.needs) or 'nothing'}" + ("" if m.trains else "  (training-free)"))
            for line in help_lines(m.config_cls):
                print(f"  {line}")
            return 0
        methods = available()
        width = max(len(n) for n in methods)
        for name, m in methods.items():
            print(f"{name:<{width}}  {m.description}")
        return 0
    for flag in ("method", "table"):
        if not getattr(args, flag):
            raise ConfigError(f"--{flag} is required (see rait build --help)")
    if not args.out and not args.explain:
        raise ConfigError("--out is required unless --explain or --list is given")
    flags = {k[5:]: v for k, v in vars(args).items() if k.startswith("cfg__")}
    cfg = apply_overrides(load_config(get(args.method), args.config, flags), args.set)
    if args.out:
        summary = run_build(args.method, args.table, args.out, cfg, args.rehearsed_table)
        if args.explain:
            decisions = {}
            with open(Path(args.out) / "decisions.jsonl", encoding="utf-8") as fh:
                for line in fh:
                    d = json.loads(line)
                    decisions[d["id"]] = d
            print(explain(decisions, summary, args.explain))
        else:
            c = summary.get("counts", {})
            print(f"wrote {summary.get('n_rows')} rows ({', '.join(f'{k}={v}' for k, v in c.items())}) to {args.out}")
        return 0
    res = build_in_memory(args.method, args.table, cfg, args.rehearsed_table)
    print(explain(res["decisions"], res["summary"], args.explain))
    return 0


# ---------------------------------------------------------------------------------------------------- helpers
def _fmt(v: Any) -> str:
    return str(round(v, 6)) if isinstance(v, float) else str(v)


def _line(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n"
