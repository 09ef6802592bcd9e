"""Sample-by-sample attention over a packed row (rait.core.packed)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, MistralConfig

from rait.core import packed
from rait.core.packed import packed_attention
from tests.tiny import make_tiny_model


class _Attn(torch.nn.Module):
    num_key_value_groups = 2


def _reference(q, k, v, lengths, scaling):
    """Each sample on its own: plain causal attention (GQA by repeating the key/value heads)."""
    outs, s = [], 0
    for n in lengths:
        kk = k[:, :, s:s + n].repeat_interleave(2, dim=1)
        vv = v[:, :, s:s + n].repeat_interleave(2, dim=1)
        w = (q[:, :, s:s + n] @ kk.transpose(2, 3)) * scaling
        w = w.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        outs.append((w @ vv).transpose(1, 2))
        s += n
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("eager_limit", [256, 3])  # 3: the longer samples take SDPA's causal kernel
def test_packed_attention_equals_each_sample_alone(monkeypatch, eager_limit):
    monkeypatch.setattr(packed, "EAGER_LIMIT", eager_limit)
    torch.manual_seed(0)
    lengths = [5, 1, 7, 3]
    t = sum(lengths)
    q = torch.randn(1, 4, t, 8, requires_grad=True)
    k = torch.randn(1, 2, t, 8, requires_grad=True)
    v = torch.randn(1, 2, t, 8, requires_grad=True)
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    out, _ = packed_attention(_Attn(), q, k, v, None, scaling=0.3, position_ids=pos)
    ref = _reference(q, k, v, lengths, 0.3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), g)
    want = torch.autograd.grad(ref, (q, k, v), g)
    for a, b in zip(got, want):  # no gradient leaks across samples or into the padding of the layout
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_packed_attention_refuses_padded_batches():
    q = torch.randn(2, 4, 3, 8)
    with pytest.raises(ValueError, match="one packed row"):
        packed_attention(_Attn(), q, q[:, :2], q[:, :2], None, scaling=1.0)


def test_a_packed_model_row_gives_each_sample_its_own_logits():
    """Whole model: the packed row under ``rait_packed`` = each sample run alone (eager)."""
    model = make_tiny_model().eval()
    torch.manual_seed(1)
    samples = [torch.randint(3, 200, (n,)) for n in (6, 2, 9)]
    with torch.no_grad():
        alone = [model(input_ids=s[None]).logits[0] for s in samples]
        model.set_attn_implementation(packed.register())
        row = model(input_ids=torch.cat(samples)[None],
                    position_ids=torch.cat([torch.arange(len(s)) for s in samples])[None]).logits[0]
    torch.testing.assert_close(row, torch.cat(alone), rtol=1e-4, atol=1e-5)


def test_supports_only_plain_causal_attention():
    assert packed.supports(LlamaConfig())
    assert not packed.supports(MistralConfig(sliding_window=16))
    assert not packed.supports(LlamaConfig(layer_types=["full_attention", "sliding_attention"], num_hidden_layers=2))
