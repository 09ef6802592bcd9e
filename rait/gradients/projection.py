"""Seeded Rademacher random projections of per-sample LoRA gradients (never a full P x dim matrix in memory).

A feature is ``x @ R / sqrt(dim)`` where ``R`` has entries ±1, so ``E[<xR, yR>] / dim = <x, y>`` (JL). ``R`` is a
deterministic function of ``(seed, parameter name, block index)`` only, so a sample gets the same feature in any
batch, shard or process. Two kinds:

``dense`` (the LESS/TRAK projector, literally): every parameter tensor's rows of ``R`` are generated block-wise
    (``block_rows`` rows per block) from a PCG64 stream seeded by SHA-256 of ``(seed, name, block)``.
    Cost per sample: ``P x dim`` multiply-adds plus, when a block is not cached, ``block_rows x dim`` random
    signs per block *per batch*; at P = 2.4M and dim = 2048 the matrix is 5G entries (10 GB in bf16), so on a
    CPU the sign generation dominates. Use on small models or to check the hashed kind.
``hashed`` (default): a two-stage projection whose effective P x dim matrix still has ±1 entries. Stage 1 folds
    the P coordinates into ``fold_dim`` (default ``16 * dim``) buckets with a seeded hash and sign per coordinate
    (a CountSketch, O(P)); stage 2 is a dense Rademacher ``fold_dim x dim`` matrix (block-wise seeded like
    ``dense``, small enough to be cached: 128 MB in bf16 at dim 2048). Each row of the effective matrix is
    ``±`` a row of the stage-2 matrix, i.e. a Rademacher row; rows sharing a bucket are equal up to sign.
    The inner-product error has variance ``≈ |x|²|y|² (1/dim + 1/fold_dim)``, about 3 % more spread than the
    dense kind at ``fold_dim = 16 dim``, for ~P/dim times less work.

Example:
    >>> import torch
    >>> from rait.gradients.projection import Projector
    >>> proj = Projector(dim=1024, seed=0, dtype=torch.float32)
    >>> g = {"w": torch.randn(3, 5000)}
    >>> f = proj.project(g)
    >>> f.shape
    torch.Size([3, 1024])
    >>> bool(torch.allclose(proj.project({"w": g["w"][1:2]}), f[1:2], atol=1e-4))
    True
"""

from __future__ import annotations

import hashlib
import math
from typing import Mapping

import numpy as np
import torch

KINDS = ("hashed", "dense")
#: rows of R generated per seeded block (part of the projection's definition: changing it changes features)
BLOCK_ROWS = 4096


def _seed64(*parts: object) -> int:
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:8], "little")


def rademacher_block(key: tuple, rows: int, dim: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """A ``rows x dim`` matrix of ±1 in ``dtype``, a pure function of ``key`` (hashed to a PCG64 seed).

    One random bit per entry (PCG64 bytes, unpacked); the float bit pattern is built directly (sign bit | 1.0),
    which is several times faster than converting integers.
    """
    rng = np.random.Generator(np.random.PCG64(_seed64(*key)))
    n = rows * dim
    bits = np.unpackbits(np.frombuffer(rng.bytes((n + 7) // 8), dtype=np.uint8))[:n]
    if dtype == torch.bfloat16:
        u = bits.astype(np.uint16)
        np.left_shift(u, 15, out=u)
        np.bitwise_or(u, 0x3F80, out=u)
        return torch.from_numpy(u.view(np.int16)).view(torch.bfloat16).view(rows, dim)
    u32 = bits.astype(np.uint32)
    np.left_shift(u32, 31, out=u32)
    np.bitwise_or(u32, 0x3F800000, out=u32)
    return torch.from_numpy(u32.view(np.float32)).view(rows, dim).to(dtype)


class Projector:
    """Project per-parameter gradient rows to ``dim`` features.

    Args:
        dim: output dimension.
        seed: projection seed (LESS: 0).
        kind: ``hashed`` (default) or ``dense``; see the module docstring.
        fold_dim: stage-1 buckets of the hashed kind (default ``16 * dim``).
        dtype: matmul dtype of the dense stage (``torch.bfloat16`` is the fast CPU/GPU path; ±1 are exact in
            bf16, the gradient values are rounded to bf16 as LESS rounds them to fp16).
        cache_mb: keep generated blocks up to this many MB (the hashed kind's stage 2 always fits at the
            defaults); blocks beyond the budget are regenerated on every call.
        device: where the matmuls run.
    """

    def __init__(
        self,
        dim: int,
        seed: int = 0,
        kind: str = "hashed",
        fold_dim: int | None = None,
        dtype: torch.dtype = torch.bfloat16,
        cache_mb: float = 2048,
        device: str | torch.device = "cpu",
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown projection kind {kind!r}; expected one of {KINDS}")
        if dim < 1:
            raise ValueError(f"projection dim must be >= 1, got {dim}")
        self.dim, self.seed, self.kind, self.dtype = int(dim), int(seed), kind, dtype
        self.fold_dim = int(fold_dim or 16 * dim) if kind == "hashed" else None
        self.device = torch.device(device)
        self.cache_bytes = cache_mb * 2**20
        self._cache: dict[tuple, torch.Tensor] = {}
        self._cached = 0
        self._hash: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def describe(self) -> dict:
        """JSON-able definition (stored in the gradient index; equal descriptions = equal features)."""
        return {"kind": self.kind, "dim": self.dim, "seed": self.seed, "fold_dim": self.fold_dim,
                "block_rows": BLOCK_ROWS, "rng": "pcg64-sha256-v1", "scale": "1/sqrt(dim)"}

    # ----------------------------------------------------------------------------------------------- blocks
    def _block(self, key: tuple, rows: int) -> torch.Tensor:
        blk = self._cache.get(key)
        if blk is not None:
            return blk
        blk = rademacher_block((self.seed,) + key, rows, self.dim, self.dtype).to(self.device)
        size = blk.numel() * blk.element_size()
        if self._cached + size <= self.cache_bytes:
            self._cache[key] = blk
            self._cached += size
        return blk

    def _matmul_rows(self, x: torch.Tensor, name: str, offset: int = 0) -> torch.Tensor:
        """``x @ R[name]`` for the rows of R belonging to ``name`` (x: B x p), block by block, fp32 result."""
        out = torch.zeros(x.shape[0], self.dim, dtype=torch.float32, device=self.device)
        p = x.shape[1]
        for k in range(math.ceil(p / BLOCK_ROWS)):
            s, e = k * BLOCK_ROWS, min(p, (k + 1) * BLOCK_ROWS)
            blk = self._block((name, k), BLOCK_ROWS)[: e - s]
            out += (x[:, s:e].to(self.device, self.dtype) @ blk).float()
        return out

    def _hash_of(self, name: str, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (name, p)
        if key not in self._hash:
            rng = np.random.Generator(np.random.PCG64(_seed64(self.seed, "fold", name)))
            idx = torch.from_numpy(rng.integers(0, self.fold_dim, size=p, dtype=np.int64))
            sign = torch.from_numpy(rng.integers(0, 2, size=p, dtype=np.int8).astype(np.float32) * 2 - 1)
            self._hash[key] = (idx.to(self.device), sign.to(self.device))
        return self._hash[key]

    # -------------------------------------------------------------------------------------------- project
    def project(self, grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Features (B x dim, float32) of gradient rows given per parameter tensor (name -> B x p_name).

        The result does not depend on the order of ``grads`` or on how rows are batched (up to float rounding).
        """
        names = sorted(grads)
        if not names:
            raise ValueError("no gradient tensors to project")
        b = next(iter(grads.values())).shape[0]
        if self.kind == "dense":
            out = torch.zeros(b, self.dim, dtype=torch.float32, device=self.device)
            for n in names:
                out += self._matmul_rows(grads[n].reshape(b, -1), n)
            return out / math.sqrt(self.dim)
        folded = torch.zeros(b, self.fold_dim, dtype=torch.float32, device=self.device)
        for n in names:
            g = grads[n].reshape(b, -1).to(self.device, torch.float32)
            idx, sign = self._hash_of(n, g.shape[1])
            folded.index_add_(1, idx, g * sign)
        return self._matmul_rows(folded, "__fold__") / math.sqrt(self.dim)

    def matrix(self, name: str, p: int) -> torch.Tensor:
        """The effective ``p x dim`` matrix (±1/sqrt(dim)) applied to tensor ``name`` (tests/benchmarks only)."""
        if self.kind == "dense":
            eye_rows = [self._block((name, k), BLOCK_ROWS) for k in range(math.ceil(p / BLOCK_ROWS))]
            return torch.cat(eye_rows)[:p].float() / math.sqrt(self.dim)
        idx, sign = self._hash_of(name, p)
        stage2 = torch.cat([self._block(("__fold__", k), BLOCK_ROWS)
                            for k in range(math.ceil(self.fold_dim / BLOCK_ROWS))])[: self.fold_dim]
        return (sign[:, None] * stage2[idx].float()) / math.sqrt(self.dim)
