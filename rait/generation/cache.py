"""Memory-allocator setting that makes CPU decoding with a growing KV cache fast.

transformers' dynamic KV cache grows by ``torch.cat`` every generated token; each step allocates fresh tensors of
tens of MB. glibc serves such sizes with ``mmap`` and returns them with ``munmap``, so every step page-faults the
whole cache again — measured here, 12 decode steps of 320 rows took 75 s instead of 4.4 s. :func:`keep_freed_memory`
raises glibc's mmap threshold so large blocks come from (and return to) the heap.

Example:
    >>> from rait.generation.cache import keep_freed_memory
    >>> keep_freed_memory() in (True, False)
    True
"""

from __future__ import annotations

import ctypes
import functools


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Ask glibc to serve large allocations from the heap and keep freed memory; False if not on glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok_mmap = libc.mallopt(m_mmap_threshold, 1 << 30)
    ok_trim = libc.mallopt(m_trim_threshold, (1 << 31) - 1)
    return bool(ok_mmap and ok_trim)


def release_freed_memory() -> bool:
    """Return the heap's free memory to the OS (glibc ``malloc_trim``); False if not on glibc.

    :func:`keep_freed_memory` makes freed tensors stay in the heap for reuse, which is what a sampling loop wants;
    between the stages of one ``rait run`` process it would keep every stage's peak resident for the rest of the
    run, so the pipeline calls this after each stage.
    """
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    libc.malloc_trim(0)
    return True


def _dynamic_layer() -> type:
    from transformers.cache_utils import DynamicLayer

    return DynamicLayer


class ReservedLayer(_dynamic_layer()):  # type: ignore[misc]
    """A KV-cache layer whose storage for ``capacity`` positions is allocated once, at the prefill.

    transformers' ``DynamicLayer`` grows by ``torch.cat`` every decoding step, which copies the whole cache (for
    k samples of a 3-shot prompt: ~190 rows x ~200 positions x 30 layers) and holds two copies at the peak. This
    layer writes each new position into its reserved slot and hands attention a view of the filled part, so a
    step copies only the new keys/values and the peak is one cache. Batch repeat / select (prefix sharing, early
    drop) work as in ``DynamicLayer``.

    >>> import torch
    >>> lay = ReservedLayer(capacity=4)
    >>> k, v = lay.update(torch.ones(2, 1, 3, 8), torch.ones(2, 1, 3, 8))
    >>> k, v = lay.update(torch.zeros(2, 1, 1, 8), torch.zeros(2, 1, 1, 8))
    >>> tuple(k.shape), lay.get_seq_length(), float(k[:, :, 3].abs().sum())
    ((2, 1, 4, 8), 4, 0.0)
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = int(capacity)
        self.length = 0

    def update(self, key_states, value_states, *args, **kwargs):
        import torch

        n = key_states.shape[-2]
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            b, h, _, d = key_states.shape
            cap = max(self.capacity, n)
            self._k = torch.empty((b, h, cap, d), dtype=key_states.dtype, device=key_states.device)
            self._v = torch.empty((b, h, cap, value_states.shape[-1]), dtype=value_states.dtype,
                                  device=value_states.device)
        if self.length + n > self._k.shape[-2]:
            raise RuntimeError(f"ReservedLayer: {self.length + n} positions exceed the capacity {self._k.shape[-2]}")
        self._k[:, :, self.length: self.length + n] = key_states
        self._v[:, :, self.length: self.length + n] = value_states
        self.length += n
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            self._k, self._v = self._k.repeat_interleave(repeats, dim=0), self._v.repeat_interleave(repeats, dim=0)
            self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    def batch_select_indices(self, indices) -> None:
        if self.get_seq_length() > 0:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]


def reserved_cache(n_layers: int, capacity: int):
    """A transformers ``Cache`` of :class:`ReservedLayer` layers holding ``capacity`` positions each."""
    from transformers.cache_utils import Cache

    return Cache(layers=[ReservedLayer(capacity) for _ in range(n_layers)])
