"""Frozen weights held in the autocast dtype while a model trains or computes gradients under autocast.

Under ``torch.autocast(dtype=bfloat16)`` every ``nn.Linear`` casts its fp32 weight to bf16 on each call; autocast
caches that cast only for weights that require grad, so the frozen base weights of a LoRA model are converted
again at every forward pass (about 5 % of a LoRA training step of SmolLM2-135M on a Sapphire Rapids CPU; see
docs/speed.md). :func:`frozen_linears_in` converts them once for the duration of
a block and puts the fp32 tensors back afterwards. The arithmetic is unchanged: autocast would round the same fp32
values to the same bf16 values before the same matmul; norms, embeddings and the output projection (tied to the
embeddings in many small models) keep their fp32 weights.

Example:
    >>> import torch
    >>> lin = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False)).requires_grad_(False)
    >>> with frozen_linears_in(lin, torch.bfloat16) as n:
    ...     (n, lin[0].weight.dtype)
    (1, torch.bfloat16)
    >>> lin[0].weight.dtype
    torch.float32
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

__all__ = ["ShortRowAttention", "frozen_linears_in"]


@contextmanager
def frozen_linears_in(model: Any, dtype: torch.dtype) -> Iterator[int]:
    """Hold the weights (and biases) of frozen ``nn.Linear`` layers in ``dtype`` inside the block; yields how many
    layers were converted. Trainable weights, the output embeddings and non-floating weights are left alone, and
    every converted tensor gets its original data back on exit (also after an exception), so a model saved or
    merged afterwards is the fp32 model.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    held: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    try:
        for mod in model.modules():
            if not isinstance(mod, torch.nn.Linear) or mod is head or mod.weight.requires_grad:
                continue
            if not mod.weight.is_floating_point() or mod.weight.dtype == dtype:
                continue
            for p in (mod.weight, mod.bias):
                if p is not None and not p.requires_grad:
                    held.append((p, p.data))
                    p.data = p.data.to(dtype)
        yield sum(1 for p, _ in held if p.dim() == 2)
    finally:
        for p, data in held:
            p.data = data


class ShortRowAttention:
    """Eager attention on CPU for batches of short rows, the model's own kernel (SDPA, flash) otherwise, and
    sample-by-sample attention for padding-free (packed) batches.

    On a CPU, SDPA's flash-attention *backward* is slow for short rows: a LoRA training step of 16 QA rows of
    ~30 tokens spent 16 % of its time there, and the eager kernel (two small batched matmuls and a softmax) made the
    step 1.2× faster (Sapphire Rapids, bf16). Eager attention keeps the T × T probabilities for the backward, so
    rows longer than ``limit`` tokens keep the model's own kernel (16 MMLU rows of ~600 tokens needed 22 GB).
    A packed row gets :func:`rait.core.packed.packed_attention` unless the model's own kernel is a flash-attention
    one (which reads the sample boundaries itself) or the model's attention is not plain causal
    (:func:`rait.core.packed.supports`). Used by the trainer and the gradient features, which switch per batch
    with :meth:`pick`.

    >>> from tests.tiny import make_tiny_model
    >>> att = ShortRowAttention(make_tiny_model())
    >>> att.pick(30, "cpu"), att.pick(600, "cpu"), att.pick(30, "cuda") == att.own, att.pick(600, "cpu", packed=True)
    ('eager', 'sdpa', True, 'rait_packed')
    """

    def __init__(self, model: Any, limit: int = 256):
        from rait.core import packed

        model = getattr(model, "module", model)  # DistributedDataParallel
        self.base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.own = getattr(self.base.config, "_attn_implementation", None) or "sdpa"
        self.current, self.limit = self.own, limit
        self.packed = packed.register() if packed.supports(self.base.config) and "flash" not in self.own else None

    def pick(self, longest: int, device_type: str, packed: bool = False) -> str:
        """Switch the model to the kernel for a batch whose rows are ``longest`` tokens (``packed``: one row of
        samples back to back, ``position_ids`` restarting at each); returns its name."""
        if packed and self.packed:
            want = self.packed
        else:
            want = "eager" if device_type == "cpu" and longest <= self.limit else self.own
        if want != self.current:
            self.base.set_attn_implementation(want)
            self.current = want
        return want

    def restore(self) -> None:
        """Put the model's own kernel back."""
        self.pick(self.limit + 1, "")
