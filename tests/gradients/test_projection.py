"""Projection: deterministic per (seed, name, block), batch/shard invariant, inner products preserved (JL)."""

import numpy as np
import pytest
import torch

from rait.gradients.projection import Projector, rademacher_block


def test_rademacher_block_is_seeded_signs():
    a = rademacher_block((0, "w", 0), 16, 8, torch.float32)
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(a, rademacher_block((0, "w", 0), 16, 8, torch.float32))
    assert torch.equal(a.bfloat16(), rademacher_block((0, "w", 0), 16, 8, torch.bfloat16))
    assert not torch.equal(a, rademacher_block((0, "w", 1), 16, 8, torch.float32))


@pytest.mark.parametrize("kind", ["hashed", "dense"])
def test_batch_and_instance_invariance(kind):
    g = torch.Generator().manual_seed(0)
    grads = {"a": torch.randn(6, 5000, generator=g), "b": torch.randn(6, 300, generator=g)}
    full = Projector(256, seed=7, kind=kind, dtype=torch.float32).project(grads)
    fresh = Projector(256, seed=7, kind=kind, dtype=torch.float32, cache_mb=0)  # another process, no cache
    parts = torch.cat([fresh.project({k: v[s: s + 2] for k, v in grads.items()}) for s in (0, 2, 4)])
    torch.testing.assert_close(parts, full, rtol=1e-5, atol=1e-4)
    other = Projector(256, seed=8, kind=kind, dtype=torch.float32).project(grads)
    assert not torch.allclose(other, full)


@pytest.mark.parametrize("kind", ["hashed", "dense"])
def test_matrix_matches_project(kind):
    g = torch.randn(3, 4500)
    proj = Projector(64, seed=1, kind=kind, dtype=torch.float32)
    torch.testing.assert_close(proj.project({"w": g}), g @ proj.matrix("w", 4500), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["hashed", "dense"])
def test_inner_products_preserved(kind):
    """JL: for unit vectors the projected inner product has std ~ 1/sqrt(dim); we allow 5 std (dim 2048: 0.11)."""
    dim, n, p = 2048, 12, 20000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, p)).astype(np.float32)
    x[1] = 0.6 * x[0] + 0.8 * x[1]  # a correlated pair
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t = torch.from_numpy(x)
    grads = {"l0": t[:, :7000], "l1": t[:, 7000:]}  # split across two parameter tensors
    f = Projector(dim, seed=0, kind=kind, dtype=torch.bfloat16).project(grads).numpy()
    err = np.abs(f @ f.T - x @ x.T)
    assert err.max() < 5 / np.sqrt(dim)
    assert err.std() < 1.5 / np.sqrt(dim)
