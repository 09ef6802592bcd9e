"""Re-score existing evaluations offline: new MCQA parser, echo-safe open-ended scoring, no model needed.

``rait eval`` stores each answer in ``items.jsonl``; this module recomputes every verdict from those answers under
other scoring settings (``mcqa_parse``, ``scoring``, ``refusal``, ``match``), writes a *new* eval directory
(``items.jsonl``, ``metrics.json``, ``manifest.json``) and counts the verdicts that changed. Given a run directory
(written by ``rait run``) it re-scores every ``eval/METHOD/seedS/TEST`` — Init-Basic first, so THS uses the
re-scored reference — and writes ``results.json`` / ``run.json`` for ``rait report``. Source files are only read.

Example::

    python -m rait.rescore runs/mmlu_arc --out runs/mmlu_arc_rescored            # the papers' parser
    python -m rait.rescore runs/triviaqa_nq --out /tmp/tqa_echo --scoring echo_safe
    python -m rait.rescore runs/x/eval/init_basic/seed0/id --out /tmp/ib --mcqa-parse legacy
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from rait.core.artifacts import atomic_write_text, read_jsonl, write_jsonl, write_manifest
from rait.core.config import to_dict
from rait.errors import RaitError
from rait.stages.evaluate import EvalConfig, compute_metrics, item_record, load_reference, record_item

MARKER = ".rescore.json"


def _out_dir(out: Path) -> None:
    """Refuse a non-empty output directory this module did not write (never overwrite others' files)."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise RaitError(f"{out}: exists and was not written by rait.rescore; choose an empty or new --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, json.dumps({"written_by": "rait.rescore"}) + "\n")


def eval_config(src: Path, **overrides: Any) -> EvalConfig:
    """The eval settings recorded in ``src/manifest.json`` (defaults where absent), with ``overrides``."""
    man = src / "manifest.json"
    recorded = json.loads(man.read_text()).get("config", {}) if man.exists() else {}
    names = {f.name for f in fields(EvalConfig)}
    cfg = EvalConfig(**{k: v for k, v in recorded.items() if k in names})
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def rescore_eval(src: str | Path, out: str | Path, reference: str | Path | None = None,
                 **overrides: Any) -> tuple[dict[str, Any], Counter]:
    """Re-score one eval directory into ``out``.

    Args:
        src: an eval directory (``items.jsonl``, ideally ``manifest.json``).
        out: the new eval directory (new or written by this module).
        reference: the (re-scored) Init-Basic eval directory for THS; None: the source's recorded reference
            when the prompt is not ``basic`` (else the run is its own reference).
        **overrides: EvalConfig fields, e.g. ``mcqa_parse="opencompass"``, ``scoring="echo_safe"``.

    Returns:
        ``(metrics, Counter of (old verdict, new verdict) for every changed item)``.
    """
    src, out = Path(src), Path(out)
    if not (src / "items.jsonl").exists():
        raise RaitError(f"{src / 'items.jsonl'}: not found; give an eval directory written by `rait eval`")
    cfg = eval_config(src, **overrides)
    ref_dir = reference if reference is not None else cfg.reference
    cfg = replace(cfg, out=str(out), reference=str(ref_dir) if ref_dir else None)
    old = read_jsonl(src / "items.jsonl")
    new = [item_record(record_item(r), r.get("output", ""), cfg, r.get("confidence")) for r in old]
    changed = Counter((a["verdict"], b["verdict"]) for a, b in zip(old, new) if a["verdict"] != b["verdict"])
    ref = load_reference(ref_dir) if ref_dir and cfg.prompt != "basic" else None
    metrics = compute_metrics(new, cfg, ref)
    metrics.update({"model": cfg.model, "data": cfg.data, "prompt": cfg.prompt, "rescored_from": str(src),
                    "changed": {f"{a}->{b}": n for (a, b), n in sorted(changed.items())}})
    _out_dir(out)
    write_jsonl(out / "items.jsonl", new)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True, default=float) + "\n")
    write_manifest(out, "eval", to_dict(cfg), {"rescored_from": str(src)}, {})
    return metrics, changed


def rescore_run(run_dir: str | Path, out: str | Path, **overrides: Any) -> dict[str, Counter]:
    """Re-score every evaluation of a run directory into ``out`` and aggregate it (``results.json``, ``run.json``).

    Returns:
        ``{"METHOD/seedS/TEST": Counter of changed verdicts}``.
    """
    from rait.run.aggregate import aggregate_run

    run_dir, out = Path(run_dir), Path(out)
    info_path = run_dir / "run.json"
    if not info_path.exists():
        raise RaitError(f"{info_path}: not found; give a run directory written by `rait run`")
    info = json.loads(info_path.read_text())
    methods, tests, seeds = info["methods"], list(info["tests"]), info["seeds"]
    _out_dir(out)
    changes: dict[str, Counter] = {}
    for m in ["init_basic"] + [x for x in methods if x != "init_basic"]:
        for sdir in sorted((run_dir / "eval" / m).glob("seed*")):
            for t in tests:
                if (sdir / t / "items.jsonl").exists():
                    ref = None if m == "init_basic" else out / "eval" / "init_basic" / f"seed{seeds[0]}" / t
                    _, ch = rescore_eval(sdir / t, out / "eval" / m / sdir.name / t, reference=ref, **overrides)
                    changes[f"{m}/{sdir.name}/{t}"] = ch
    n_boot = int((info.get("config") or {}).get("eval", {}).get("n_boot", 1000))
    res = aggregate_run(lambda m, s, t: out / "eval" / m / f"seed{s}" / t, methods, tests, seeds, n_boot=n_boot)
    atomic_write_text(out / "results.json", json.dumps(res, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / "run.json", json.dumps({**info, "rescored_from": str(run_dir),
                                                    "rescore": overrides}, indent=2) + "\n")
    return changes


def main(argv: list[str] | None = None) -> int:
    """``python -m rait.rescore SRC --out OUT [--mcqa-parse R] [--scoring S] [--refusal M] [--match M]``."""
    p = argparse.ArgumentParser(prog="python -m rait.rescore", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="a run directory (holds run.json) or one eval directory (holds items.jsonl)")
    p.add_argument("--out", required=True, help="new output directory")
    p.add_argument("--mcqa-parse", choices=("opencompass", "legacy"), default="opencompass")
    p.add_argument("--scoring", choices=("papers", "echo_safe"), help="default: as recorded")
    p.add_argument("--refusal", choices=("lenient", "strict"), help="default: as recorded")
    p.add_argument("--match", choices=("contains", "contains_norm", "exact"), help="default: as recorded")
    a = p.parse_args(argv)
    opts = {"mcqa_parse": a.mcqa_parse, "scoring": a.scoring, "refusal": a.refusal, "match": a.match}
    try:
        src = Path(a.src)
        if (src / "run.json").exists():
            changes = rescore_run(src, a.out, **opts)
        else:
            changes = {str(src): rescore_eval(src, a.out, **opts)[1]}
    except RaitError as e:
        print(f"rait: error: {e}", file=sys.stderr)
        return 2
    for k, ch in changes.items():
        print(f"{k}: {sum(ch.values())} verdict(s) changed" + (f" {dict(ch)}" if ch else ""))
    print(f"total: {sum(sum(c.values()) for c in changes.values())} verdict(s) changed; wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
