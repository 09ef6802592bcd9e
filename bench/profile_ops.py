"""Where the time of each stage's inner loop goes: torch-profiler self time grouped by kind of operator.

Each target runs the code path the pipeline runs, with the demo's settings (``configs/demo.yaml``) and the dtype
``auto`` picks, after one warm-up call:

* ``train``: two optimizer steps of ``rait train`` (the weighted trainer, LoRA, the demo's batch size) on
  short QA rows, profiled from the second step on (a ``TrainerCallback`` starts and stops the profiler);
* ``eval``: :meth:`rait.generation.hf.HFBackend.generate`, greedy, on the built-in test questions with the
  evaluation prompt (one batch of ``--eval-n``);
* ``grads``: one batch of :class:`rait.gradients.persample.GradFeaturizer` as ``rait grads`` loads it.

Printed per target: seconds profiled and the share of self CPU time of matmuls, attention, random numbers
(LoRA dropout), dtype casts and copies, other element-wise ops, softmax / loss, and the rest.

    python bench/profile_ops.py [--targets train,eval,grads] [--out bench/results/profile.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import cpu_line, machine, write_result  # noqa: E402

GROUPS = {  # operator name fragments (aten::...) -> group; first match wins
    "matmul": ("::mm", "::bmm", "::addmm", "::linear", "::matmul", "::baddbmm"),
    "attention": ("scaled_dot_product",),
    "random numbers": ("bernoulli", "::rand", "::uniform", "::normal"),
    "casts and copies": ("::copy_", "::_to_copy", "::to", "::contiguous", "::clone", "::cat"),
    "softmax and loss": ("softmax", "nll_loss", "cross_entropy", "::argmax", "::topk", "::sort"),
    "element-wise": ("::mul", "::add", "::sub", "::div", "::silu", "::pow", "::rsqrt", "::mean", "::neg", "::exp",
                     "::sum", "::fill_", "::where", "::masked_fill", "::index", "::scatter", "::gather"),
}


def grouped(prof) -> dict[str, float]:
    """Self CPU seconds per group (operators not listed fall in "other")."""
    out = {g: 0.0 for g in [*GROUPS, "other"]}
    for ev in prof.key_averages():
        if not ev.key.startswith("aten::"):
            continue
        group = next((g for g, keys in GROUPS.items() if any(k in ev.key for k in keys)), "other")
        out[group] += ev.self_cpu_time_total / 1e6
    return out


def _rows(n: int) -> list[dict]:
    from rait.data import load

    items = load("builtin:facts/id")[:n]
    return [{"messages": [{"role": "system", "content": ""}, {"role": "user", "content": it.question},
                          {"role": "assistant", "content": it.answers[0] if i % 3 else "I don't know"}],
             "weight": 1.0} for i, it in enumerate(items)]


def profile_train(demo) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback

    from rait.core.artifacts import write_jsonl
    from rait.stages.train import train

    class Window(TrainerCallback):  # profile steps 2-3 (step 1 is the warm-up)
        prof, t0, seconds = None, 0.0, 0.0

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == 1:
                self.prof = profile(activities=[ProfilerActivity.CPU]).__enter__()
                self.t0 = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):
            if self.prof is not None:
                self.seconds = time.perf_counter() - self.t0
                self.prof.__exit__(None, None, None)

    cfg = demo.stage("train")
    with tempfile.TemporaryDirectory() as tmp:
        write_jsonl(Path(tmp) / "rows.jsonl", _rows(3 * cfg.batch_size))
        from dataclasses import replace

        w = Window()
        train(replace(cfg, model=demo.model, data=str(Path(tmp) / "rows.jsonl"), out=str(Path(tmp) / "out"), epochs=1,
                      save_steps=0),
              callbacks=[w])
    return {"seconds": w.seconds, "steps": 2, "batch_size": cfg.batch_size, **grouped(w.prof)}


def profile_eval(demo, n: int) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    from rait.data import load
    from rait.generation import get_backend
    from rait.generation.base import SamplingConfig
    from rait.stages.evaluate import eval_prompt

    cfg = demo.stage("eval")
    be = get_backend(cfg.backend, demo.model, dtype=demo.dtype, batch_size=cfg.batch_size)
    prompts = [eval_prompt(it, be.tok, cfg) for it in load(demo.data.id)[:n]]
    s = SamplingConfig(temperature=0.0, max_new_tokens=cfg.max_new_tokens, stop=list(cfg.stop), logprobs=True)
    be.generate(prompts[:8], n=1, sampling=s)
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        be.generate(prompts, n=1, sampling=s)
    return {"seconds": time.perf_counter() - t, "questions": n, **grouped(prof)}


def profile_grads(demo) -> dict[str, float]:
    from dataclasses import replace

    from torch.profiler import ProfilerActivity, profile

    from rait.gradients.cli import load_featurizer

    cfg = replace(demo.stage("grads"), model=demo.model)
    fz = load_featurizer(cfg)
    convs = [r["messages"] for r in _rows(2 * cfg.batch_size)]
    fz.features(convs[: cfg.batch_size])
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fz.features(convs[cfg.batch_size:])
    return {"seconds": time.perf_counter() - t, "rows": cfg.batch_size, **grouped(prof)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(HERE.parent / "configs" / "demo.yaml"))
    ap.add_argument("--targets", default="train,eval,grads")
    ap.add_argument("--eval-n", type=int, default=128)
    ap.add_argument("--out", default=str(HERE / "results" / "profile.json"))
    args = ap.parse_args(argv)
    from rait.core.config import load_yaml
    from rait.run.pipeline import RunConfig

    demo = load_yaml(RunConfig, args.config)
    print(cpu_line(), flush=True)
    res = {"machine": machine(), "config": args.config, "targets": {}}
    for t in args.targets.split(","):
        r = {"train": lambda: profile_train(demo), "eval": lambda: profile_eval(demo, args.eval_n),
             "grads": lambda: profile_grads(demo)}[t]()
        total = sum(v for k, v in r.items() if k in [*GROUPS, "other"])
        shares = {k: round(r[k] / total, 3) for k in [*GROUPS, "other"]}
        res["targets"][t] = {**{k: v for k, v in r.items() if k not in shares}, "shares": shares}
        print(f"{t}: {r['seconds']:.1f} s profiled; " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()),
              flush=True)
    write_result(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
