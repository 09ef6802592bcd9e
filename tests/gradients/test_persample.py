"""Batched per-sample LoRA gradient features equal a batch-1 autograd loop (LESS reference path)."""

import numpy as np
import pytest
import torch

from rait.errors import DataError
from rait.gradients.persample import (
    GradFeaturizer,
    adam_precondition,
    attach_lora,
    canonical_name,
    encode,
    load_optimizer_state,
    lora_linears,
)
from rait.gradients.projection import Projector

CONVS = [
    [{"role": "system", "content": ""}, {"role": "user", "content": q}, {"role": "assistant", "content": a}]
    for q, a in [
        ("Capital of France?", "Paris"),
        ("Who wrote Hamlet? Answer the following question, and if you don't know the answer, say so.",
         "William Shakespeare"),
        ("2+2?", "I don't know."),
        ("What is the capital of Italy? There is a single choice question about math.", "B"),
        ("x", "I don't know"),
    ]
]


@pytest.fixture(scope="module")
def lora_model():
    from tests.tiny import make_tiny_model, make_tokenizer

    tok = make_tokenizer()
    model = attach_lora(make_tiny_model(tok), r=4, alpha=8, seed=0)
    torch.manual_seed(1)
    for n, p in model.named_parameters():
        if "lora_B" in n:  # non-zero B so that lora_A gradients are non-zero too
            torch.nn.init.normal_(p, std=0.2)
    return model.eval(), tok


def loop_features(model, tok, convs, proj, state=None):
    """LESS-style reference: batch 1, HF loss with labels, autograd, flatten, dense projection."""
    lin = lora_linears(model)
    names = list(lin)
    params = [lin[n].weight for n in names]
    out = []
    for c in convs:
        ids, n_prompt = encode(tok, c)
        x = torch.tensor([ids])
        labels = x.clone()
        labels[0, :n_prompt] = -100
        loss = model(input_ids=x, labels=labels).loss
        grads = torch.autograd.grad(loss, params)
        f = torch.zeros(proj.dim)
        for n, g in zip(names, grads):
            g = g.flatten()[None]
            if state is not None:
                g = adam_precondition(g, state[n][0].flatten(), state[n][1].flatten())
            f += (g @ proj.matrix(n, g.shape[1]))[0]
        out.append(f.numpy())
    return np.stack(out)


@pytest.mark.parametrize("kind", ["hashed", "dense"])
@pytest.mark.parametrize("adam", [False, True])
def test_batched_equals_loop(lora_model, tmp_path, kind, adam):
    model, tok = lora_model
    proj = Projector(128, seed=3, kind=kind, dtype=torch.float32)
    state = None
    if adam:
        from safetensors.torch import save_file

        g = torch.Generator().manual_seed(0)
        tensors = {}
        for n, p in model.named_parameters():
            if "lora_" in n:  # peft spelling, as written by `rait train save_optimizer: true`
                tensors[f"{n}.exp_avg"] = torch.randn(p.shape, generator=g) * 1e-3
                tensors[f"{n}.exp_avg_sq"] = torch.rand(p.shape, generator=g) * 1e-5
        save_file(tensors, str(tmp_path / "optimizer.safetensors"))
        state = load_optimizer_state(tmp_path / "optimizer.safetensors", list(lora_linears(model)))
    fz = GradFeaturizer(model, tok, proj, optimizer_state=state, dtype="float32", batch_size=3)
    batched = fz.features(CONVS)  # batches of 3 rows of different lengths: padding
    ref = loop_features(model, tok, CONVS, proj, state)
    np.testing.assert_allclose(batched, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    cos = (batched * ref).sum(1) / np.linalg.norm(batched, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99999


def test_batch_size_invariance(lora_model):
    model, tok = lora_model
    proj = Projector(64, dtype=torch.float32)
    a = GradFeaturizer(model, tok, proj, dtype="float32", batch_size=5).features(CONVS)
    b = GradFeaturizer(model, tok, proj, dtype="float32", batch_size=1).features(CONVS)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * np.abs(a).max())


def test_token_budget_and_attention_choice_do_not_change_features(lora_model):
    """Batches capped by padded tokens, eager vs the model's own attention: same features."""
    model, tok = lora_model
    proj = Projector(64, dtype=torch.float32)
    a = GradFeaturizer(model, tok, proj, dtype="float32", batch_size=5, max_batch_tokens=10_000).features(CONVS)
    b = GradFeaturizer(model, tok, proj, dtype="float32", batch_size=5, max_batch_tokens=40,
                       attn_implementation="sdpa").features(CONVS)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * np.abs(a).max())


def test_bf16_close_to_fp32(lora_model):
    model, tok = lora_model
    a = GradFeaturizer(model, tok, Projector(64, dtype=torch.float32), dtype="float32").features(CONVS)
    b = GradFeaturizer(model, tok, Projector(64, dtype=torch.bfloat16), dtype="bfloat16").features(CONVS)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.98


def test_canonical_names():
    n = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"
    assert canonical_name(n) == "model.layers.0.self_attn.q_proj.lora_A.weight"
    assert canonical_name("model.layers.0.mlp.up_proj.lora_B.weight") == "model.layers.0.mlp.up_proj.lora_B.weight"


def test_missing_moments_is_clear_error(lora_model, tmp_path):
    from safetensors.torch import save_file

    model, _ = lora_model
    save_file({"foo.exp_avg": torch.zeros(2), "foo.exp_avg_sq": torch.zeros(2)}, str(tmp_path / "o.safetensors"))
    with pytest.raises(DataError, match="exp_avg"):
        load_optimizer_state(tmp_path / "o.safetensors", list(lora_linears(model)))


def test_adam_precondition_formula():
    g, m, v = torch.tensor([[2.0]]), torch.tensor([1.0]), torch.tensor([4.0])
    expect = (0.9 * 1 + 0.1 * 2) / np.sqrt(0.999 * 4 + 0.001 * 4 + 1e-8)
    assert float(adam_precondition(g, m, v)) == pytest.approx(expect)
