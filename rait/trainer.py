"""Weighted refusal-aware SFT on top of the transformers ``Trainer``: tokenisation, collator, loss.

Rows are TRL conversational rows (docs/artifacts.md). :func:`tokenize_row` renders the prompt part with the
model's chat template (``add_generation_prompt=True``) and the assistant completion up to and including the
end-of-turn token; only completion tokens carry a label. :class:`WeightedTrainer` computes

    ``loss = Σ_i w_i · mean_t CE(sample i) / N``          (``loss_reduction="sample_mean"``, default)
    ``loss = Σ_i Σ_t w_i · CE(sample i, token t) / T``     (``loss_reduction="token_mean"``, HF's reduction)

where N (T) is the number of samples (completion tokens) in the *global effective batch*: all gradient
accumulation micro-batches on all processes. The update is therefore the same for GA=1×bs4, GA=2×bs2 and 2
processes×bs2, and all-ones weights give plain SFT. Logits (the vocabulary projection) are computed only for
the suffix of positions that predicts completion tokens (rows are left-padded with explicit position ids),
which on short QA rows skips most of the ``lm_head`` cost.

Example:
    >>> from tests.tiny import make_tokenizer
    >>> from rait.trainer import tokenize_row
    >>> tok = make_tokenizer()
    >>> row = {"messages": [{"role": "user", "content": "Capital of France?"},
    ...                     {"role": "assistant", "content": "Paris"}], "weight": 2.0}
    >>> ex = tokenize_row(tok, row)
    >>> tok.decode([t for t, l in zip(ex["input_ids"], ex["labels"]) if l != -100])
    'Paris<|im_end|>'
    >>> ex["weight"]
    2.0
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from transformers import Trainer

from rait.errors import DataError

IGNORE = -100


def tokenize_row(tokenizer: Any, row: dict[str, Any], max_length: int = 512, where: str = "row") -> dict[str, Any]:
    """Token ids, labels (prompt = -100) and weight of one conversational row.

    The last message must be the assistant turn. The completion is the rendered text after the generation
    prompt, cut right after the end-of-turn token (the template's trailing newline is not trained); if the
    template adds no end-of-turn token the tokenizer's eos is appended. Over-long rows lose prompt tokens
    from the left; the completion is kept (cut at the right only if it alone exceeds ``max_length - 1``).
    """
    msgs = row.get("messages")
    if not msgs or msgs[-1].get("role") != "assistant":
        raise DataError(where, None, "expected 'messages' ending with an assistant turn")
    prompt = tokenizer.apply_chat_template(list(msgs[:-1]), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(list(msgs), tokenize=False, add_generation_prompt=False)
    if not full.startswith(prompt):
        raise DataError(where, None, "the chat template renders the prompt differently with and without the "
                        "assistant turn; cannot split prompt and completion")
    completion = full[len(prompt):]
    eos = tokenizer.eos_token
    if eos and eos in completion:
        completion = completion[: completion.rindex(eos) + len(eos)]
    elif eos:
        completion = completion.rstrip("\n") + eos
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"][: max_length - 1]
    p_ids = p_ids[max(0, len(p_ids) + len(c_ids) - max_length):]
    w = row.get("weight", 1.0)
    return {
        "input_ids": p_ids + c_ids,
        "labels": [IGNORE] * len(p_ids) + c_ids,
        "weight": float(1.0 if w is None else w),
        "truncated": len(p_ids) + len(c_ids) >= max_length,
    }


class ListDataset(torch.utils.data.Dataset):
    """A list of tokenised examples (keeps every column, so ``weight`` survives)."""

    def __init__(self, examples: Sequence[dict[str, Any]]):
        self.examples = list(examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.examples[i]


class WeightedCollator:
    """Left-pads ``input_ids``/``labels``, builds ``attention_mask``, ``position_ids`` and ``weight``."""

    def __init__(self, pad_token_id: int):
        self.pad = int(pad_token_id)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), n), self.pad, dtype=torch.long)
        labels = torch.full((len(features), n), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), n), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            ids[i, n - k:] = torch.tensor(f["input_ids"])
            labels[i, n - k:] = torch.tensor(f["labels"])
            mask[i, n - k:] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        weight = torch.tensor([float(f.get("weight", 1.0)) for f in features], dtype=torch.float32)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "labels": labels, "weight": weight}


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether the (peft-unwrapped) model's forward takes ``logits_to_keep``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def per_sample_losses(model: Any, inputs: dict[str, torch.Tensor], trim_logits: bool = True):
    """Token CE of every completion token: returns ``(token_loss [B, K], token_mask [B, K])``.

    With ``trim_logits`` (only for models that accept ``logits_to_keep``, see
    :func:`accepts_logits_to_keep`), logits are computed only for the last K
    positions, K = the longest completion + 1 in the (left-padded) batch.
    """
    labels = inputs["labels"]
    shift = labels[:, 1:]
    fwd = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
    keep = labels.shape[1]
    if trim_logits:
        has = (labels != IGNORE).any(0).nonzero()
        first = int(has[0]) if len(has) else labels.shape[1] - 1
        keep = max(1, labels.shape[1] - first + 1)
        fwd["logits_to_keep"] = keep
    logits = model(**fwd, use_cache=False).logits  # [B, keep, V]: positions L-keep .. L-1
    logits = logits[:, :-1]  # the last position predicts nothing
    tgt = shift[:, shift.shape[1] - logits.shape[1]:]
    tok_loss = F.cross_entropy(logits.float().transpose(1, 2), tgt.clamp(min=0), reduction="none")
    tmask = (tgt != IGNORE).to(tok_loss.dtype)
    return tok_loss * tmask, tmask


class WeightedTrainer(Trainer):
    """``Trainer`` with per-sample weights, GA- and process-invariant normalisation and trimmed logits.

    Args (besides ``Trainer``'s):
        loss_reduction: ``sample_mean`` (each sample's token-mean loss × weight, averaged over samples) or
            ``token_mean`` (token losses × their sample's weight, averaged over tokens; HF's reduction).
        trim_logits: compute the vocabulary projection only on positions that predict completion tokens.
    """

    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, loss_reduction: str = "sample_mean", trim_logits: bool = True, **kw: Any):
        if loss_reduction not in ("sample_mean", "token_mean"):
            raise ValueError(f"loss_reduction={loss_reduction!r}: expected sample_mean or token_mean")
        self.loss_reduction = loss_reduction
        self.trim_logits = trim_logits
        super().__init__(*args, **kw)
        self.trim_logits = trim_logits and accepts_logits_to_keep(self.model)

    def _count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lab = batch["labels"][:, 1:] != IGNORE
        return lab.sum() if self.loss_reduction == "token_mean" else lab.any(1).sum()

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """Samples (or completion tokens) in the global effective batch: all micro-batches, all processes."""
        if not batch_samples:
            return None
        n = sum(self._count(b) for b in batch_samples).to(device)
        if self.args.world_size > 1:
            n = self.accelerator.gather(n.reshape(1)).sum()
        return n

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: D102
        weight = inputs.pop("weight", None)
        tok_loss, tmask = per_sample_losses(model, inputs, self.trim_logits)
        w = torch.ones(tok_loss.shape[0], device=tok_loss.device) if weight is None else weight.to(tok_loss)
        if self.loss_reduction == "token_mean":
            total = (tok_loss.sum(1) * w).sum()
            local_n = tmask.sum()
        else:
            ntok = tmask.sum(1)
            total = (tok_loss.sum(1) / ntok.clamp(min=1) * w).sum()
            local_n = (ntok > 0).sum()
        if num_items_in_batch is None:  # evaluation / direct call: normalise by this micro-batch
            loss = total / local_n.clamp(min=1)
        else:
            # DDP / DeepSpeed average gradients over processes; undo it so the divisor is the global count.
            loss = total / num_items_in_batch * max(1, self.accelerator.num_processes)
        return (loss, None) if return_outputs else loss
