"""Checkpoints and saved models of ``rait train``: the newest complete Trainer checkpoint (resume), the stamp that
refuses resuming another run's checkpoints, the final model / LoRA adapter, and Adam's moments
(``optimizer.safetensors``, read by GRAIT's gradient preconditioning).

Example:
    >>> import tempfile, pathlib
    >>> from rait.stages.checkpoints import last_checkpoint
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in (2, 10, 12):
    ...     (d / f"checkpoint-{n}").mkdir()
    >>> _ = (d / "checkpoint-2" / "trainer_state.json").write_text("{}")
    >>> _ = (d / "checkpoint-10" / "trainer_state.json").write_text("{}")
    >>> last_checkpoint(d).name  # checkpoint-12 is incomplete (a run killed while saving)
    'checkpoint-10'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rait.core.artifacts import atomic_write_text, sha256_file
from rait.core.config import ConfigError, to_dict

if TYPE_CHECKING:
    from rait.stages.train import TrainConfig


def last_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest *complete* ``checkpoint-N`` (has trainer_state.json) under ``ckpt_dir``."""
    if not ckpt_dir.is_dir():
        return None
    done = [p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
            and (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def save_optimizer_state(trainer: Any, path: Path) -> None:
    """Adam moments per trainable parameter as safetensors: ``<param name>.exp_avg`` / ``.exp_avg_sq``.

    Names are those of ``model.named_parameters()`` of the trained (peft) model, e.g.
    ``base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight``; metadata holds ``step``, ``lr``,
    ``betas``, ``eps``, ``weight_decay``.
    """
    from safetensors.torch import save_file

    opt = trainer.optimizer
    opt = getattr(opt, "optimizer", opt)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    tensors, step = {}, 0
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            if "exp_avg" not in st or id(p) not in names:
                continue
            tensors[f"{names[id(p)]}.exp_avg"] = st["exp_avg"].detach().float().cpu().contiguous()
            tensors[f"{names[id(p)]}.exp_avg_sq"] = st["exp_avg_sq"].detach().float().cpu().contiguous()
            step = int(float(st.get("step", 0)))
    g = opt.param_groups[0]
    meta = {"step": str(step), "lr": str(g.get("lr")), "betas": json.dumps(list(g.get("betas", (0.9, 0.999)))),
            "eps": str(g.get("eps")), "weight_decay": str(g.get("weight_decay")), "format": "rait-adam-moments-v1"}
    save_file(tensors, str(path), metadata=meta)


def check_same_run(stamp: Path, cfg: TrainConfig, resuming: bool, trainer: Any) -> None:
    """Refuse to resume checkpoints made from other data or settings; stamp a fresh run."""
    keys = {k: v for k, v in to_dict(cfg).items() if k not in ("resume", "logging_steps", "keep_checkpoints")}
    run = {"data_sha256": sha256_file(cfg.data), "config": keys}
    if resuming and stamp.exists() and json.loads(stamp.read_text()) != run:
        raise ConfigError(f"{stamp.parent} holds checkpoints of a run with other data or settings; "
                          "delete it or pass --set resume=never")
    if trainer.is_world_process_zero() and not (resuming and stamp.exists()):
        atomic_write_text(stamp, json.dumps(run, indent=2) + "\n")


def save_final(trainer: Any, model: Any, tokenizer: Any, cfg: TrainConfig, out: Path) -> Path:
    """Write the final model(s) on the main process; return the loadable model directory."""
    import torch

    main = trainer.is_world_process_zero()
    dtype = getattr(torch, cfg.save_dtype)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if cfg.save_optimizer:
            save_optimizer_state(trainer, out / "optimizer.safetensors")
    final = out
    if cfg.method == "lora":
        if cfg.save in ("adapter", "both") and main:
            from rait.core.models import record_adapter_base

            model.save_pretrained(out / "adapter")
            tokenizer.save_pretrained(out / "adapter")
            record_adapter_base(out / "adapter", cfg.model)  # the spec the user gave, not a cache path
        if cfg.save == "adapter":
            final = out / "adapter"
        elif main:
            merged = model.merge_and_unload()
            merged.to(dtype).save_pretrained(out)
            tokenizer.save_pretrained(out)
    elif main:
        model.to(dtype).save_pretrained(out)
        tokenizer.save_pretrained(out)
    return final
