"""Weighted loss: plain-SFT equivalence, duplication, gradient-accumulation invariance, trimmed logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rait.stages.trainer import IGNORE, ListDataset, WeightedCollator, WeightedTrainer, per_sample_losses, tokenize_row
from tests.tiny import make_tiny_model, make_tokenizer

QA = [("Capital of France?", "Paris"), ("Who wrote Hamlet?", "William Shakespeare"), ("What is 2+2?", "4"),
      ("Capital of Italy?", "I don't know"), ("Are you sure?", "I am unsure.")]


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def rows(weights=None):
    weights = weights or [1.0] * len(QA)
    return [{"messages": [{"role": "system", "content": ""}, {"role": "user", "content": q},
                          {"role": "assistant", "content": a}], "weight": w} for (q, a), w in zip(QA, weights)]


def make_trainer(tmp_path, tok, model=None, ga=1, bs=4, reduction="sample_mean", **kw):
    from transformers import TrainingArguments

    model = model or make_tiny_model(tok, seed=0)
    args = TrainingArguments(output_dir=str(tmp_path / "t"), per_device_train_batch_size=bs,
                             gradient_accumulation_steps=ga, use_cpu=True, report_to="none",
                             remove_unused_columns=False, disable_tqdm=True, **kw)
    return WeightedTrainer(model=model, args=args, train_dataset=ListDataset([]),
                           data_collator=WeightedCollator(tok.pad_token_id), loss_reduction=reduction)


def grads_of(trainer, micro_batches):
    """Accumulated gradient of one optimizer step through the Trainer's own code paths."""
    model = trainer.model
    model.zero_grad()
    n = trainer._get_num_items_in_batch(micro_batches, torch.device("cpu"))
    total = 0.0
    for b in micro_batches:
        total += float(trainer.training_step(model, dict(b), n))
    return total, torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()


def batch(tok, rs):
    return WeightedCollator(tok.pad_token_id)([tokenize_row(tok, r) for r in rs])


def test_tokenize_row_masks_prompt_and_keeps_eot(tok):
    ex = tokenize_row(tok, rows()[0])
    done = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE]
    assert tok.decode(done) == "Paris<|im_end|>"
    assert ex["labels"][: len(ex["labels"]) - len(done)] == [IGNORE] * (len(ex["labels"]) - len(done))
    short = tokenize_row(tok, rows()[1], max_length=12)
    assert len(short["input_ids"]) <= 12 and short["truncated"]
    assert tok.decode([t for t, lab in zip(short["input_ids"], short["labels"]) if lab != IGNORE]).startswith("Will")


def test_trimmed_logits_equal_full(tok):
    model = make_tiny_model(tok)
    b = batch(tok, rows())
    calls = []
    h = model.get_output_embeddings().register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    a, ma = per_sample_losses(model, b, trim_logits=True)
    f, mf = per_sample_losses(model, b, trim_logits=False)
    h.remove()
    n_targets = int((b["labels"][:, 1:] != IGNORE).sum())
    assert calls[0][:2] == (1, n_targets) and calls[1][:2] == tuple(b["input_ids"].shape)  # lm_head rows: M vs B x T
    torch.testing.assert_close(a, f, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ma, mf)


def padfree_batch(tok, rs):
    return WeightedCollator(tok.pad_token_id, padding_free=True)([tokenize_row(tok, r) for r in rs])


def test_padding_free_equals_padded(tok):
    """One concatenated row with restarting positions gives each sample the same loss as the padded batch."""
    model = make_tiny_model(tok)
    b, p = batch(tok, rows()), padfree_batch(tok, rows())
    assert p["input_ids"].shape[1] == int(b["attention_mask"].sum()) < b["input_ids"].numel()
    for trim in (True, False):
        a, ma = per_sample_losses(model, b, trim_logits=trim)
        c, mc = per_sample_losses(model, p, trim_logits=trim)
        torch.testing.assert_close(c, a, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(mc, ma)


@pytest.mark.parametrize("reduction", ["sample_mean", "token_mean"])
def test_padding_free_same_loss_and_gradient(tmp_path, tok, reduction):
    """The trainer's loss and gradient of a step are the same with and without padding (weights included)."""
    r = rows([1.0, 2.5, 0.5, 1.0, 0.0])
    tr = make_trainer(tmp_path, tok, bs=5, reduction=reduction)
    l1, g1 = grads_of(tr, [batch(tok, r)])
    l2, g2 = grads_of(tr, [padfree_batch(tok, r)])
    assert l1 == pytest.approx(l2, rel=1e-5)
    torch.testing.assert_close(g2, g1, rtol=1e-4, atol=1e-6)


def test_all_ones_equals_plain_sft(tmp_path, tok):
    tr = make_trainer(tmp_path, tok)
    b = batch(tok, rows())
    # plain per-sample-mean SFT computed independently, one row at a time (no padding)
    per_row = []
    for r in rows():
        ex = tokenize_row(tok, r)
        out = tr.model(input_ids=torch.tensor([ex["input_ids"]]), labels=torch.tensor([ex["labels"]]))
        per_row.append(out.loss)
    loss = tr.compute_loss(tr.model, dict(b))
    torch.testing.assert_close(loss, torch.stack(per_row).mean(), rtol=1e-5, atol=1e-6)
    # token_mean with all-ones weights = HF's own token-averaged loss
    tr_tok = make_trainer(tmp_path, tok, model=tr.model, reduction="token_mean")
    hf = tr.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], position_ids=b["position_ids"],
                  labels=b["labels"]).loss
    torch.testing.assert_close(tr_tok.compute_loss(tr.model, dict(b)), hf, rtol=1e-5, atol=1e-6)


def test_weight_changes_loss(tmp_path, tok):
    tr = make_trainer(tmp_path, tok)
    plain = tr.compute_loss(tr.model, dict(batch(tok, rows())))
    heavy = tr.compute_loss(tr.model, dict(batch(tok, rows([3.0, 1, 1, 1, 1]))))
    assert abs(float(heavy) - float(plain)) > 1e-3


def test_weight_two_equals_duplicate(tmp_path, tok):
    tr = make_trainer(tmp_path, tok, bs=8)
    r = rows()
    # same sample count: (s0 w=2, s1 w=0, s2) vs (s0, s0, s2) -> identical gradient
    w = rows([2.0, 0.0, 1.0])
    l1, g1 = grads_of(tr, [batch(tok, w[:3])])
    l2, g2 = grads_of(tr, [batch(tok, [r[0], r[0], r[2]])])
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
    assert l1 == pytest.approx(l2, rel=1e-5)
    # different count: (s0 w=2, s1) vs (s0, s0, s1) -> equal sums, i.e. grad x N agrees
    _, g3 = grads_of(tr, [batch(tok, rows([2.0, 1.0])[:2])])
    _, g4 = grads_of(tr, [batch(tok, [r[0], r[0], r[1]])])
    torch.testing.assert_close(g3 * 2, g4 * 3, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["sample_mean", "token_mean"])
def test_grad_accumulation_invariance(tmp_path, tok, reduction):
    r = rows([1.0, 2.5, 0.5, 1.0])[:4]
    tr1 = make_trainer(tmp_path, tok, ga=1, bs=4, reduction=reduction)
    l1, g1 = grads_of(tr1, [batch(tok, r)])
    tr2 = make_trainer(tmp_path, tok, ga=2, bs=2, reduction=reduction)
    l2, g2 = grads_of(tr2, [batch(tok, r[:2]), batch(tok, r[2:])])
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)
    assert l1 == pytest.approx(l2, rel=1e-5)
    tr3 = make_trainer(tmp_path, tok, ga=4, bs=1, reduction=reduction)
    _, g3 = grads_of(tr3, [batch(tok, [x]) for x in r])
    torch.testing.assert_close(g1, g3, rtol=1e-4, atol=1e-6)


def test_token_mean_differs_from_sample_mean(tmp_path, tok):
    b = batch(tok, rows())
    a = make_trainer(tmp_path, tok).compute_loss(make_tiny_model(tok), dict(b))
    t = make_trainer(tmp_path, tok, reduction="token_mean").compute_loss(make_tiny_model(tok), dict(b))
    assert float(a) != pytest.approx(float(t), rel=1e-4)


def test_collator_keeps_weight(tok):
    b = batch(tok, rows([0.5, 2.0]))
    assert b["weight"].tolist() == [0.5, 2.0]
    assert (b["labels"][b["attention_mask"] == 0] == IGNORE).all()
    # manual per-sample CE on the left-padded batch matches
    logits = make_tiny_model(tok)(**{k: b[k] for k in ("input_ids", "attention_mask", "position_ids")}).logits
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), b["labels"][:, 1:], reduction="none", ignore_index=IGNORE)
    assert torch.isfinite(ce).all()


def test_bf16_autocast_loss_close_to_fp32(tmp_path, tok):
    tr = make_trainer(tmp_path, tok)
    b = batch(tok, rows([1.0, 2.0, 0.5, 1.0, 1.0]))
    fp32 = tr.compute_loss(tr.model, dict(b))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = tr.compute_loss(tr.model, dict(b))
    assert bf16.dtype == torch.float32  # the loss itself is computed in fp32
    assert float(bf16) == pytest.approx(float(fp32), rel=2e-2)
