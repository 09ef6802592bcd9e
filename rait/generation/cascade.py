"""Shared-prefix ("cascade") attention for sampling: a prefix common to every row is cached once, not per row.

When the prompts of a batch share a prefix — the system turn and the papers' few-shot turns, 152 of the demo
probe's ~170 tokens — :class:`rait.generation.hf.HFBackend` prefills it once. With a plain KV cache its keys and
values are then copied into every row (k samples × prompts: 192 rows), and every decoding step reads all those
copies. Here the prefix's keys and values stay one ``[1, heads, P, dim]`` block per layer
(:class:`CascadeLayer`), and :func:`cascade_attention` attends to it with one matrix product for all rows and
heads of a key/value group (the rows folded into the matrix's M dimension, as in Hydragen, arXiv 2402.05099),
next to the per-row part of the cache; one softmax over both parts gives the same attention as the full cache.

Example:
    >>> import torch
    >>> q, k, v = torch.randn(3, 4, 2, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)  # 3 rows, prefix 5
    >>> ks, vs = torch.randn(3, 2, 2, 8), torch.randn(3, 2, 2, 8)                            # own 2 tokens each
    >>> mask = torch.ones(3, 1, 2, 7, dtype=torch.bool).tril(5)
    >>> out = attend(q, (k, v), (ks, vs), mask, scaling=0.35)
    >>> full = torch.nn.functional.scaled_dot_product_attention(
    ...     q, torch.cat([k.expand(3, -1, -1, -1), ks], 2).repeat_interleave(2, 1),
    ...     torch.cat([v.expand(3, -1, -1, -1), vs], 2).repeat_interleave(2, 1), attn_mask=mask, scale=0.35)
    >>> torch.allclose(out, full.transpose(1, 2), atol=1e-5)
    True
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from rait.generation.cache import KVArena, ReservedLayer

__all__ = ["CASCADE", "CascadeLayer", "active", "attend", "capturing", "cascade_attention", "cascade_cache",
           "is_cascade", "register"]

#: the attention-implementation name under which :func:`cascade_attention` is registered in transformers
CASCADE = "rait_cascade"
_ACTIVE: list = [None]  # the cache whose prefix the attention reads (set by :func:`active`)


class CascadeLayer(ReservedLayer):
    """A :class:`ReservedLayer` whose first ``P`` positions, common to all rows, are held once.

    While :attr:`capturing`, :meth:`update` keeps the keys/values it gets as the prefix; afterwards it stores each
    row's own positions as a ``ReservedLayer`` does (repeat and select touch only those). ``get_seq_length`` counts
    both, so transformers builds masks over prefix + own positions.
    """

    def __init__(self, capacity: int, arena: KVArena | None = None, index: int = 0):
        super().__init__(capacity, arena, index)
        self.capturing = False
        self.prefix: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states, value_states, *args, **kwargs):
        if self.capturing:
            self.prefix = (key_states, value_states)
            return key_states, value_states
        return super().update(key_states, value_states, *args, **kwargs)

    def get_seq_length(self) -> int:
        p = self.prefix[0].shape[-2] if self.prefix is not None else 0
        return p + super().get_seq_length()


def cascade_cache(n_layers: int, capacity: int, arena: KVArena | None = None):
    """A transformers ``Cache`` of :class:`CascadeLayer` layers (``capacity``: own positions per row)."""
    from transformers.cache_utils import Cache

    return Cache(layers=[CascadeLayer(capacity, arena, i) for i in range(n_layers)])


def is_cascade(cache: Any) -> bool:
    """Whether ``cache`` holds its shared prefix once (:func:`cascade_cache`)."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and isinstance(layers[0], CascadeLayer)


@contextlib.contextmanager
def active(model: Any, cache: Any) -> Iterator[None]:
    """Within the block, ``model`` attends with :func:`cascade_attention`, reading ``cache``'s prefix (nothing
    changes when ``cache`` is not a :func:`cascade_cache`)."""
    if not is_cascade(cache):
        yield
        return
    own = model.config._attn_implementation
    model.set_attn_implementation(register())
    _ACTIVE[0] = cache
    try:
        yield
    finally:
        _ACTIVE[0] = None
        model.set_attn_implementation(own)


@contextlib.contextmanager
def capturing(cache: Any) -> Iterator[None]:
    """Within the block, a forward pass stores its keys and values as ``cache``'s shared prefix and attends as
    plain causal attention (one row: the prefix itself)."""
    before = _ACTIVE[0]
    _ACTIVE[0] = None
    for lay in cache.layers:
        lay.capturing = True
    try:
        yield
    finally:
        for lay in cache.layers:
            lay.capturing = False
        _ACTIVE[0] = before


def attend(query: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor], own: tuple[torch.Tensor, torch.Tensor],
           mask: torch.Tensor | None, scaling: float) -> torch.Tensor:
    """Attention of ``query`` ``[R, H, L, D]`` over a shared ``prefix`` (keys, values ``[1, G, P, D]``) and each
    row's ``own`` keys and values ``[R, G, S, D]`` (G key/value heads); ``mask``: ``[R, 1, L, P + S]``, True =
    attend, or None (every query sees the prefix and its own positions causally). Returns ``[R, L, H, D]``."""
    r, h, n, d = query.shape
    kp, vp = prefix
    ks, vs = own
    g, p, s = kp.shape[1], kp.shape[2], ks.shape[2]
    q = query.reshape(r, g, (h // g) * n, d)  # the heads of one key/value group next to each other
    qp = q.transpose(0, 1).reshape(g, r * (h // g) * n, d)  # every row of a group in one matrix
    f = torch.float32  # scores in fp32, as SDPA's kernels keep them (a bf16 score matrix moved greedy answers)
    sp = torch.matmul(qp.to(f), kp[0].transpose(1, 2).to(f)).view(g, r, (h // g) * n, p).transpose(0, 1)
    ss = torch.matmul(q.to(f), ks.transpose(2, 3).to(f))
    w = torch.cat([sp, ss], dim=-1) * scaling  # [R, G, (H/G)·L, P + S]
    if mask is None and n > 1:
        mask = torch.ones(n, p + s, dtype=torch.bool, device=query.device).tril(p + s - n)[None, None]
    if mask is not None:
        w = w.view(r, g, h // g, n, p + s).masked_fill(~mask[:, :, None].bool(), torch.finfo(w.dtype).min)
        w = w.view(r, g, (h // g) * n, p + s)
    w = torch.softmax(w, dim=-1).to(query.dtype)
    wp = w[..., :p].transpose(0, 1).reshape(g, r * (h // g) * n, p)
    out = torch.matmul(wp, vp[0]).view(g, r, (h // g) * n, d).transpose(0, 1) + torch.matmul(w[..., p:], vs)
    return out.reshape(r, h, n, d).transpose(1, 2).contiguous()


def cascade_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                      **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention function: :func:`attend` with the active cache's prefix for this layer; SDPA when
    no prefix is active (the prefix's own forward pass, or a model called outside :func:`active`)."""
    cache = _ACTIVE[0]
    prefix = cache.layers[module.layer_idx].prefix if cache is not None else None
    if prefix is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    return attend(query, prefix, (key, value), attention_mask,
                  scaling if scaling is not None else query.shape[-1] ** -0.5), None


def register() -> str:
    """Register :func:`cascade_attention` (and SDPA's mask builder for it) with transformers; returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(CASCADE, cascade_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(CASCADE, sdpa_mask)
    return CASCADE
