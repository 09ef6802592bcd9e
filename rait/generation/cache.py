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
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only; torch is imported inside the functions, as before
    import torch


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


class KVArena:
    """KV storage shared by the batches of a backend's sampling calls: one flat key and one flat value buffer per
    layer, viewed as (rows, heads, positions, dim) for the largest batch of the current call (:meth:`reshape`),
    allocated at the first batch with room for later calls (1.5× what the first call needs, at most the KV budget
    ``budget_bytes`` over ``n_layers``: sampling calls whose batches are sized by the budget get all of it at
    once) and grown only if a later call needs more.

    Without it, each batch allocated its own cache and the k-fold copy of it, of a slightly different size each
    time (batches are sorted by length): glibc, told to keep freed memory (:func:`keep_freed_memory`), could not
    reuse the freed blocks for the next, larger ones, and the heap grew batch after batch (4.3 GB peak for 2,000
    TriviaQA questions × k = 10 on a 135M model). With an arena the cache is one block, and repeating rows for the
    k samples and dropping finished rows happen inside it.

    >>> import torch
    >>> arena = KVArena(rows=4, positions=6)
    >>> k = arena.tensor(0, "k", torch.zeros(1, 2, 3, 8))
    >>> tuple(k.shape), arena.nbytes()  # no budget given: exactly what this call needs
    ((4, 2, 6, 8), 1536)
    >>> arena.reshape(rows=2, positions=12)
    >>> tuple(arena.tensor(0, "k", torch.zeros(1, 2, 3, 8)).shape), arena.nbytes()  # same storage
    ((2, 2, 12, 8), 1536)
    """

    def __init__(self, rows: int, positions: int, budget_bytes: int = 0, n_layers: int = 1):
        self._flat: dict[tuple[int, str], "torch.Tensor"] = {}
        self._floor = budget_bytes // max(2 * n_layers, 1)  # bytes per buffer at the first allocation
        self.reshape(rows, positions)

    def reshape(self, rows: int, positions: int) -> None:
        """Set the rows and positions of the views handed out from now on (a new call's largest batch)."""
        self.rows, self.positions = int(rows), int(positions)

    def fits(self, rows: int, positions: int) -> bool:
        """Whether batches of ``rows`` rows and ``positions`` positions fit the current views."""
        return rows <= self.rows and positions <= self.positions

    def tensor(self, layer: int, kind: str, like: "torch.Tensor") -> "torch.Tensor":
        """The (rows, heads, positions, dim) storage of ``layer``'s keys (``kind="k"``) or values, with the heads,
        dim, dtype and device of ``like``; its buffer is (re)allocated only when too small."""
        import torch

        _, h, _, d = like.shape
        need = self.rows * h * self.positions * d
        t = self._flat.get((layer, kind))
        if t is None or t.numel() < need or t.dtype != like.dtype or t.device != like.device:
            self._flat.pop((layer, kind), None)
            del t  # free the old buffer before allocating the larger one
            room = min(self._floor // like.element_size(), need * 3 // 2)  # headroom for later, longer calls
            t = torch.empty(max(need, room), dtype=like.dtype, device=like.device)
            self._flat[(layer, kind)] = t
        return t[:need].view(self.rows, h, self.positions, d)

    def nbytes(self) -> int:
        """Bytes allocated."""
        return sum(t.numel() * t.element_size() for t in self._flat.values())


class ReservedLayer(_dynamic_layer()):  # type: ignore[misc]
    """A KV-cache layer whose storage for ``capacity`` positions is allocated once, at the prefill.

    transformers' ``DynamicLayer`` grows by ``torch.cat`` every decoding step, which copies the whole cache (for
    k samples of a 3-shot prompt: ~190 rows x ~200 positions x 30 layers) and holds two copies at the peak. This
    layer writes each new position into its reserved slot and hands attention a view of the filled part, so a
    step copies only the new keys/values and the peak is one cache. Batch repeat / select (prefix sharing, early
    drop) work as in ``DynamicLayer``; with an ``arena`` (:class:`KVArena`) the storage is the arena's and they
    work in place.

    >>> import torch
    >>> lay = ReservedLayer(capacity=4)
    >>> k, v = lay.update(torch.ones(2, 1, 3, 8), torch.ones(2, 1, 3, 8))
    >>> k, v = lay.update(torch.zeros(2, 1, 1, 8), torch.zeros(2, 1, 1, 8))
    >>> tuple(k.shape), lay.get_seq_length(), float(k[:, :, 3].abs().sum())
    ((2, 1, 4, 8), 4, 0.0)
    """

    def __init__(self, capacity: int, arena: KVArena | None = None, index: int = 0):
        super().__init__()
        self.capacity = int(capacity)
        self.length = 0
        self.arena, self.index = arena, index
        self._b = 0  # rows in use (arena storage)

    def _allocate(self, key_states, value_states) -> None:
        import torch

        b, h, n, d = key_states.shape
        cap = max(self.capacity, n)
        if self.arena is not None and self.arena.fits(b, cap):
            self._full_k = self.arena.tensor(self.index, "k", key_states)
            self._full_v = self.arena.tensor(self.index, "v", value_states)
            self._b = b
            self._views()
            return
        self.arena = None
        self._k = torch.empty((b, h, cap, d), dtype=key_states.dtype, device=key_states.device)
        self._v = torch.empty((b, h, cap, value_states.shape[-1]), dtype=value_states.dtype,
                              device=value_states.device)

    def _views(self) -> None:
        self._k, self._v = self._full_k[: self._b], self._full_v[: self._b]

    def update(self, key_states, value_states, *args, **kwargs):
        n = key_states.shape[-2]
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._allocate(key_states, value_states)
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
        if self.get_seq_length() == 0 or repeats == 1:
            return
        if self.arena is not None and self.arena.fits(self._b * repeats, self._k.shape[-2]):
            n = self.length
            for full in (self._full_k, self._full_v):  # row i -> rows i*r .. i*r+r-1, last row first: no overwrite
                for i in range(self._b - 1, -1, -1):
                    lo = i * repeats + (1 if i == 0 else 0)
                    full[lo: (i + 1) * repeats, :, :n] = full[i: i + 1, :, :n]
            self._b *= repeats
            self._views()
        else:  # too many rows for the arena: own storage from here on (repeat_interleave copies)
            self.arena = None
            self._k, self._v = self._k.repeat_interleave(repeats, dim=0), self._v.repeat_interleave(repeats, dim=0)
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    def batch_select_indices(self, indices) -> None:
        if self.get_seq_length() == 0:
            return
        if self.arena is not None:  # the selected rows are gathered into a temporary, then written back
            m, n = len(indices), self.length
            for full in (self._full_k, self._full_v):
                full[:m, :, :n] = full[indices, :, :n]
            self._b = m
            self._views()
        else:
            self._k, self._v = self._k[indices], self._v[indices]
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]


def reserved_cache(n_layers: int, capacity: int, arena: KVArena | None = None):
    """A transformers ``Cache`` of :class:`ReservedLayer` layers holding ``capacity`` positions each (in ``arena``'s
    storage when given)."""
    from transformers.cache_utils import Cache

    return Cache(layers=[ReservedLayer(capacity, arena, i) for i in range(n_layers)])
