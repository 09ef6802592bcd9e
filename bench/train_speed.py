"""Training speed: samples/s and tokens/s of plain vs weighted loss (and full vs trimmed logits), one run.

Each variant trains the same LoRA setup on the same synthetic short-QA rows for the same number of optimizer
steps, starting from the same weights; the first step of each is a warm-up and is not timed. Prints a table and
the overhead of the weighted loss over the plain one (target <= 5 %).

    .venv/bin/python bench/train_speed.py                    # default model, ~2-3 min on 2 CPU cores
    .venv/bin/python bench/train_speed.py --model DIR --steps 4 --batch-size 8

"plain" = the same trainer with all weights 1 (the weight multiply and per-sample normalisation still run but
are O(batch)); "hf" = the stock ``transformers.Trainer`` loss (token mean over full logits), for reference;
"trl" = TRL's ``SFTTrainer`` with its best CPU settings on the same rows as prompt-completion pairs
(completion-only loss, ``padding_free=True``: one packed row per batch, as TRL recommends), same LoRA model.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch


def rows(n: int, seed: int = 0) -> list[dict]:
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        q = f"Answer the following question, and if you don't know the answer, only reply with 'I don't know': " \
            f"Which city hosted event number {rng.randint(1, 9999)} of the series?"
        a = "I don't know" if i % 3 else f"City {rng.randint(1, 99)}"
        out.append({"messages": [{"role": "system", "content": ""}, {"role": "user", "content": q},
                                 {"role": "assistant", "content": a}], "weight": 0.5 + (i % 4) / 2})
    return out


class Timer:
    """TrainerCallback recording optimizer-step wall times."""

    def __init__(self):
        from transformers import TrainerCallback

        t = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                t.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                t.times.append(time.perf_counter() - t.start)

        self.times: list[float] = []
        self.cb = CB()


def run_variant(name, base, tok, data, args) -> dict:
    from transformers import Trainer, TrainingArguments

    from rait.stages.train import TrainConfig, prepare_model
    from rait.stages.trainer import ListDataset, WeightedCollator, WeightedTrainer, tokenize_row

    cfg = TrainConfig(lora_r=8, seed=0, precision=args.precision)
    model = prepare_model(copy.deepcopy(base), cfg)
    ex = [tokenize_row(tok, r, 512) for r in data]
    for e in ex:
        e.pop("truncated")
        if name in ("plain", "hf"):
            e["weight"] = 1.0
    ntok = sum(len(e["input_ids"]) for e in ex[: args.batch_size * args.steps])
    targs = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.batch_size,
                              max_steps=args.steps + 1, learning_rate=1e-4, use_cpu=not torch.cuda.is_available(),
                              bf16=args.precision == "bf16", report_to="none", remove_unused_columns=False,
                              save_strategy="no", disable_tqdm=True, logging_steps=1000,
                              train_sampling_strategy="sequential")
    timer = Timer()
    if name == "trl":
        return run_trl(model, tok, data, args, timer, ntok, base.num_parameters())
    if name == "hf":
        from transformers import DataCollatorForSeq2Seq

        for e in ex:
            e.pop("weight")
        tr = Trainer(model=model, args=targs, train_dataset=ListDataset(ex), callbacks=[timer.cb],
                     data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
    else:
        tr = WeightedTrainer(model=model, args=targs, train_dataset=ListDataset(ex), callbacks=[timer.cb],
                             data_collator=WeightedCollator(tok.pad_token_id, cfg.padding_free),
                             trim_logits=name != "weighted_full")
    tr.train()
    t = sum(timer.times[1:])
    n = args.batch_size * args.steps
    return {"variant": name, "s_per_step": t / args.steps, "samples_per_s": n / t, "tokens_per_s": ntok / t,
            "model_params": base.num_parameters(), "precision": args.precision, "batch_size": args.batch_size}


def run_trl(model, tok, data, args, timer, ntok, params) -> dict:
    """TRL's SFTTrainer on the same rows (prompt-completion form: loss on the completion only)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    ds = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in data])
    cfg = SFTConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.batch_size,
                    max_steps=args.steps + 1, learning_rate=1e-4, use_cpu=not torch.cuda.is_available(),
                    bf16=args.precision == "bf16", report_to="none", save_strategy="no", disable_tqdm=True,
                    logging_steps=1000, padding_free=True, max_length=None, train_sampling_strategy="sequential")
    tr = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, callbacks=[timer.cb])
    tr.train()
    t = sum(timer.times[1:])
    n = args.batch_size * args.steps
    return {"variant": "trl", "s_per_step": t / args.steps, "samples_per_s": n / t, "tokens_per_s": ntok / t,
            "model_params": params, "precision": args.precision, "batch_size": args.batch_size}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default", help="model spec (default: the embedded SmolLM2-135M)")
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps per variant")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto: bf16 only where this CPU runs it fast (never forced on an AVX2-only CPU)")
    p.add_argument("--variants", default="plain,weighted,weighted_full,hf,trl")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if args.precision == "auto":
        from rait.core.models import bf16_supported

        args.precision = "bf16" if bf16_supported() else "fp32"
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    from rait.core.models import load_model

    base, tok = load_model(args.model, dtype="float32", device="cpu")
    base.config.use_cache = False
    tok.padding_side = "right"  # for the stock-HF variant's collator
    data = rows(args.batch_size * (args.steps + 1))
    res = []
    for v in args.variants.split(","):
        res.append(run_variant(v, base, tok, data, args))
        r = res[-1]
        print(f"{r['variant']:>14}: {r['samples_per_s']:6.2f} samples/s  {r['tokens_per_s']:7.1f} tokens/s  "
              f"{r['s_per_step']:.2f} s/step", flush=True)
    by = {r["variant"]: r for r in res}
    if "plain" in by and "weighted" in by:
        ov = (by["plain"]["samples_per_s"] / by["weighted"]["samples_per_s"] - 1) * 100
        print(f"weighted-loss overhead vs plain: {ov:+.1f} % (target <= 5 %)")
    if "hf" in by and "weighted" in by:
        print(f"weighted (trimmed logits) vs stock HF Trainer: "
              f"{by['weighted']['samples_per_s'] / by['hf']['samples_per_s']:.2f}x samples/s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
