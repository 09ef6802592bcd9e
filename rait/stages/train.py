"""``rait train``: (weighted) refusal-aware SFT of a chat model, LoRA or full, resumable, multi-process.

Loss on the assistant completion only (including its end-of-turn token), each sample's token-mean loss times
its ``weight`` column, averaged over the samples of the global effective batch (see :mod:`rait.stages.trainer`).

Output directory layout::

    OUT/                  the final model + tokenizer (LoRA merged; ``save: merged|both``; always for full FT)
    OUT/adapter/          the LoRA adapter + tokenizer (``save: adapter|both``)
    OUT/optimizer.safetensors   Adam moments per trainable parameter (``save_optimizer: true``)
    OUT/checkpoints/      Trainer checkpoints every ``save_steps``; removed at the end unless ``keep_checkpoints``
    OUT/manifest.json     config, data sha256, library versions, git SHA, timings, steps, final loss

Command line::

    rait train --data train.jsonl --model default --out runs/m1 --set epochs=2 --set lora_r=16
    torchrun --nproc_per_node 2 -m rait.cli train --data train.jsonl --model default --out runs/m1

Example (in Python, tiny model):
    >>> from rait.stages.train import TrainConfig, train
    >>> cfg = TrainConfig(data="train.jsonl", model="path/to/model", out="runs/m1", epochs=1)  # doctest: +SKIP
    >>> train(cfg)  # doctest: +SKIP
    PosixPath('runs/m1')
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rait.core.artifacts import file_info, write_manifest
from rait.core.config import ConfigError, add_config_arguments, check_choices, config_from_args, option, to_dict
from rait.errors import DataError


@dataclass
class TrainConfig:
    """Settings of ``rait train`` (defaults sized for the 135M default model on a few CPU cores)."""

    data: str = option("", "training set (TRL conversational rows with optional 'weight')")
    model: str = option("default", "model spec: default, HF hub id, local dir or .gguf")
    out: str = option("", "output directory")
    method: str = option("lora", "lora (peft adapter, merged at the end) or full fine-tuning", ("lora", "full"))
    lora_r: int = option(8, "LoRA rank (8: ~2.4M trainable params on SmolLM2-135M; plenty for format/refusal)")
    lora_alpha: int = option(16, "LoRA alpha (scale alpha/r = 2)")
    lora_dropout: float = option(0.05, "LoRA dropout")
    lora_target: list[str] = option(["all-linear"], "LoRA target modules; all-linear = every linear but lm_head")
    lr: float | None = option(None, "peak learning rate; none = 2e-4 for LoRA, 1e-5 for full fine-tuning")
    epochs: float = option(3.0, "epochs (the papers' 3)")
    max_steps: int = option(-1, "stop after this many optimizer steps (-1: run all epochs)")
    batch_size: int = option(8, "sequences per device per micro-batch")
    grad_accum: int = option(2, "micro-batches per optimizer step (effective batch = bs x GA x processes)")
    max_length: int = option(512, "max tokens per row (prompt cut from the left first)")
    scheduler: str = option("cosine", "LR schedule", ("cosine", "linear", "constant", "constant_with_warmup"))
    warmup_ratio: float = option(0.03, "linear warm-up share of the steps")
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float = option(1.0, "gradient-norm clip")
    loss_reduction: str = option("sample_mean", "sample_mean (weighted per-sample means) or token_mean (HF)",
                                 ("sample_mean", "token_mean"))
    use_weights: bool = option(True, "apply the rows' 'weight' column (false: all weights 1)")
    trim_logits: bool = option(True, "compute lm_head logits only on positions that predict the completion")
    precision: str = option("auto", "auto (bf16 autocast where fast), bf16, fp16 (CUDA), fp32",
                            ("auto", "bf16", "fp16", "fp32"))
    gradient_checkpointing: bool = option(False, "trade compute for memory")
    seed: int = option(0, "seed: LoRA init, dropout, data order")
    shuffle: bool = option(True, "shuffle rows each epoch (false: keep file order, like GRAIT's final SFT)")
    group_by_length: bool = option(False, "batch rows of similar length together (less padding)")
    padding_free: bool = option(True, "concatenate each micro-batch into one row (no padding; same loss); the "
                                "attention still runs sample by sample (rait.core.packed, or flash-attention's "
                                "varlen kernel). TriviaQA rows, 16 per batch, bf16 CPU: 1.2x faster steps and 1.9 GB "
                                "less peak memory than padded batches (docs/speed.md)")
    save: str = option("merged", "what to save for LoRA: merged model, adapter, or both", ("merged", "adapter", "both"))
    save_dtype: str = option("float32", "dtype of the saved model", ("float32", "bfloat16", "float16"))
    save_steps: int = option(50, "checkpoint every N optimizer steps (0: never)")
    save_total_limit: int = option(2, "checkpoints kept")
    keep_checkpoints: bool = option(False, "keep OUT/checkpoints after a successful run")
    resume: str = option("auto", "auto (last checkpoint in OUT/checkpoints if any), never, or a checkpoint path")
    save_optimizer: bool = option(False, "write Adam moments (exp_avg, exp_avg_sq) to OUT/optimizer.safetensors")
    logging_steps: int = option(10, "progress bar: show the mean loss of the last N steps")
    trust_remote_code: bool = option(False, "allow model code from the hub")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.batch_size < 1 or self.grad_accum < 1 or self.max_length < 8:
            raise ConfigError("batch_size and grad_accum must be >= 1 and max_length >= 8")
        if self.lora_r < 1:
            raise ConfigError("lora_r must be >= 1")

    @property
    def learning_rate(self) -> float:
        """The configured lr, or the method's default."""
        return self.lr if self.lr is not None else (2e-4 if self.method == "lora" else 1e-5)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a training JSONL; errors name file and line."""
    from rait.core.artifacts import iter_jsonl

    rows = []
    for i, row in iter_jsonl(path, "training file"):
        problem = check_messages(row.get("messages"))
        if problem:
            raise DataError(path, i, f"{problem}; expected 'messages': [{{\"role\": \"user\", \"content\": ...}}, "
                            "..., {\"role\": \"assistant\", \"content\": ...}] (docs/artifacts.md)")
        w = row.get("weight", 1.0)
        if w is not None and (not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0):
            raise DataError(path, i, f"'weight' must be a finite number >= 0, got {w!r}")
        row["_line"] = i
        rows.append(row)
    if not rows:
        raise DataError(path, None, "no training rows")
    return rows


def check_messages(msgs: Any) -> str | None:
    """What is wrong with a row's ``messages`` (None when it is a list of role/content turns ending with the
    assistant's).

    >>> check_messages(["hi", "Paris"])
    "message 1 is a str, not an object {'role', 'content'}"
    """
    if msgs is None:
        return "missing field 'messages'"
    if not isinstance(msgs, list) or not msgs:
        return f"field 'messages' is {type(msgs).__name__} {str(msgs)[:40]!r}, not a non-empty list of turns"
    for n, m in enumerate(msgs, 1):
        if not isinstance(m, dict):
            return f"message {n} is a {type(m).__name__}, not an object {{'role', 'content'}}"
        if m.get("role") not in ("system", "user", "assistant"):
            return f"message {n} has role {m.get('role')!r}; expected system, user or assistant"
        if not isinstance(m.get("content"), str):
            return f"message {n} has content {m.get('content')!r}; expected a string"
    if msgs[-1]["role"] != "assistant":
        return "the last message is not the assistant's answer"
    return None


def _precision(cfg: TrainConfig) -> str:
    import torch

    if cfg.precision != "auto":
        return cfg.precision
    from rait.core.models import bf16_supported

    return "bf16" if bf16_supported() else ("fp16" if torch.cuda.is_available() else "fp32")


def _ckpt_kw(on: bool) -> dict[str, bool]:
    """``activation_checkpointing`` (transformers 5) or ``gradient_checkpointing`` (older)."""
    import inspect

    from transformers import TrainingArguments

    sig = inspect.signature(TrainingArguments.__init__).parameters
    return {"activation_checkpointing" if "activation_checkpointing" in sig else "gradient_checkpointing": on}


def prepare_model(model: Any, cfg: TrainConfig) -> Any:
    """Wrap a model for training: a fresh LoRA adapter (seeded) or all parameters trainable."""
    import torch
    from transformers import set_seed

    if model.dtype != torch.float32 and cfg.method == "full":
        model = model.float()  # fp32 master weights; bf16 compute comes from autocast
    if cfg.method == "full":
        model.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    set_seed(cfg.seed)
    target = "all-linear" if list(cfg.lora_target) == ["all-linear"] else list(cfg.lora_target)
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
                      target_modules=target, task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    for p in model.parameters():  # LoRA weights in fp32 even on a bf16 base
        if p.requires_grad:
            p.data = p.data.float()
    return model


def keep_lora_inputs(model: Any) -> int:
    """Under bf16 autocast, let LoRA layers take their input as it comes (bf16) instead of casting it to their fp32
    weights' dtype: autocast casts it back to bf16 for the matmul anyway, so the two copies per LoRA layer and
    step (and the dropout on an fp32 copy) bought nothing — 10 % of a demo training step on a Sapphire Rapids
    CPU, same loss. Returns the number of layers changed.

    >>> from tests.tiny import make_tiny_model
    >>> keep_lora_inputs(prepare_model(make_tiny_model(), TrainConfig(data="x", out="y"))) > 0
    True
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    for m in layers:
        m.cast_input_dtype_enabled = False
    return len(layers)


def _prepared(model: Any, cfg: TrainConfig) -> tuple[Any, str]:
    """The model wrapped for training and the precision it trains in."""
    model, prec = prepare_model(model, cfg), _precision(cfg)
    if prec == "bf16":
        keep_lora_inputs(model)
    return model, prec


def train(cfg: TrainConfig, model: Any = None, tokenizer: Any = None, callbacks: Sequence[Any] = ()) -> Path:
    """Fine-tune on ``cfg.data`` and save to ``cfg.out``; returns the directory of the loadable final model.

    Args:
        cfg: the settings (``data`` and ``out`` are required).
        model, tokenizer: an already-loaded model (not yet wrapped) and its tokenizer; default: load ``cfg.model``.
        callbacks: extra ``transformers.TrainerCallback`` objects.
    """
    from rait.core import safety
    from rait.core.progress import train_progress
    from rait.stages.checkpoints import check_same_run, last_checkpoint, save_final
    from rait.stages.trainer import ListDataset, WeightedCollator, WeightedTrainer, tokenize_row

    if not cfg.data or not cfg.out:
        raise ConfigError("train: 'data' and 'out' are required")
    t0 = time.time()
    out = Path(cfg.out)
    rows = read_rows(cfg.data)
    safety.check_writable(out)  # before the model loads
    safety.clean_stale_temps(out)  # temporary files of a killed run
    model, tokenizer = _load(cfg, model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    examples = [tokenize_row(tokenizer, r, cfg.max_length, where=f"{cfg.data}:{r['_line']}") for r in rows]
    if not cfg.use_weights:
        for e in examples:
            e["weight"] = 1.0
    n_trunc = sum(e.pop("truncated") for e in examples)
    model.config.use_cache = False
    model, prec = _prepared(model, cfg)
    trainer = WeightedTrainer(
        model=model, args=_training_args(cfg, out, prec), train_dataset=ListDataset(examples),
        data_collator=WeightedCollator(pad_id, cfg.padding_free),
        loss_reduction=cfg.loss_reduction, trim_logits=cfg.trim_logits,
        callbacks=[train_progress(every=cfg.logging_steps), *callbacks],
        processing_class=tokenizer,
    )
    resume_from = None
    if cfg.resume == "auto":
        resume_from = last_checkpoint(out / "checkpoints")
        check_same_run(out / "checkpoints" / "rait_run.json", cfg, resume_from is not None, trainer)
    elif cfg.resume != "never":
        resume_from = Path(cfg.resume)
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    final = save_final(trainer, model, tokenizer, cfg, out)
    if trainer.is_world_process_zero():
        write_manifest(out, "train", to_dict(cfg),
                       {"data": {**file_info(cfg.data), "rows": len(rows), "truncated": n_trunc}},
                       {"train_runtime": result.metrics.get("train_runtime"), "wall": round(time.time() - t0, 2)},
                       {"model_dir": str(final), "seed": cfg.seed, "precision": prec,
                        "resumed_from": str(resume_from) if resume_from else None,
                        "processes": trainer.args.world_size,
                        "effective_batch": cfg.batch_size * cfg.grad_accum * trainer.args.world_size,
                        "steps": trainer.state.global_step,
                        "train_loss": run_loss(trainer.state.log_history, result.training_loss),
                        "samples_per_s": result.metrics.get("train_samples_per_second")})
        if not cfg.keep_checkpoints:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return final


def _load(cfg: TrainConfig, model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """The model and tokenizer to train: the ones passed in, else ``cfg.model`` loaded in float32 on the CPU."""
    if model is None:
        from rait.core.models import load_model

        model, loaded_tok = load_model(cfg.model, dtype="float32", device="cpu",
                                       trust_remote_code=cfg.trust_remote_code)
        tokenizer = tokenizer or loaded_tok
    if tokenizer is None:
        raise ConfigError("train: pass the tokenizer together with an already-loaded model")
    return model, tokenizer


def _training_args(cfg: TrainConfig, out: Path, prec: str) -> Any:
    """The ``transformers.TrainingArguments`` of a run (checkpoints under ``out/checkpoints``)."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        optim="adamw_torch",
        bf16=prec == "bf16",
        fp16=prec == "fp16",
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.seed,
        data_seed=cfg.seed,
        train_sampling_strategy=("group_by_length" if cfg.group_by_length
                                 else "random" if cfg.shuffle else "sequential"),
        **_ckpt_kw(cfg.gradient_checkpointing),
        save_strategy="steps" if cfg.save_steps > 0 else "no",
        save_steps=max(cfg.save_steps, 1),
        save_total_limit=cfg.save_total_limit,
        # every step's loss lands in log_history (kept in checkpoints): the loss over all steps after a resume
        logging_steps=1,
        report_to="none",
        remove_unused_columns=False,
        ddp_find_unused_parameters=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )


def run_loss(log_history: Sequence[dict[str, Any]], fallback: float) -> float:
    """Mean training loss over every optimizer step of the run, resumed parts included.

    ``log_history`` holds one ``loss`` per step (``logging_steps=1``) and is restored from the checkpoint on a
    resume, whereas the Trainer's own ``training_loss`` covers only the steps since the resume.

    >>> run_loss([{"loss": 1.0, "step": 1}, {"loss": 3.0, "step": 2}, {"train_loss": 9.0}], 0.0)
    2.0
    """
    per_step = {h["step"]: float(h["loss"]) for h in log_history if "loss" in h and "step" in h}
    return sum(per_step.values()) / len(per_step) if per_step else fallback


#: transformers / TRL argument names accepted beside rait's own (``--learning_rate`` = ``--lr``)
HF_NAMES = {"lr": ("learning_rate",), "epochs": ("num_train_epochs",), "batch_size": ("per_device_train_batch_size",),
            "grad_accum": ("gradient_accumulation_steps",), "out": ("output_dir",), "scheduler": ("lr_scheduler_type",),
            "model": ("model_name_or_path",)}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rait train``: one flag per TrainConfig field (and the transformers names of :data:`HF_NAMES`)."""
    p = subparsers.add_parser(
        "train", help="(weighted) SFT on a training set, LoRA or full",
        description="Fine-tune on TRL conversational rows; loss on the completion, times each row's weight.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, TrainConfig, aliases=HF_NAMES)
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(TrainConfig, args)
    final = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(final)
    return 0
