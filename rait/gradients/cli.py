"""``rait grads``: GRAIT per-sample LoRA gradient features (van / idk label sets) and their similarity blocks.

Usage::

    rait grads --table probe/table.jsonl --model default [--adapter warmup/] [--optimizer-state F] --out grads/
               [--dim 2048] [--shard 0/2] [--batch-size 16]      # one flag per GradsConfig field
    rait grads merge grads/            # join shards + similarities (automatic after the last shard)

Example:
    >>> from rait.gradients.cli import parse_shard
    >>> parse_shard("1/4")
    (1, 4)
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rait.core.artifacts import file_info
from rait.core.config import ConfigError, add_config_arguments, check_choices, config_from_args, option, to_dict
from rait.errors import RaitError


def parse_shard(s: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(x) for x in s.split("/"))
    except ValueError:
        raise RaitError(f"--shard {s!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise RaitError(f"--shard {s!r}: need 0 <= i < n")
    return i, n


def default_dim() -> int:
    """8192 (LESS) on a GPU, 2048 on CPU (docs/grait.md: cosine error ±0.022 vs ±0.011, 4x less work)."""
    import torch

    return 8192 if torch.cuda.is_available() else 2048


@dataclass
class GradsConfig:
    """Settings of ``rait grads``."""

    table: str = option("", "knowledge table (table.jsonl from `rait probe`)")
    model: str = option("default", "model spec (default: the embedded SmolLM2-135M-Instruct)")
    adapter: str | None = option(None, "warm-up LoRA adapter directory (peft); default: a fresh LoRA (see lora_*)")
    optimizer_state: str | None = option(None, "safetensors with <param>.exp_avg / .exp_avg_sq (Adam features)")
    out: str = option("", "output directory")
    dim: int | None = option(None, "projection dimension (default 8192 on GPU, 2048 on CPU)")
    projection: str = option("hashed", "projection kind", choices=("hashed", "dense"))
    seed: int = option(0, "projection (and fresh-LoRA init) seed")
    shard: str = option("0/1", "i/n: this process computes chunks k with k % n == i")
    shard_size: int = option(256, "items per chunk (unit of resume)")
    batch_size: int = option(16, "rows per forward/backward")
    threshold: float = option(0.5, "van labels: gold when correctness >= this")
    dtype: str = option("auto", "compute dtype (auto: bf16 autocast where fast)",
                        choices=("auto", "float32", "bfloat16"))
    max_length: int = option(2048, "token limit per row")
    lora_r: int = option(8, "fresh LoRA rank (no adapter)")
    lora_alpha: int = option(16, "fresh LoRA alpha")
    lora_targets: str = option("all-linear", "fresh LoRA target modules (comma list)")
    raw: bool = option(False, "store un-normalised features in van.npy / idk.npy")
    van_van: bool = option(False, "also write van_van.npy")
    no_merge: bool = option(False, "do not merge after the last chunk")

    def __post_init__(self) -> None:
        check_choices(self)
        parse_shard(self.shard)
        if self.batch_size < 1 or self.shard_size < 1 or (self.dim is not None and self.dim < 1):
            raise ConfigError("batch_size, shard_size and dim must be >= 1")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("grads", help="GRAIT per-sample LoRA gradient features and similarities",
                              description=__doc__.split("Example:")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="*", metavar="merge DIR", help="`merge DIR`: join finished shards of DIR")
    add_config_arguments(p, GradsConfig)
    p.set_defaults(func=_main)
    return p


def resolve_dtype(dtype: str) -> str:
    """``auto`` -> ``bfloat16`` where bf16 matmuls are fast (GPU, AMX CPU), else ``float32``."""
    if dtype != "auto":
        return dtype
    try:
        from rait.core.models import bf16_supported
    except ImportError:
        import torch
        return "bfloat16" if torch.cuda.is_available() else "float32"
    return "bfloat16" if bf16_supported() else "float32"


def load_featurizer(args: "GradsConfig"):
    """Model + LoRA + projector + featurizer from CLI arguments (imports torch/transformers lazily)."""
    import torch

    from rait.gradients.persample import GradFeaturizer, attach_lora, load_optimizer_state, lora_linears
    from rait.gradients.projection import Projector

    dtype = resolve_dtype(args.dtype)
    try:
        from rait.core.models import load_model
        model, tok = load_model(args.model, dtype="float32")
    except ImportError:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model, tok = AutoModelForCausalLM.from_pretrained(args.model), AutoTokenizer.from_pretrained(args.model)
    if args.adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, args.adapter)
    else:
        model = attach_lora(model, args.lora_r, args.lora_alpha,
                            args.lora_targets if args.lora_targets == "all-linear" else args.lora_targets.split(","),
                            seed=args.seed)
    device = next(model.parameters()).device
    state = None
    if args.optimizer_state:
        state = load_optimizer_state(args.optimizer_state, list(lora_linears(model)))
    proj = Projector(args.dim, seed=args.seed, kind=args.projection,
                     dtype=torch.bfloat16 if dtype == "bfloat16" else torch.float32, device=device)
    return GradFeaturizer(model, tok, proj, optimizer_state=state, dtype=dtype, batch_size=args.batch_size,
                          max_length=args.max_length)


def _main(args: argparse.Namespace) -> int:
    from rait.gradients import store

    cfg = config_from_args(GradsConfig, args)
    if args.action:
        if args.action[0] != "merge" or len(args.action) != 2:
            raise RaitError(f"unexpected arguments {' '.join(args.action)!r}; expected `rait grads merge DIR`")
        index = store.merge(args.action[1], normalize=not cfg.raw, van_van=cfg.van_van)
        print(f"merged {index['n']} rows x {index['dim']} dims into {args.action[1]}")
        return 0
    grads(cfg)
    return 0


def grads(cfg: GradsConfig) -> Path:
    """Compute this shard's feature chunks; merge (similarities, index, manifest) after the last one.

    Returns:
        The output directory.
    """
    from rait.core.artifacts import write_manifest
    from rait.gradients import store

    if not cfg.table or not cfg.out:
        raise RaitError("table and out are required (--table, --out; or `rait grads merge DIR`)")
    cfg = replace(cfg, dim=cfg.dim or default_dim(), dtype=resolve_dtype(cfg.dtype))
    table = store.read_table(cfg.table)
    shard = parse_shard(cfg.shard)
    config = {"model": cfg.model, "adapter": str(Path(cfg.adapter).resolve()) if cfg.adapter else None,
              "lora": None if cfg.adapter else {"r": cfg.lora_r, "alpha": cfg.lora_alpha,
                                                "targets": cfg.lora_targets, "init_seed": cfg.seed},
              "optimizer_state": str(Path(cfg.optimizer_state).resolve()) if cfg.optimizer_state else None,
              "projection": {"kind": cfg.projection, "dim": cfg.dim, "seed": cfg.seed},
              "dtype": cfg.dtype, "max_length": cfg.max_length,
              "loss": "token-mean CE over the assistant answer + end-of-turn"}
    t0 = time.time()
    done = store.compute(table, cfg.out, lambda: load_featurizer(cfg), config, shard=shard,
                         shard_size=cfg.shard_size, threshold=cfg.threshold,
                         log=lambda m: print(m, file=sys.stderr))
    left = store.pending(cfg.out)
    print(f"shard {shard[0]}/{shard[1]}: {len(done)} chunk(s) computed in {time.time() - t0:.1f}s; "
          f"{len(left)} chunk(s) pending overall")
    if not left and not cfg.no_merge:
        t1 = time.time()
        index = store.merge(cfg.out, normalize=not cfg.raw, van_van=cfg.van_van)
        write_manifest(cfg.out, "grads", to_dict(cfg), {"table": file_info(cfg.table)},
                       {"compute_last_call": round(t1 - t0, 3), "merge": round(time.time() - t1, 3)},
                       outputs={"n": index["n"], "dim": index["dim"]})
        print(f"merged {index['n']} rows x {index['dim']} dims into {cfg.out}")
    return Path(cfg.out)
