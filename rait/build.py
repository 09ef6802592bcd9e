"""``rait build``: turn a knowledge table into a refusal-aware training set with a registered method.

Reads ``table.jsonl`` (and, for CRaFT, the rehearsed model's table, joined by id: adds
``correctness_rehearsed``, ``certainty_rehearsed`` and ``flow`` = Δcorrectness), checks that the rows carry the
columns the method needs, calls the method's pure ``build(table, cfg)`` and writes to ``--out``:

  * ``train.jsonl``: TRL conversational rows (sorted keys, one per line; docs/artifacts.md);
  * ``summary.json``: counts per label, thresholds, pool sizes, quotas, shortfalls, drops per reason, seed;
  * ``decisions.jsonl``: one record per table id (values used, pool, rank/quota, label or drop reason);
  * ``manifest.json``: method, resolved config, input paths + sha256, rait version.

Same inputs and config give byte-identical files. Command line::

    rait build --list                                   # methods and descriptions
    rait build --list --method craft                    # that method's config keys
    rait build --method craft --table probe/table.jsonl --rehearsed-table probe_r/table.jsonl \\
        --out runs/x/build --set n_total=2000 seed=0
    rait build --method craft --table ... --rehearsed-table ... --explain q123   # why q123 got its label

Example:
    >>> import json, tempfile, pathlib
    >>> from rait.build import run_build
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"], "kind": "oeqa",
    ...          "correctness": i / 4} for i in range(5)]
    >>> _ = (d / "table.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> run_build("cor_rait", d / "table.jsonl", d / "out", {"n_van": 1, "n_idk": 1})["counts"]
    {'van': 1, 'idk': 1}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence


import rait
from rait.config import ConfigError, apply_overrides, from_dict, help_lines, read_yaml, to_dict
from rait.errors import DataError, RaitError
from rait.methods import Method, available, get

REHEARSED_COLUMNS = ("correctness_rehearsed", "certainty_rehearsed", "flow")


# ------------------------------------------------------------------------------------------------------ input
def read_table(path: str | Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of a JSONL knowledge table and their 1-based line numbers; DataError ``file:line`` on bad lines."""
    from rait.artifacts import iter_jsonl

    path = Path(path)
    rows, lines, seen = [], [], {}
    for n, row in iter_jsonl(path, "knowledge table"):
        if row.get("id") is None:
            raise DataError(path, n, "missing field 'id'")
        if row["id"] in seen:
            raise DataError(path, n, f"duplicate id {row['id']!r} (first on line {seen[row['id']]})")
        from rait.data.schema import check_table_row

        if check_table_row(row):
            raise DataError(path, n, f"{check_table_row(row)}; is this a knowledge table written by rait probe?")
        seen[row["id"]] = n
        rows.append(row)
        lines.append(n)
    if not rows:
        raise DataError(path, None, "the knowledge table is empty")
    return rows, lines


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
    for col in method.needs:
        for row, line in zip(table, lines):
            if row.get(col) is None:
                if col in REHEARSED_COLUMNS and not rehearsed:
                    raise DataError(path, None, f"method {method.name!r} needs column {col!r}, which comes from "
                                                "the rehearsed model's table: pass --rehearsed-table PATH")
                raise DataError(path, line, f"method {method.name!r} needs column {col!r}, missing for id "
                                            f"{row['id']!r}")


def load_config(
    method: Method, config_path: str | Path | None = None, overrides: Mapping[str, Any] | Sequence[str] | None = None
) -> Any:
    """The method's config: YAML file (its fields, or nested under the method name), then overrides.

    Args:
        method: the registered method.
        config_path: optional YAML file.
        overrides: a mapping of field -> value, or ``key=value`` strings.
    """
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
    method: str, table_path: str | Path, cfg_overrides: Mapping[str, Any] | Sequence[str] | None = None,
    rehearsed_path: str | Path | None = None, config_path: str | Path | None = None,
) -> dict[str, Any]:
    """Read, merge, check and build without writing: ``{"method", "cfg", "rows", "summary", "decisions", "inputs"}``."""
    try:
        m = get(method)
    except KeyError as e:
        raise ConfigError(e.args[0]) from None
    cfg = load_config(m, config_path, cfg_overrides)
    table, lines = read_table(table_path)
    inputs = {"table": _file_info(table_path)}
    if rehearsed_path is not None:
        reh, _ = read_table(rehearsed_path)
        table = merge_rehearsed(table, reh, table_path, rehearsed_path)
        inputs["rehearsed_table"] = _file_info(rehearsed_path)
    check_columns(m, table, lines, table_path, rehearsed_path is not None)
    try:
        rows, summary = m.build(table, cfg)
    except DataError as e:
        if e.path != "table":  # errors about other files keep their own path
            raise
        raise DataError(table_path, e.line, e.message) from None  # a method's own check on the table rows
    summary = dict(summary)
    decisions = summary.pop("decisions", {})
    return {"method": m, "cfg": cfg, "rows": rows, "summary": summary, "decisions": decisions, "inputs": inputs}


def run_build(
    method: str, table_path: str | Path, out_dir: str | Path,
    cfg_overrides: Mapping[str, Any] | Sequence[str] | None = None, rehearsed_path: str | Path | None = None,
    config_path: str | Path | None = None,
) -> dict[str, Any]:
    """Build a training set and write ``train.jsonl``, ``summary.json``, ``decisions.jsonl``, ``manifest.json``.

    Args:
        method: registered method name (``rait build --list``).
        table_path: the knowledge table (JSONL).
        out_dir: output directory (created).
        cfg_overrides: config fields as a mapping or ``key=value`` strings (applied after ``config_path``).
        rehearsed_path: the rehearsed model's knowledge table (CRaFT).
        config_path: optional YAML with the method's config.

    Returns:
        The summary (as written to ``summary.json``).
    """
    res = build_in_memory(method, table_path, cfg_overrides, rehearsed_path, config_path)
    out = Path(out_dir)
    from rait.safety import check_overwrite  # never replace another method's (or the user's) files

    check_overwrite(out, ["train.jsonl", "decisions.jsonl", "summary.json"], lambda m: m.get("stage") == "build"
                    and m.get("method") == res["method"].name, f"training set of method {res['method'].name!r}")
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "train.jsonl", "".join(_line(r) for r in res["rows"]))
    _write(out / "decisions.jsonl", "".join(_line(d) for d in res["decisions"].values()))
    _write(out / "summary.json", json.dumps(res["summary"], indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    manifest = {"stage": "build", "method": res["method"].name, "config": to_dict(res["cfg"]),
                "inputs": res["inputs"], "seed": res["summary"].get("seed"),
                "outputs": ["train.jsonl", "summary.json", "decisions.jsonl"], "rait_version": rait.__version__}
    _write(out / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
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
    p.add_argument("--config", help="YAML with the method's config fields")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="config overrides, e.g. --set n_total=2000 seed=0")
    p.add_argument("--list", action="store_true", help="list methods (with --method: its config keys) and exit")
    p.add_argument("--explain", metavar="ID", help="print why one item got its label (writes nothing without --out)")
    p.set_defaults(func=_main)
    return p


def _main(args: argparse.Namespace) -> int:
    if args.list:
        if args.method:
            try:
                m = get(args.method)
            except KeyError as e:
                raise ConfigError(e.args[0]) from None
            print(f"{m.name}: {m.description}")
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
    if args.out:
        summary = run_build(args.method, args.table, args.out, args.set, args.rehearsed_table, args.config)
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
    res = build_in_memory(args.method, args.table, args.set, args.rehearsed_table, args.config)
    print(explain(res["decisions"], res["summary"], args.explain))
    return 0


# ---------------------------------------------------------------------------------------------------- helpers
def _fmt(v: Any) -> str:
    return str(round(v, 6)) if isinstance(v, float) else str(v)


def _line(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _file_info(path: str | Path) -> dict[str, str]:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {"path": str(path), "sha256": h.hexdigest()}
