"""Per-sample LoRA gradient features: LESS-style batch-1 loop vs the batched path of rait.gradients.

The loop does what LESS ``collect_grad_reps`` does: one sample per forward/backward (HF loss with labels),
flatten the LoRA gradients into one P-vector, multiply by a materialised dense P x dim projection matrix. The
batched path is :class:`rait.gradients.persample.GradFeaturizer` (hooks, one backward per batch, block-wise
seeded projection). Both use the *same* projection (the loop's matrix is the batched projector's effective
matrix), so their features must agree; the script reports max abs diff and min cosine.

The dense matrix is P x dim in bf16 (2.4M x 512 x 2 B = 2.5 GB for SmolLM2-135M at r=8 all-linear): ``--dim``
defaults to 512 so it fits next to other work on a 24 GB machine. Model load and matrix materialisation are
not timed.

Usage:
    python bench/grads_speed.py [--model default] [--n 64] [--dim 512] [--batch-size 16] [--out bench/out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rait.core.prompts import build_messages  # noqa: E402
from rait.data.schema import QAItem  # noqa: E402
from rait.gradients.persample import GradFeaturizer, attach_lora, encode, lora_linears  # noqa: E402
from rait.gradients.projection import Projector  # noqa: E402

TRIVIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "triviaqa" / "train.jsonl"


def items(n: int) -> list[QAItem]:
    if TRIVIA.exists():
        rows = [json.loads(line) for line, _ in zip(TRIVIA.open(), range(n))]
        return [QAItem(id=str(r["id"]), question=r["question"], answers=r["answers"]) for r in rows]
    return [QAItem(id=str(i), question=f"Who was the person number {i} in the list of famous people?",
                   answers=[f"Person {i}"]) for i in range(n)]


def loop_features(model, tok, convs, names, params, mat, dtype):
    out = []
    for c in convs:
        ids, n_prompt = encode(tok, c)
        x = torch.tensor([ids])
        labels = x.clone()
        labels[0, :n_prompt] = -100
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            loss = model(input_ids=x, labels=labels).loss
        grads = torch.autograd.grad(loss, params)
        flat = torch.cat([g.flatten() for g in grads])
        out.append((flat.to(mat.dtype) @ mat).float() / 1.0)
    return torch.stack(out).numpy()


def _parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("Usage:")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float32"),
                    help="auto: bf16 only where this CPU runs it fast (never forced on an AVX2-only CPU)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    return ap.parse_args(argv)


def _lora_model(name: str):
    """The model with a warm-up-like LoRA adapter (non-zero B, so that every LoRA gradient is non-zero), in eval mode."""
    from rait.core.models import load_model

    model, tok = load_model(name, dtype="float32", device="cpu")
    model = attach_lora(model, r=8, alpha=16, targets="all-linear", seed=0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.01)
    model.eval()
    return model, tok


def main(argv=None) -> int:
    args = _parse(argv)
    torch.manual_seed(0)
    if args.dtype == "auto":
        from rait.core.models import resolve_dtype

        args.dtype = str(resolve_dtype("auto")).replace("torch.", "")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = _lora_model(args.model)
    convs = []
    for it in items(args.n):
        convs.append(build_messages(it, "refuse", system_prompt="", answer=it.answers[0]))
    pdt = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    proj = Projector(args.dim, seed=0, dtype=pdt)
    fz = GradFeaturizer(model, tok, proj, dtype=args.dtype, batch_size=args.batch_size)
    lin = lora_linears(model)
    names = list(lin)
    params = [lin[n].weight for n in names]
    t = time.time()
    mat = torch.cat([proj.matrix(n, lin[n].weight.numel()).to(pdt) for n in names])
    t_mat = time.time() - t
    print(f"dense matrix {t_mat:.1f}s; timing the batched path", file=sys.stderr, flush=True)
    fz.features(convs[:2])  # warm-up (allocator, projection cache)
    t = time.time()
    fb = fz.features(convs)
    t_batched = time.time() - t
    print(f"batched {t_batched:.1f}s; timing the batch-1 loop", file=sys.stderr, flush=True)
    loop_features(model, tok, convs[:1], names, params, mat, args.dtype)
    t = time.time()
    fl = loop_features(model, tok, convs, names, params, mat, args.dtype)
    t_loop = time.time() - t
    cos = (fb * fl).sum(1) / np.linalg.norm(fb, axis=1) / np.linalg.norm(fl, axis=1)
    lengths = [len(encode(tok, c)[0]) for c in convs]
    res = {
        "model": args.model, "n": args.n, "dim": args.dim, "dtype": args.dtype, "batch_size": args.batch_size,
        "lora_params": fz.n_params, "model_params": sum(x.numel() for x in model.parameters()),
        "tokens_per_row_mean": float(np.mean(lengths)),
        "threads": torch.get_num_threads(), "dense_matrix_gb": mat.numel() * mat.element_size() / 1e9,
        "dense_matrix_build_s": round(t_mat, 1),
        "loop_samples_per_s": args.n / t_loop, "batched_samples_per_s": args.n / t_batched,
        "speedup": t_loop / t_batched,
        "max_abs_diff": float(np.abs(fb - fl).max()), "max_abs_feature": float(np.abs(fl).max()),
        "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
    }
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    assert res["min_cosine"] > 0.99, "batched and loop features disagree"
    return 0


if __name__ == "__main__":
    sys.exit(main())
