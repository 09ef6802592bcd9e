"""Shared-prefix (cascade) attention and cache (rait.generation.cascade) inside the HF sampler."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rait.generation import cascade
from rait.generation.base import SamplingConfig
from rait.generation.hf import HFBackend
from tests.generation.test_hf import SHARED, loaded  # noqa: F401  (the fixture)


def test_attend_equals_attention_over_the_full_cache_with_padding():
    """Prefix once + own positions = SDPA over [prefix | own] per row, left padding between them, GQA."""
    torch.manual_seed(0)
    r, h, g, p, s, n = 4, 6, 2, 7, 5, 3
    q = torch.randn(r, h, n, 8)
    kp, vp = torch.randn(1, g, p, 8), torch.randn(1, g, p, 8)
    ks, vs = torch.randn(r, g, s, 8), torch.randn(r, g, s, 8)
    mask = torch.ones(r, 1, n, p + s, dtype=torch.bool).tril(p + s - n)
    for row, pad in enumerate([0, 1, 2, 0]):  # row's own part starts with `pad` padding positions
        mask[row, :, :, p:p + pad] = False
    full_k = torch.cat([kp.expand(r, -1, -1, -1), ks], 2).repeat_interleave(h // g, 1)
    full_v = torch.cat([vp.expand(r, -1, -1, -1), vs], 2).repeat_interleave(h // g, 1)
    want = F.scaled_dot_product_attention(q, full_k, full_v, attn_mask=mask, scale=0.3).transpose(1, 2)
    got = cascade.attend(q, (kp, vp), (ks, vs), mask, scaling=0.3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    no_pad = F.scaled_dot_product_attention(q, full_k, full_v, attn_mask=mask.clone().fill_(True).tril(p + s - n),
                                            scale=0.3).transpose(1, 2)
    torch.testing.assert_close(cascade.attend(q, (kp, vp), (ks, vs), None, scaling=0.3), no_pad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [1, 3])
def test_sampler_with_the_prefix_cached_once_gives_the_same_completions(loaded, monkeypatch, n):  # noqa: F811
    """Greedy (n = 1) and seeded sampling (n = 3): same tokens and log-probs with and without the cascade cache;
    sampling takes the cascade path (the prefix attended once per layer call, never repeated per row), greedy
    calls do not."""
    model, tok = loaded
    calls = []
    real = cascade.attend
    monkeypatch.setattr(cascade, "attend", lambda q, pre, own, *a, **k: calls.append(pre[0].shape[0]) or real(
        q, pre, own, *a, **k))
    s = SamplingConfig(temperature=0.0 if n == 1 else 0.8, max_new_tokens=10, logprobs=True)
    on_be = HFBackend(model, tok, batch_size=4)
    on = on_be.generate(SHARED, n=n, sampling=s, seed=3)
    if n > 1:
        assert calls and set(calls) == {1}  # one prefix row for every batch row
    else:
        assert not calls  # greedy calls keep the plain cache
    assert model.config._attn_implementation != cascade.CASCADE  # the model's own kernel is put back
    off_be = HFBackend(model, tok, batch_size=4, cascade=False)
    off = off_be.generate(SHARED, n=n, sampling=s, seed=3)
    if n > 1:  # the KV arena holds each row's own positions only: the shared prefix is outside it
        assert 0 < on_be._arena.nbytes() < off_be._arena.nbytes()
    for a, b in zip(on, off):
        assert [c.text for c in a] == [c.text for c in b]
        for ca, cb in zip(a, b):
            assert ca.token_logprobs == pytest.approx(cb.token_logprobs, abs=1e-4)


def test_no_cascade_without_a_shared_prefix_or_for_other_attention(loaded):  # noqa: F811
    model, tok = loaded
    assert HFBackend(model, tok).cascade
    assert not HFBackend(model, tok, cascade=False).cascade
    assert not HFBackend(model, tok, reserve_cache=False).cascade
