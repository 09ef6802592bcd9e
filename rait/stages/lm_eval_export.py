"""``rait eval --export lm-eval``: an evaluation's results in lm-evaluation-harness's output layout.

lm-evaluation-harness (``lm_eval --output_path DIR``) writes ``DIR/<model_name_sanitized>/results_<date>.json``
(keys ``results``, ``group_subtasks``, ``configs``, ``versions``, ``n-shot``, ``higher_is_better``,
``n-samples``, ``config``, ``model_name`` ...; metric keys ``"<metric>,<filter>"`` with fractions in [0, 1] and
``"<metric>_stderr,<filter>"``) and one ``samples_<task>_<date>.jsonl`` per task. This module writes the same
files from a rait eval directory, so tools that read lm-eval results (leaderboards, ``lm_eval.utils.make_table``)
read rait's P_c / P_w / P_r / THS too. The task is named ``rait_<data stem>_<prompt>``; the metrics are
``correct``, ``wrong``, ``refused`` (and ``ths``, ``fail_parse`` when present) as fractions; the standard error is
the bootstrap 95 % CI half-width / 1.96 (``"N/A"`` without a bootstrap).

Example:
    >>> from rait.stages.lm_eval_export import sanitize_model_name
    >>> sanitize_model_name("runs/demo/train/van/seed0")
    'runs__demo__train__van__seed0'
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from rait.core.artifacts import read_jsonl
from rait.errors import RaitError

METRICS = {"P_c": ("correct", True), "P_w": ("wrong", False), "P_r": ("refused", False),
           "P_fail": ("fail_parse", False), "THS": ("ths", True)}
FILTER = "none"


def sanitize_model_name(name: str) -> str:
    """lm-eval's directory name for a model: path separators and other odd characters become ``__``."""
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", str(name).strip("/"))


def task_name(data: str, prompt: str) -> str:
    """``jsonl:runs/demo/data/id.jsonl`` + ``refuse`` -> ``rait_id_refuse``."""
    loc = data.split(":", 1)[-1].split("?", 1)[0].rstrip("/")
    stem = re.sub(r"\W+", "_", Path(loc).stem or "data").strip("_")
    return f"rait_{stem}_{prompt}"


def _value(m: Any) -> tuple[float | None, float | str]:
    """(fraction, stderr) of a rait metric (percent, ``{value, lo, hi}`` or a number)."""
    if m is None:
        return None, "N/A"
    if isinstance(m, dict):
        v, lo, hi = m.get("value"), m.get("lo"), m.get("hi")
        if v is None:
            return None, "N/A"
        se: float | str = (hi - lo) / 2 / 1.96 / 100 if lo is not None and hi is not None and hi > lo else "N/A"
        return v / 100, se
    return float(m) / 100, "N/A"


def export(eval_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``OUT/<model>/results_<date>.json`` and ``samples_<task>_<date>.jsonl`` for a rait eval directory.

    Args:
        eval_dir: a ``rait eval`` output directory (``metrics.json``, ``items.jsonl``, ``manifest.json``).
        out_dir: where to write (default: ``eval_dir/lm-eval``).

    Returns:
        The results JSON path.
    """
    from rait.core.safety import atomic_write

    d = Path(eval_dir)
    if not (d / "metrics.json").is_file():
        raise RaitError(f"{d}: no metrics.json; run `rait eval --out {d}` first")
    metrics = json.loads((d / "metrics.json").read_text(encoding="utf-8"))
    manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8")) if (d / "manifest.json").is_file() else {}
    cfg = manifest.get("config", {})
    items = read_jsonl(d / "items.jsonl")
    model = str(metrics.get("model") or cfg.get("model") or "model")
    task = task_name(str(metrics.get("data") or cfg.get("data") or d.name), str(metrics.get("prompt", "basic")))
    now = time.time()
    date_id = time.strftime("%Y-%m-%dT%H-%M-%S", time.localtime(now))
    results = _results(task, metrics, manifest, model, len(items), now)
    out = Path(out_dir) if out_dir else d / "lm-eval"
    target = out / sanitize_model_name(model)
    path = target / f"results_{date_id}.json"
    atomic_write(path, json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    atomic_write(target / f"samples_{task}_{date_id}.jsonl", "".join(json.dumps(_sample(i, r), ensure_ascii=False)
                                                                       + "\n" for i, r in enumerate(items)))
    return path


def _task_results(task: str, metrics: dict[str, Any], n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's ``results`` entry (value and stderr per metric) and its ``higher_is_better`` map."""
    res: dict[str, Any] = {"name": task, "alias": task, "sample_len": n}
    higher: dict[str, Any] = {}
    for key, (name, better) in METRICS.items():
        v, se = _value(metrics.get(key))
        if v is None:
            continue
        res[f"{name},{FILTER}"] = v
        res[f"{name}_stderr,{FILTER}"] = se
        higher[name] = better
    return res, higher


def _results(task: str, metrics: dict[str, Any], manifest: dict[str, Any], model: str, n: int,
             now: float) -> dict[str, Any]:
    """The lm-eval ``results_<date>.json`` document of one rait eval."""
    cfg = manifest.get("config", {})
    res, higher = _task_results(task, metrics, n)
    return {
        "results": {task: res},
        "group_subtasks": {task: []},
        "configs": {task: {"task": task, "dataset_path": str(metrics.get("data") or cfg.get("data")),
                           "output_type": "generate_until", "num_fewshot": 0,
                           "generation_kwargs": {"until": cfg.get("stop", ["\n"]), "do_sample": False,
                                                 "max_gen_toks": cfg.get("max_new_tokens")},
                           "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": b}
                                           for m, b in higher.items()],
                           "metadata": {"version": 1.0, "source": "rait eval", "prompt": metrics.get("prompt"),
                                        "refusal": cfg.get("refusal"), "match": cfg.get("match"),
                                        "reference": cfg.get("reference")}}},
        "versions": {task: 1.0},
        "n-shot": {task: 0},
        "higher_is_better": {task: higher},
        "n-samples": {task: {"original": n, "effective": n}},
        "config": {"model": "hf", "model_args": f"pretrained={model}", "batch_size": cfg.get("batch_size"),
                   "device": None, "limit": cfg.get("limit"), "gen_kwargs": None},
        "git_hash": manifest.get("git_sha"),
        "date": now,
        "model_source": "hf",
        "model_name": model,
        "model_name_sanitized": sanitize_model_name(model),
        "total_evaluation_time_seconds": str(metrics.get("seconds", "")),
        "task_hashes": {},
        "system_instruction": cfg.get("system_prompt"),
        "fewshot_as_multiturn": False,
        "transformers_version": (manifest.get("versions") or {}).get("transformers"),
    }


def _sample(i: int, r: dict[str, Any]) -> dict[str, Any]:
    """One lm-eval sample record from a rait per-item record."""
    verdict = r.get("verdict")
    return {"doc_id": i, "doc": {"id": r.get("id"), "question": r.get("question"), "topic": r.get("topic")},
            "target": str(r.get("gold")), "arguments": {"gen_args_0": {"arg_0": r.get("question")}},
            "resps": [[r.get("output")]], "filtered_resps": [r.get("output")], "filter": FILTER,
            "metrics": [m for m, _ in METRICS.values() if m in ("correct", "wrong", "refused")],
            "correct": float(verdict == "correct"), "wrong": float(verdict == "wrong"),
            "refused": float(verdict == "refuse"), "verdict": verdict}
