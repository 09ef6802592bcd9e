"""Process-wide settings of torch's native CPU libraries, applied before their first use (no torch import here).

oneDNN, which torch's bf16 CPU matmuls go through, keeps every primitive it creates — one per distinct matmul shape
— in a cache of 1,024 entries, and an entry holds memory that grows with the shape (one 576 x 1536 bf16 linear layer
called with 2, 3, …, 299 rows grew the heap by 163 MB, 96 MB with this cap). Decoding drops finished rows and
padding-free training packs rows of every length, so nearly every step brings shapes not seen before and the cache
fills: :func:`bound_kernel_caches` caps it. Measured on the probe stage of ``configs/triviaqa_nq.yaml`` (384
questions, SmolLM2-135M in bf16, Sapphire Rapids, docs/speed.md): peak RSS 2.04 vs 2.49 GB at the same speed (114 vs
114 s). ideep's cache of matmul computations (``LRU_CACHE_CAPACITY``, 1,024 by default) also grows with the shapes,
but capping it re-creates work the decoding loop reuses across batches (the same probe: 121 s, 2.25 GB), so it is
left alone. oneDNN reads its variable once, at its first primitive in the process, so ``rait``'s entry point,
:func:`rait.core.models.load_model` and the ``hf`` backend call this first thing; a library user who has already run
a bf16 matmul in the process keeps oneDNN's default.

Example:
    >>> import os
    >>> from rait.core.runtime import bound_kernel_caches
    >>> _ = bound_kernel_caches()
    >>> "ONEDNN_PRIMITIVE_CACHE_CAPACITY" in os.environ
    True
"""

from __future__ import annotations

import os

#: oneDNN's variable for its primitive cache, and its older name (honoured when the user set it)
KERNEL_CACHE_VARS = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY")
#: entries kept: a decoder step needs a handful of shapes per pass (one per kind of linear layer)
KERNEL_CACHE_CAPACITY = 64


def bound_kernel_caches(capacity: int = KERNEL_CACHE_CAPACITY) -> bool:
    """Cap oneDNN's primitive cache at ``capacity`` entries unless the user set its size; True if set now.

    Args:
        capacity: entries (0 turns the cache off, which makes every matmul create its primitive again).
    """
    if any(n in os.environ for n in KERNEL_CACHE_VARS):
        return False
    os.environ[KERNEL_CACHE_VARS[0]] = str(int(capacity))
    return True
