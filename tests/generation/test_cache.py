"""KV-cache layers reserved once (and in a shared arena) behave like transformers' growing DynamicLayer."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from rait.generation.cache import KVArena, ReservedLayer


def _kv(b, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 2, n, 4, generator=g), torch.randn(b, 2, n, 4, generator=g)


def _same(a, b):
    assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


def _script(layer):
    """Prefix for one row, repeat to 3 prompts, their suffix, repeat k = 4, decode, drop rows, decode."""
    layer.update(*_kv(1, 5, 0))
    layer.batch_repeat_interleave(3)
    layer.update(*_kv(3, 2, 1))
    layer.batch_repeat_interleave(4)
    for step in range(3):
        layer.update(*_kv(12, 1, 10 + step))
    layer.batch_select_indices(torch.tensor([0, 2, 3, 7, 11]))
    layer.update(*_kv(5, 1, 20))
    layer.batch_select_indices(torch.tensor([4, 1]))  # not ascending
    layer.update(*_kv(2, 1, 21))
    return layer


def test_reserved_layers_with_and_without_arena_match_dynamic_layer():
    ref = _script(DynamicLayer())
    own = _script(ReservedLayer(capacity=12))
    arena = KVArena(rows=12, positions=12)
    shared = _script(ReservedLayer(capacity=12, arena=arena))
    _same(own, ref)
    _same(shared, ref)
    assert shared.arena is arena and shared.keys.data_ptr() == arena.tensor(0, "k", shared.keys).data_ptr()


def test_arena_is_reused_by_later_batches_and_too_small_arenas_fall_back():
    arena = KVArena(rows=12, positions=12)
    first = _script(ReservedLayer(capacity=12, arena=arena))
    size = arena.nbytes()
    second = _script(ReservedLayer(capacity=10, arena=arena))
    assert arena.nbytes() == size and second.keys.data_ptr() == first.keys.data_ptr()
    small = _script(ReservedLayer(capacity=12, arena=KVArena(rows=6, positions=12)))  # 12 rows do not fit
    _same(small, _script(DynamicLayer()))
    assert small.arena is None
