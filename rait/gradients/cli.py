"""``rait grads``: GRAIT per-sample LoRA gradient features (van / idk label sets) and their similarity blocks.

Usage::

    rait grads --table probe/table.jsonl --model default [--adapter warmup/] [--optimizer-state F] --out grads/
               [--dim 2048] [--shard 0/2] [--batch-size 16]
    rait grads merge grads/            # join shards + similarities (automatic after the last shard)

Example:
    >>> from rait.gradients.cli import parse_shard
    >>> parse_shard("1/4")
    (1, 4)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("grads", help="GRAIT per-sample LoRA gradient features and similarities",
                              description=__doc__.split("Example:")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="*", metavar="merge DIR", help="`merge DIR`: join finished shards of DIR")
    p.add_argument("--table", help="knowledge table (table.jsonl from `rait probe`)")
    p.add_argument("--model", default="default", help="model spec (default: the embedded SmolLM2-135M-Instruct)")
    p.add_argument("--adapter", help="warm-up LoRA adapter directory (peft); default: a fresh LoRA (see --lora-*)")
    p.add_argument("--optimizer-state", help="safetensors with <param>.exp_avg / .exp_avg_sq (Adam features)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--dim", type=int, help="projection dimension (default 8192 on GPU, 2048 on CPU)")
    p.add_argument("--projection", default="hashed", choices=("hashed", "dense"), help="projection kind")
    p.add_argument("--seed", type=int, default=0, help="projection (and fresh-LoRA init) seed")
    p.add_argument("--shard", default="0/1", help="i/n: this process computes chunks k with k %% n == i")
    p.add_argument("--shard-size", type=int, default=256, help="items per chunk (unit of resume)")
    p.add_argument("--batch-size", type=int, default=16, help="rows per forward/backward")
    p.add_argument("--threshold", type=float, default=0.5, help="van labels: gold when correctness >= this")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16"),
                   help="compute dtype (auto: bf16 autocast where fast)")
    p.add_argument("--max-length", type=int, default=2048, help="token limit per row")
    p.add_argument("--lora-r", type=int, default=8, help="fresh LoRA rank (no --adapter)")
    p.add_argument("--lora-alpha", type=int, default=16, help="fresh LoRA alpha")
    p.add_argument("--lora-targets", default="all-linear", help="fresh LoRA target modules (comma list)")
    p.add_argument("--raw", action="store_true", help="store un-normalised features in van.npy / idk.npy")
    p.add_argument("--van-van", action="store_true", help="also write van_van.npy")
    p.add_argument("--no-merge", action="store_true", help="do not merge after the last chunk")
    p.set_defaults(func=run)
    return p


def resolve_dtype(dtype: str) -> str:
    """``auto`` -> ``bfloat16`` where bf16 matmuls are fast (GPU, AMX CPU), else ``float32``."""
    if dtype != "auto":
        return dtype
    try:
        from rait.models import bf16_supported
    except ImportError:
        import torch
        return "bfloat16" if torch.cuda.is_available() else "float32"
    return "bfloat16" if bf16_supported() else "float32"


def load_featurizer(args: argparse.Namespace):
    """Model + LoRA + projector + featurizer from CLI arguments (imports torch/transformers lazily)."""
    import torch

    from rait.gradients.persample import GradFeaturizer, attach_lora, lora_linears, load_optimizer_state
    from rait.gradients.projection import Projector

    dtype = resolve_dtype(args.dtype)
    try:
        from rait.models import load_model
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


def run(args: argparse.Namespace) -> int:
    from rait.gradients import store

    if args.action:
        if args.action[0] != "merge" or len(args.action) != 2:
            raise RaitError(f"unexpected arguments {' '.join(args.action)!r}; expected `rait grads merge DIR`")
        index = store.merge(args.action[1], normalize=not args.raw, van_van=args.van_van)
        print(f"merged {index['n']} rows x {index['dim']} dims into {args.action[1]}")
        return 0
    if not args.table or not args.out:
        raise RaitError("--table and --out are required (or `rait grads merge DIR`)")
    args.dim = args.dim or default_dim()
    args.dtype = resolve_dtype(args.dtype)
    table = store.read_table(args.table)
    shard = parse_shard(args.shard)
    config = {"model": args.model, "adapter": str(Path(args.adapter).resolve()) if args.adapter else None,
              "lora": None if args.adapter else {"r": args.lora_r, "alpha": args.lora_alpha,
                                                 "targets": args.lora_targets, "init_seed": args.seed},
              "optimizer_state": str(Path(args.optimizer_state).resolve()) if args.optimizer_state else None,
              "projection": {"kind": args.projection, "dim": args.dim, "seed": args.seed},
              "dtype": args.dtype, "max_length": args.max_length, "loss": "token-mean CE over the assistant answer + end-of-turn"}
    t0 = time.time()
    done = store.compute(table, args.out, lambda: load_featurizer(args), config, shard=shard,
                         shard_size=args.shard_size, threshold=args.threshold,
                         log=lambda m: print(m, file=sys.stderr))
    left = store.pending(args.out)
    print(f"shard {shard[0]}/{shard[1]}: {len(done)} chunk(s) computed in {time.time() - t0:.1f}s; "
          f"{len(left)} chunk(s) pending overall")
    if not left and not args.no_merge:
        index = store.merge(args.out, normalize=not args.raw, van_van=args.van_van)
        (Path(args.out) / "manifest.json").write_text(json.dumps(
            {"stage": "grads", "args": {k: v for k, v in vars(args).items() if k != "func"},
             "n": index["n"], "dim": index["dim"], "seconds_last_call": round(time.time() - t0, 3)}, indent=1))
        print(f"merged {index['n']} rows x {index['dim']} dims into {args.out}")
    return 0
