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
    >>> from rait.stages.trainer import tokenize_row
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
from contextlib import nullcontext
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from transformers import Trainer

from rait.core.precision import ShortRowAttention, frozen_linears_in
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
    """Left-pads ``input_ids``/``labels``, builds ``attention_mask``, ``position_ids`` and ``weight``.

    With ``padding_free`` the rows are concatenated into one row instead (no padding at all): ``position_ids``
    restart at 0 for every row, there is no ``attention_mask`` (transformers then masks attention block-diagonally
    per row, detected from the positions) and ``seq_idx`` gives each token's row. The losses are the same as with
    padding; the saving is the padded share of the batch.

    >>> c = WeightedCollator(0, padding_free=True)
    >>> b = c([{"input_ids": [5, 6, 7], "labels": [-100, -100, 7]}, {"input_ids": [8, 9], "labels": [-100, 9]}])
    >>> b["position_ids"].tolist(), b["seq_idx"].tolist()
    ([[0, 1, 2, 0, 1]], [[0, 0, 0, 1, 1]])
    """

    def __init__(self, pad_token_id: int, padding_free: bool = False):
        self.pad = int(pad_token_id)
        self.padding_free = padding_free

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        weight = torch.tensor([float(f.get("weight", 1.0)) for f in features], dtype=torch.float32)
        if self.padding_free:
            labels = []
            for f in features:  # a row's first token is predicted by nothing in its own row
                labels += [IGNORE] + list(f["labels"][1:])
            ids = [t for f in features for t in f["input_ids"]]
            pos = [p for f in features for p in range(len(f["input_ids"]))]
            seq = [i for i, f in enumerate(features) for _ in f["input_ids"]]
            return {"input_ids": torch.tensor([ids]), "position_ids": torch.tensor([pos]),
                    "labels": torch.tensor([labels]), "seq_idx": torch.tensor([seq]), "weight": weight}
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
        return {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "labels": labels, "weight": weight}


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether the (peft-unwrapped) model's forward takes ``logits_to_keep``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def sample_of_target(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Positions ``(b, t)`` whose next token carries a label, the sample of each, and the number of samples."""
    tgt = inputs["labels"][:, 1:]
    b, t = (tgt != IGNORE).nonzero(as_tuple=True)
    if "seq_idx" in inputs:  # padding-free: one row holding several samples
        seq = inputs["seq_idx"]
        return b, t, seq[b, t + 1], int(seq.max()) + 1
    return b, t, b, tgt.shape[0]


def per_sample_losses(model: Any, inputs: dict[str, torch.Tensor], trim_logits: bool = True):
    """Summed completion-token CE and completion-token count of every sample: ``(loss_sum [N], n_tokens [N])``.

    With ``trim_logits`` the vocabulary projection (``lm_head``: 49k x 576 for SmolLM2) runs only on the hidden
    states of positions that predict a completion token, gathered into one contiguous block by a pre-hook on the
    output embedding; prompt positions, which carry no loss, get no logits. Without it, logits are computed at
    every position (the stock forward) and then gathered: same losses, more work.
    """
    b, t, sample, n = sample_of_target(inputs)
    fwd = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
    inner = getattr(model, "module", model)  # DistributedDataParallel wraps the model
    head = inner.get_output_embeddings() if trim_logits else None
    handle = None
    if head is not None:
        def gather(mod, args):
            return (args[0][b.to(args[0].device), t.to(args[0].device)].unsqueeze(0),) + tuple(args[1:])

        handle = head.register_forward_pre_hook(gather)
    try:
        logits = model(**fwd, use_cache=False).logits
    finally:
        if handle is not None:
            handle.remove()
    logits = logits[0] if head is not None else logits[b, t]  # [M, V]
    target = inputs["labels"][b, t + 1].to(logits.device)
    tok_loss = F.cross_entropy(logits.float(), target, reduction="none")
    sample = sample.to(tok_loss.device)
    loss_sum = torch.zeros(n, dtype=tok_loss.dtype, device=tok_loss.device).index_add(0, sample, tok_loss)
    n_tok = torch.zeros(n, dtype=tok_loss.dtype, device=tok_loss.device).index_add(0, sample, torch.ones_like(tok_loss))
    return loss_sum, n_tok


class WeightedTrainer(Trainer):
    """``Trainer`` with per-sample weights, GA- and process-invariant normalisation and trimmed logits.

    Args (besides ``Trainer``'s):
        loss_reduction: ``sample_mean`` (each sample's token-mean loss × weight, averaged over samples) or
            ``token_mean`` (token losses × their sample's weight, averaged over tokens; HF's reduction).
        trim_logits: compute the vocabulary projection only on positions that predict completion tokens.
        fast_cpu_kernels: on a CPU, eager attention for batches of rows up to 256 tokens
            (:class:`rait.core.precision.ShortRowAttention`); under bf16/fp16 autocast, the frozen linear weights
            held in that dtype while training (:func:`rait.core.precision.frozen_linears_in`: the same arithmetic
            without a cast of every frozen weight at every forward pass).

    Batches may be padded or padding-free (see :class:`WeightedCollator`).
    """

    loss_is_scaled_for_ga = True

    def __init__(self, *args: Any, loss_reduction: str = "sample_mean", trim_logits: bool = True,
                 fast_cpu_kernels: bool = True, **kw: Any):
        if loss_reduction not in ("sample_mean", "token_mean"):
            raise ValueError(f"loss_reduction={loss_reduction!r}: expected sample_mean or token_mean")
        self.loss_reduction = loss_reduction
        self.trim_logits = trim_logits
        super().__init__(*args, **kw)
        self.trim_logits = trim_logits and self.model.get_output_embeddings() is not None
        self.fast_cpu_kernels = fast_cpu_kernels
        self._attention = ShortRowAttention(self.model) if fast_cpu_kernels else None

    def train(self, *args: Any, **kw: Any) -> Any:  # noqa: D102
        dtype = torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None
        try:
            with frozen_linears_in(self.model, dtype) if dtype and self.fast_cpu_kernels else nullcontext():
                return super().train(*args, **kw)
        finally:
            if self._attention is not None:
                self._attention.restore()

    def _count(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lab = batch["labels"][:, 1:] != IGNORE
        if self.loss_reduction == "token_mean":
            return lab.sum()
        if "seq_idx" in batch:  # padding-free: samples with at least one completion token
            return torch.tensor(len(torch.unique(batch["seq_idx"][:, 1:][lab])))
        return lab.any(1).sum()

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
        if self._attention is not None:
            self._attention.pick(inputs["input_ids"].shape[1], inputs["input_ids"].device.type, "seq_idx" in inputs)
        loss_sum, ntok = per_sample_losses(model, inputs, self.trim_logits)
        w = torch.ones(loss_sum.shape[0], device=loss_sum.device) if weight is None else weight.to(loss_sum)
        if self.loss_reduction == "token_mean":
            total = (loss_sum * w).sum()
            local_n = ntok.sum()
        else:
            total = (loss_sum / ntok.clamp(min=1) * w).sum()
            local_n = (ntok > 0).sum()
        if num_items_in_batch is None:  # evaluation / direct call: normalise by this micro-batch
            loss = total / local_n.clamp(min=1)
        else:
            # DDP / DeepSpeed average gradients over processes; undo it so the divisor is the global count.
            loss = total / num_items_in_batch * max(1, self.accelerator.num_processes)
        return (loss, None) if return_outputs else loss
