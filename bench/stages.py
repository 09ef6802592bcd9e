"""Real-stage throughput: the stages of ``rait run CONFIG`` timed exactly as the pipeline runs them, on fewer items.

The run config (default ``configs/demo.yaml``) is loaded with only its sizes reduced (pool, test sets, training
rows); the pipeline's own :class:`rait.run.pipeline.Plan` builds every stage's argv (same prompts, few-shot, k, max
tokens, temperature, certainty, batch sizes, ``auto`` dtype, epochs), and each stage kind of interest runs as
``rait <argv>`` in a fresh process of its own (``bench/_stage.py``), so its wall time includes what a user waits
for (model load, certainty embedder, saving) and its peak RSS is its own.

Printed per stage: items, answers/s (probe), questions/s (eval), samples/s (train = rows x epochs / wall;
grads = rows / wall), the rate of the stage's own work without model loading and saving where the stage records
it (``inner_rate``: eval generation, the trainer's samples/s), tokens/s and the share of the measured matmul roofline of the dtype ``auto`` picks
(2·N FLOP per processed token for inference, 4·N for a LoRA training or gradient step: forward + activation
backward; N = model parameters), peak RSS.

With ``--baseline REV`` every stage also runs with the ``rait`` package of git revision REV (exported to a
temporary directory, first on ``PYTHONPATH``), right after the current code's run of the same stage, on its own
copy of the same data: the "today" column, measured in the same run.

Usage::

    python bench/stages.py [--config configs/demo.yaml] [--n 48] [--baseline REV] [--out bench/results/stages.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import cpu_line, machine, matmul_gflops, write_result  # noqa: E402

from rait.methods import REFERENCE  # noqa: E402
from rait.methods._claims import THS_ORDER, VANILLA  # noqa: E402

KINDS = {"probe_m0": "probe", "rehearse": "train", "grads": "grads", f"eval:{REFERENCE}:0:id": "eval",
         f"train:{VANILLA}:0": "train"}


def auto_n(gflops: float) -> int:
    """Pool size for ``--n auto``: 16 items per 250 GFLOP/s of matmul rate, between 16 and 64.

    >>> auto_n(75.0), auto_n(600.0), auto_n(1200.0)
    (16, 32, 64)
    """
    return int(min(64, max(16, 16 * (gflops // 250))))


def same_stage(name: str, names: list[str]) -> str | None:
    """``name`` in another version's plan: itself, or without its seed suffix (f27074c built one training set per
    method for all seeds: ``build:van``, where the current plans have ``build:van:0``).

    >>> same_stage("build:van:0", ["data", "build:van"]), same_stage("probe_m0", ["data"])
    ('build:van', None)
    """
    if name in names:
        return name
    base, _, seed = name.rpartition(":")
    return base if seed.isdigit() and base in names else None


def reduced_sets(n: int, root: Path, n_test: int | None = None) -> list[str]:
    """Overrides that reduce only the sizes: ``n`` pool items, ``n_test`` (default ``n``) test items, ``n // 2``
    rehearsal and training rows."""
    n_test = n_test or n
    return [f"out_root={json.dumps(str(root))}", f"data.n_pool={n}", f"data.n_id={n_test}", f"data.n_ood={n_test}",
            f"rehearse.n={n // 2}", f"build.n_total={n // 2}", "report=false",
            f"methods=[{REFERENCE},{VANILLA},{THS_ORDER[0]}]"]


def _stage(args: list[str], pythonpath: str | None, tag: str) -> dict:
    """``bench/_stage.py ARGS`` in a fresh process (``pythonpath`` first on the path); its ``TAG {json}`` line."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, str(HERE / "_stage.py"), *args], capture_output=True, text=True, env=env)
    line = [x for x in proc.stdout.splitlines() if x.startswith(tag + " ")]
    if proc.returncode or not line:
        raise SystemExit(f"stage failed: bench/_stage.py {' '.join(args)}\n{proc.stderr[-3000:]}")
    return json.loads(line[-1].split(" ", 1)[1])


def needed(config: str, sets: list[str], wanted: list[str], pythonpath: str | None = None) -> list[str]:
    """Stage names to run (the wanted ones and their dependencies, plan order), as that version's plan has them."""
    return _stage(["--list", config, ",".join(wanted), *sets], pythonpath, "STAGES")


def run_stage(config: str, sets: list[str], name: str, pythonpath: str | None = None) -> dict:
    """Stage ``name`` of the plan in a fresh process; wall time, peak RSS, output directory."""
    return _stage([config, name, *sets], pythonpath, "STAGE_RESULT")


def _first(d: dict, *paths: tuple[str, ...]):
    """The value at the first key path present in ``d`` (manifests of the current and the baseline layout)."""
    for path in paths:
        v = d
        for k in path:
            if not isinstance(v, dict) or k not in v:
                break
            v = v[k]
        else:
            return v
    raise KeyError(f"none of {paths} in manifest")


def _manifest(out: Path) -> dict:
    """A training stage's manifest (``rait rehearse`` keeps its training run's manifest under ``model/``)."""
    m = json.loads((out / "manifest.json").read_text())
    return m if m.get("stage") != "rehearse" else json.loads((out / "model" / "manifest.json").read_text())


def _tokens(tok, texts) -> int:
    return sum(len(tok.encode(t, add_special_tokens=False)) for t in texts)


def describe(kind: str, out: Path, r: dict, tok, params: int, gflops: float) -> dict:
    """Throughput figures of one finished stage, from its own outputs."""
    from rait.core.artifacts import read_jsonl

    s = r["seconds"]
    if kind == "probe":
        from rait.data.schema import QAItem
        from rait.stages.probe import ProbeConfig, oeqa_prompt

        rows = read_jsonl(out / "table.jsonl")
        cfg = ProbeConfig(**json.loads((out / "plan.json").read_text())["config"])
        prompts = [oeqa_prompt(QAItem.from_dict(x), tok, cfg) for x in rows]
        gen = sum(sum(x["n_tokens"]) for x in rows)
        work = _tokens(tok, prompts) + gen
        r.update(items=len(rows), answers_per_s=len(rows) * cfg.k / s, gen_tokens_per_s=gen / s,
                 prompt_tokens_mean=_tokens(tok, prompts) / len(rows), k=cfg.k, batch_size=cfg.batch_size)
        flop = 2 * params * work
    elif kind == "eval":
        rows = read_jsonl(out / "items.jsonl")
        gen = json.loads((out / "manifest.json").read_text())["timings"]["generate"]
        r.update(items=len(rows), questions_per_s=len(rows) / s, inner_rate=len(rows) / gen,
                 inner="questions per second of generation")
        flop = None
    elif kind == "train":
        m = _manifest(out)
        cfg = m["config"]
        n_rows = _first(m, ("inputs", "data", "rows"), ("data", "rows"))
        data = _first(m, ("inputs", "data", "path"), ("data", "path"))
        train_rows = read_jsonl(data)
        ntok = _tokens(tok, [tok.apply_chat_template(x["messages"], tokenize=False) for x in train_rows])
        inner = _first(m, ("outputs", "samples_per_s"), ("samples_per_s",))
        r["train_loss"] = _first(m, ("outputs", "train_loss"), ("train_loss",))
        r.update(items=n_rows, epochs=cfg["epochs"], samples_per_s=n_rows * cfg["epochs"] / s,
                 samples_per_s_in_trainer=inner, inner_rate=inner, inner="samples/s inside the trainer",
                 batch_size=cfg["batch_size"], tokens_per_row_mean=ntok / n_rows, token_count="rendered chat template")
        flop = 4 * params * ntok * cfg["epochs"]
    else:  # grads
        m = json.loads((out / "manifest.json").read_text())
        n = _first(m, ("outputs", "n"), ("n",))
        r.update(items=n, samples_per_s=n / s, batch_size=_first(m, ("config", "batch_size"), ("args", "batch_size")))
        flop = None
    r["roofline_share"] = flop / s / 1e9 / gflops if flop else None
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "demo.yaml"))
    ap.add_argument("--n", default="48", help="pool items (rehearsal and training rows: n/2); 'auto': 16 per 250 "
                                               "GFLOP/s of the measured matmul rate, 16 to 64 (the sizes grow with "
                                               "the CPU, so that run_all fits its time budget on a slow one)")
    ap.add_argument("--n-test", type=int, default=None,
                    help="test items of the eval stage (default: --n; 0: 4 x --n); evaluation is cheap, so it can run at a batch "
                         "size where generation, not model loading, is what is timed")
    ap.add_argument("--stages", default=",".join(KINDS), help="stage names of the plan to time")
    ap.add_argument("--baseline", default=None, help="git revision whose rait package gives the 'today' column")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from rait.core.models import load_model, resolve_dtype

    dtype = resolve_dtype("auto")
    gflops = matmul_gflops(dtype, n=1024)
    model, tok = load_model("default", dtype="float32", device="cpu")
    params = model.num_parameters()
    del model
    print(cpu_line(), f"| auto dtype: {dtype} | {dtype} matmul {gflops:.0f} GFLOP/s", flush=True)
    args.n = auto_n(gflops) if args.n == "auto" else int(args.n)
    if args.n_test == 0:
        args.n_test = 4 * args.n
    res = {"machine": machine(), "config": args.config, "n": args.n, "n_test": args.n_test or args.n, "dtype": str(dtype).replace("torch.", ""),
           "matmul_gflops": round(gflops, 1), "model_params": params, "stages": {}, "stages_today": {}}
    wanted = args.stages.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"now": (reduced_sets(args.n, Path(tmp) / "now", args.n_test), None)}
        if args.baseline:
            export = Path(tmp) / "baseline_src"
            export.mkdir()
            archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", args.baseline, "rait"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True)
            runs["today"] = (reduced_sets(args.n, Path(tmp) / "today", args.n_test), str(export))
            res["baseline"] = args.baseline
        todo = {label: needed(args.config, sets, wanted, path) for label, (sets, path) in runs.items()}
        for name in todo["now"]:
            for label, (sets, path) in runs.items():  # interleaved: the same stage of both versions back to back
                own = same_stage(name, todo[label])
                if own is None:
                    raise SystemExit(f"the {label} code's plan has no stage {name!r}: {todo[label]}")
                r = run_stage(args.config, sets, own, path)
                kind = KINDS.get(name)
                if not kind:
                    continue
                r = describe(kind, Path(r.pop("out")), r, tok, params, gflops)
                res["stages" if label == "now" else "stages_today"][name] = {"kind": kind, **r}
                print(f"{label:>5} {name:>22}: " + ", ".join(
                    f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items() if k != "rc"),
                    flush=True)
    write_result(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
