"""Attention over a padding-free batch without a T × T mask: each sample attends only to itself.

A padding-free micro-batch (``WeightedCollator(padding_free=True)``) is one row holding every sample back to back,
with ``position_ids`` restarting at 0 at each sample. The linear layers, norms and MLPs — nearly all of a training
step — then run on real tokens only (on TriviaQA rows, batches of 16 carried 30 % padding). The attention must not
cross samples: GPU flash-attention reads the boundaries from ``position_ids``; transformers' SDPA and eager kernels
instead build a block-diagonal T × T mask and attend over the whole packed row, which made a CPU step slower than
the padded one. :func:`packed_attention` (registered as ``"rait_packed"``) lays the packed queries, keys and values
out as one padded block per sample for the attention only, runs the eager kernel on it (SDPA's causal kernel for
samples longer than ``EAGER_LIMIT`` tokens) and gathers the outputs back into the packed row. Same arithmetic as
the padded batch: each query attends to the keys of its own sample up to its position.

Example:
    >>> import torch
    >>> q, k = torch.randn(1, 2, 5, 4), torch.randn(1, 1, 5, 4)
    >>> pos = torch.tensor([[0, 1, 2, 0, 1]])          # two samples of 3 and 2 tokens
    >>> m = torch.nn.Module(); m.num_key_value_groups, m.training = 2, False
    >>> out, _ = packed_attention(m, q, k, k, None, scaling=0.5, position_ids=pos)
    >>> alone, _ = packed_attention(m, q[:, :, 3:], k[:, :, 3:], k[:, :, 3:], None, scaling=0.5,
    ...                             position_ids=pos[:, 3:])
    >>> out.shape, torch.allclose(out[:, 3:], alone, atol=1e-6)
    (torch.Size([1, 5, 2, 4]), True)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["PACKED", "EAGER_LIMIT", "packed_attention", "register", "supports"]

#: the attention-implementation name under which :func:`packed_attention` is registered in transformers
PACKED = "rait_packed"
#: samples up to this many tokens use the eager kernel (it keeps the L × L probabilities for the backward)
EAGER_LIMIT = 256
_last: list = [None, None]  # (position_ids the layout was computed for, layout): one forward's 30 layers share it


def _layout(position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index ``[N, L]`` of each sample's tokens in the packed row (clamped past a sample's end) and its mask."""
    if _last[0] is position_ids:
        return _last[1]
    pos = position_ids[0]
    start = torch.ones_like(pos, dtype=torch.bool)
    start[1:] = pos[1:] - pos[:-1] != 1
    starts = start.nonzero().flatten()
    lengths = torch.diff(starts, append=torch.tensor([pos.numel()], device=pos.device))
    offs = torch.arange(int(lengths.max()), device=pos.device)
    valid = offs < lengths[:, None]
    index = torch.minimum(starts[:, None] + offs, (starts + lengths - 1)[:, None])
    _last[:] = [position_ids, (index, valid)]
    return index, valid


def packed_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                     position_ids: torch.Tensor | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Causal attention of a packed row ``[1, H, T, D]``, sample by sample; returns ``([1, T, H, D], None)``.
    Without ``position_ids`` the row is one sample."""
    if query.shape[0] != 1 or attention_mask is not None:
        raise ValueError(f"{PACKED} attention takes one packed row without a padding mask, "
                         f"got {query.shape[0]} rows{' and a mask' if attention_mask is not None else ''}")
    if position_ids is None:
        position_ids = torch.arange(query.shape[2], device=query.device)[None]
    index, valid = _layout(position_ids)
    groups = getattr(module, "num_key_value_groups", query.shape[1] // key.shape[1])
    q = query[0][:, index].transpose(0, 1)  # [N, H, L, D]
    k = key[0][:, index].transpose(0, 1).repeat_interleave(groups, dim=1)
    v = value[0][:, index].transpose(0, 1).repeat_interleave(groups, dim=1)
    p = dropout if getattr(module, "training", False) else 0.0
    n = q.shape[2]
    if n <= EAGER_LIMIT:
        w = torch.matmul(q, k.transpose(2, 3)) * (scaling if scaling is not None else q.shape[-1] ** -0.5)
        w = w.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), torch.finfo(w.dtype).min)
        w = F.dropout(F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype), p=p, training=p > 0)
        out = torch.matmul(w, v)
    else:
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, scale=scaling)
    return out.transpose(1, 2)[valid].unsqueeze(0), None  # [N, L, H, D] -> [1, T, H, D]


def supports(config: Any) -> bool:
    """Whether a model's attention is plain causal self-attention that :func:`packed_attention` reproduces:
    every layer full attention (no sliding window), no logit soft-capping, no attention sinks."""
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    types = getattr(cfg, "layer_types", None) or ["full_attention"]
    if any(t != "full_attention" for t in types):
        return False
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return False
    return not any(getattr(cfg, a, None) for a in ("attn_logit_softcapping", "attention_sink", "sinks"))


def register() -> str:
    """Register :func:`packed_attention` with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED, packed_attention)
    return PACKED
