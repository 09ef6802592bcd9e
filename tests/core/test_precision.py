"""Frozen weights in the autocast dtype and the short-row attention switch (rait.core.precision)."""

from __future__ import annotations

import pytest
import torch

from rait.core.precision import ShortRowAttention, frozen_linears_in
from rait.stages.train import TrainConfig, prepare_model
from tests.tiny import make_tiny_model


def _lora_model():
    torch.manual_seed(0)
    return prepare_model(make_tiny_model(), TrainConfig(data="x", out="y", lora_dropout=0.0))


def _loss_and_grads(model, ids):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.detach(), grads


def test_frozen_linears_in_bf16_gives_the_autocast_numbers_and_restores_fp32():
    model = _lora_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(0, 300, (3, 12))
    loss0, grads0 = _loss_and_grads(model, ids)
    with frozen_linears_in(model, torch.bfloat16) as n:
        assert n > 0
        base = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and not m.weight.requires_grad]
        assert base and all(m.weight.dtype == torch.bfloat16 for m in base if m is not model.get_output_embeddings())
        loss1, grads1 = _loss_and_grads(model, ids)
    assert torch.equal(loss0, loss1)  # the same bf16 rounding of the same weights: bit-identical
    assert grads0.keys() == grads1.keys() and all(torch.equal(grads0[k], grads1[k]) for k in grads0)
    for name, p in model.named_parameters():
        assert p.dtype == before[name].dtype and torch.equal(p.detach(), before[name]), name


def test_frozen_linears_in_restores_after_an_error_and_leaves_trainable_weights():
    model = _lora_model()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    with pytest.raises(RuntimeError):
        with frozen_linears_in(model, torch.bfloat16):
            assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in trainable)
            raise RuntimeError("boom")
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_short_row_attention_switches_and_restores():
    model = _lora_model()
    att = ShortRowAttention(model, limit=64)
    assert att.pick(64, "cpu") == "eager" and att.base.config._attn_implementation == "eager"
    assert att.pick(65, "cpu") == att.own
    att.pick(10, "cpu")
    att.restore()
    assert att.base.config._attn_implementation == att.own
