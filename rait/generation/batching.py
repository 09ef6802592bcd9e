"""Batching plans of the ``hf`` backend: prompts by length, and scoring prompts grouped by a shared prefix.

Pure functions on token-id lists (no model), so that the plans are testable on their own.
"""

from __future__ import annotations

from typing import Sequence


def shared_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Number of leading tokens all ``seqs`` share, leaving every sequence at least one token of its own.

    >>> shared_prefix_len([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]])
    2
    >>> shared_prefix_len([[1, 2], [1, 2]])
    1
    """
    first, n = seqs[0], min(len(q) for q in seqs) - 1
    for i in range(max(n, 0)):
        if any(q[i] != first[i] for q in seqs):
            return i
    return max(n, 0)


def length_batches(lengths: Sequence[int], per_batch: int, max_tokens: int | None = None) -> list[list[int]]:
    """Indices by length, in batches of at most ``per_batch`` prompts and (when given) ``max_tokens`` padded
    positions (prompts × the longest prompt of the batch; a longer prompt still gets a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    if max_tokens is None:
        return [order[i: i + per_batch] for i in range(0, len(order), per_batch)]
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < per_batch and (len(out[-1]) + 1) * lengths[i] <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def prefix_batches(encoded: Sequence[Sequence[int]], batch_size: int, max_tokens: int, kv_bytes: float,
                   max_kv_mb: float, min_shared_prefix: int) -> list[tuple[list[int], int]]:
    """Batches for scoring, each with the prefix length its prompts share (0: none is reused).

    Two plans are costed in positions run through the model (plus 64 per forward pass): batches by length
    (:func:`length_batches`), and batches of prompts that are neighbours in token order, whose common prefix (an
    MMLU subject's five demonstrations) runs once per batch. The cheaper one is used. A batch holds at most
    ``batch_size`` prompts, ``max_tokens`` positions after the prefix and ``max_kv_mb`` of KV cache
    (``kv_bytes`` per position); a prefix is shared only from ``min_shared_prefix`` tokens on (0: never).

    >>> a, b = [7] * 100, [5] * 120  # two subjects' demonstrations
    >>> prefix_batches([a + [1], b + [2], a + [2, 2], b + [3]], 4, 8192, 46080, 1024, 3)
    [([1, 3], 120), ([0, 2], 100)]
    >>> prefix_batches([[1, 2], [3, 4], [5, 6]], 4, 8192, 46080, 1024, 3)  # nothing shared: batches by length
    [([0, 1, 2], 0)]
    """
    lengths = [len(e) for e in encoded]
    by_len = length_batches(lengths, batch_size, max_tokens)
    len_cost = sum(64 + len(b) * max(lengths[i] for i in b) for b in by_len)
    if min_shared_prefix <= 0 or len(encoded) < 2:
        return [(b, 0) for b in by_len]

    def shared(raw: int, shortest: int, size: int) -> int:
        sh = min(raw, shortest - 1) if size > 1 else 0
        return sh if sh >= min_shared_prefix else 0

    def cost(raw: int, shortest: int, longest: int, size: int) -> int:
        sh = shared(raw, shortest, size)
        return sh + size * (longest - sh)

    kv_budget = max_kv_mb * 2**20  # the cached prefix is held for all layers at once
    plan: list[list] = []  # [members, lcp of the first and last member, shortest, longest]
    for i in sorted(range(len(encoded)), key=lambda i: encoded[i]):
        if plan and len(plan[-1][0]) < batch_size:
            members, raw, lo, hi = plan[-1]
            first, n = encoded[members[0]], min(raw, lengths[i])
            new_raw = next((t for t in range(n) if first[t] != encoded[i][t]), n)
            new = (new_raw, min(lo, lengths[i]), max(hi, lengths[i]), len(members) + 1)
            sh = shared(*new[:2], new[3])  # joining must keep a shared prefix and cost less than its own row
            if sh and cost(*new) - cost(raw, lo, hi, len(members)) <= lengths[i] \
                    and new[3] * (new[2] - sh) <= max_tokens \
                    and new[3] * new[2] * kv_bytes <= kv_budget:
                plan[-1] = [members + [i], *new[:3]]
                continue
        plan.append([[i], lengths[i], lengths[i], lengths[i]])
    pre_cost = sum(64 + cost(raw, lo, hi, len(m)) for m, raw, lo, hi in plan)
    if pre_cost >= len_cost:
        return [(b, 0) for b in by_len]
    return [(m, shared(raw, lo, len(m))) for m, raw, lo, hi in plan]
