"""Per-sample gradients of the completion loss w.r.t. LoRA parameters, for a whole batch in one backward.

For a LoRA ``Linear`` with input activations ``X_b`` (T x d_in) and output gradients ``G_b`` (T x d_out) of
sample ``b``, the gradient of the weight is ``G_bᵀ X_b`` (a sum over tokens). Forward hooks on every peft
``lora_A``/``lora_B`` Linear keep ``X`` and attach a tensor hook to the output that receives ``G`` in the
backward pass, where ``einsum("bto,bti->boi")`` gives all per-sample gradients at once. The backward runs on
``Σ_b loss_b`` with ``loss_b`` the token-mean cross-entropy of sample ``b``'s answer tokens, so each
per-sample gradient is exactly that sample's own gradient. Rows are right-padded (real tokens never attend to
padding, positions are unchanged) and padding carries no loss, so its ``G`` is zero. The vocabulary projection
is only evaluated at answer positions (a pre-hook on the output embedding gathers those hidden states).

Features (LESS ``collect_grad_reps``): optional Adam preconditioning without bias correction,
``m' = β1 m + (1-β1) g``, ``v' = β2 v + (1-β2) g²``, ``feature = m' / sqrt(v' + 1e-8)`` (method-spec §D3,
``eps`` inside the root), then a random projection (:mod:`rait.gradients.projection`).

Example:
    >>> import torch
    >>> from tests.tiny import make_tokenizer, make_tiny_model
    >>> from rait.gradients.persample import attach_lora, GradFeaturizer
    >>> from rait.gradients.projection import Projector
    >>> tok = make_tokenizer(); model = attach_lora(make_tiny_model(tok), r=4, alpha=8, seed=0)
    >>> conv = [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris"}]
    >>> fz = GradFeaturizer(model, tok, Projector(256, dtype=torch.float32), dtype="float32")
    >>> fz.features([conv, conv]).shape
    (2, 256)
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from rait.core.precision import ShortRowAttention, frozen_linears_in
from rait.errors import DataError, ModelError

_ADAPTER_SEG = re.compile(r"\.lora_([AB])\.[^.]+\.weight$")


def canonical_name(name: str) -> str:
    """Adapter-independent parameter name: ``model.layers.0.self_attn.q_proj.lora_A.weight``.

    Strips peft's ``base_model.model.`` prefix and the adapter-name segment, so names from
    ``model.named_parameters()``, saved adapters and optimizer-state files match.
    """
    while name.startswith("base_model.model."):
        name = name[len("base_model.model."):]
    return _ADAPTER_SEG.sub(r".lora_\1.weight", name)


def lora_linears(model: Any) -> dict[str, torch.nn.Linear]:
    """Canonical LoRA weight name -> its ``nn.Linear`` (active adapter, ``lora_A`` and ``lora_B``).

    Raises:
        ModelError: no LoRA layers, or a LoRA variant whose trainable parameters are not plain Linear weights.
    """
    out: dict[str, torch.nn.Linear] = {}
    for mname, mod in model.named_modules():
        if not (hasattr(mod, "lora_A") and hasattr(mod, "lora_B") and isinstance(mod.lora_A, torch.nn.ModuleDict)):
            continue
        if getattr(mod, "use_dora", {}) and any(mod.use_dora.values()):
            raise ModelError("DoRA adapters are not supported for gradient features (magnitude vectors)")
        for adapter in mod.active_adapters:
            if adapter not in mod.lora_A:
                continue
            for ab in ("A", "B"):
                lin = getattr(mod, f"lora_{ab}")[adapter]
                if not isinstance(lin, torch.nn.Linear) or lin.bias is not None:
                    raise ModelError(f"{mname}: only bias-free Linear LoRA layers are supported, got {lin}")
                out[canonical_name(f"{mname}.lora_{ab}.{adapter}.weight")] = lin
    if not out:
        raise ModelError("the model has no LoRA layers (load an adapter or give LoRA settings)")
    return out


def attach_lora(model: Any, r: int = 8, alpha: int = 16, targets: str | Sequence[str] = "all-linear",
                seed: int = 0) -> Any:
    """A fresh LoRA on ``model`` (peft default init: A Kaiming-uniform from ``seed``, B = 0), for use without a
    warm-up adapter. With B = 0 the gradients w.r.t. A vanish, so the features are those of the B matrices."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    tgt = targets if isinstance(targets, str) else list(targets)
    return get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=tgt,
                                            task_type="CAUSAL_LM"))


def load_optimizer_state(path: str | Path, names: Sequence[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Adam moments ``(exp_avg, exp_avg_sq)`` per canonical LoRA name from a safetensors file.

    Keys are ``<parameter name>.exp_avg`` / ``<parameter name>.exp_avg_sq`` with any peft spelling of the name
    (``base_model.model....lora_A.default.weight`` as written by ``rait train save_optimizer: true``).

    Raises:
        DataError: the file is missing, or lacks moments for a LoRA parameter, or shapes are inconsistent.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "optimizer-state file not found")
    raw = load_file(str(path))
    moments: dict[str, dict[str, torch.Tensor]] = {}
    for k, t in raw.items():
        for suffix in (".exp_avg_sq", ".exp_avg"):
            if k.endswith(suffix):
                moments.setdefault(canonical_name(k[: -len(suffix)]), {})[suffix[1:]] = t.float()
                break
    out = {}
    for n in names:
        m = moments.get(n, {})
        if "exp_avg" not in m or "exp_avg_sq" not in m:
            raise DataError(path, None, f"no '{n}.exp_avg' / '{n}.exp_avg_sq' for LoRA parameter {n!r} "
                            f"(found {len(moments)} parameters with moments)")
        if m["exp_avg"].shape != m["exp_avg_sq"].shape:
            raise DataError(path, None, f"{n}: exp_avg and exp_avg_sq shapes differ")
        out[n] = (m["exp_avg"], m["exp_avg_sq"])
    return out


def adam_precondition(g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, betas=(0.9, 0.999),
                      eps: float = 1e-8) -> torch.Tensor:
    """LESS Adam feature of gradient rows ``g`` (B x p) with moments ``m``, ``v`` (p): no bias correction,
    ``m' / sqrt(v' + eps)`` with ``m' = β1 m + (1-β1) g`` and ``v' = β2 v + (1-β2) g²``."""
    b1, b2 = betas
    m2 = b1 * m + (1 - b1) * g
    v2 = b2 * v + (1 - b2) * g * g
    return m2 / torch.sqrt(v2 + eps)


def encode(tokenizer: Any, messages: Sequence[dict[str, str]], max_length: int = 2048) -> tuple[list[int], int]:
    """Token ids of a conversation and the number of prompt tokens (loss is on the rest).

    The prompt is the chat template applied to all but the last (assistant) turn with the generation prompt;
    the answer part is the remaining text of the full rendering with trailing whitespace dropped (answer +
    end-of-turn token, e.g. ``Paris<|im_end|>``). Over-long rows keep their last ``max_length`` tokens.
    """
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the last message must be the assistant answer")
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template's rendering of the answer does not extend the prompt")
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(full[len(prompt):].rstrip(), add_special_tokens=False)["input_ids"]
    if not a_ids:
        raise ValueError("empty answer")
    ids = (p_ids + a_ids)[-max_length:]
    return ids, max(0, len(ids) - len(a_ids))


class _Capture:
    """Hooks computing per-sample weight gradients of LoRA Linears during one backward."""

    def __init__(self, linears: dict[str, torch.nn.Linear]):
        self.linears, self.grads, self.handles = linears, {}, []

    def __enter__(self):
        for name, lin in self.linears.items():
            self.handles.append(lin.register_forward_hook(self._fwd(name)))
        return self

    def _fwd(self, name):
        def hook(mod, inp, out):
            x = inp[0].detach()

            def on_grad(g):
                # per-sample dW = Σ_t g_t x_tᵀ  (B x out x in), fp32 accumulation
                self.grads[name] = torch.einsum("bto,bti->boi", g.float(), x.float()).flatten(1)

            out.register_hook(on_grad)
        return hook

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


class GradFeaturizer:
    """Projected (optionally Adam-preconditioned) per-sample LoRA gradient features of conversations.

    Args:
        model: a peft model (LoRA adapter active); put in eval mode (dropout off).
        tokenizer: its tokenizer (chat template).
        projector: a :class:`rait.gradients.projection.Projector`.
        optimizer_state: canonical name -> (exp_avg, exp_avg_sq) for Adam preconditioning, or None (SGD features).
        betas, eps: Adam constants (LESS: 0.9, 0.999, 1e-8).
        dtype: ``bfloat16`` runs the forward/backward under bf16 autocast; ``float32`` is exact.
        batch_size: rows per forward/backward.
        max_length: token limit per row.
        attn_implementation: attention kernel for the forward/backward: ``auto`` = eager on CPU for batches of
            rows up to 256 tokens (SDPA's flash-attention backward costs ~25 % of a batch of short QA rows there:
            9.8 s -> 7.9 s for 64 rows of SmolLM2-135M), the model's own kernel otherwise (eager attention keeps
            O(T^2) probabilities for the backward: 16 MMLU rows of ~600 tokens needed 22 GB); None keeps the model's.
        max_batch_tokens: cap on rows x longest row per batch; activation memory is ≈1.5 MB per token for the
            135M model, so 2,048 keeps a batch near 3 GB (short QA rows still fill batch_size).
    """

    def __init__(self, model: Any, tokenizer: Any, projector: Any, optimizer_state: dict | None = None,
                 betas=(0.9, 0.999), eps: float = 1e-8, dtype: str = "bfloat16", batch_size: int = 16,
                 max_length: int = 2048, attn_implementation: str | None = "auto", max_batch_tokens: int = 2048):
        self.model, self.tok, self.projector = model.eval(), tokenizer, projector
        self.attn = attn_implementation
        self.max_batch_tokens = max_batch_tokens
        self._attention = ShortRowAttention(model)
        if attn_implementation not in ("auto", None):
            self._attention.base.set_attn_implementation(attn_implementation)
        self.linears = lora_linears(model)
        self.params = [lin.weight for lin in self.linears.values()]
        for p in self.params:
            p.requires_grad_(True)
        self.state = optimizer_state
        self.betas, self.eps, self.dtype = betas, eps, dtype
        self.batch_size, self.max_length = batch_size, max_length
        self.device = next(model.parameters()).device
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else tokenizer.eos_token_id

    @property
    def n_params(self) -> int:
        """LoRA dimensions P (the length of the unprojected gradient)."""
        return sum(p.numel() for p in self.params)

    def per_sample_grads(self, encoded: Sequence[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        """Canonical name -> (B x p) per-sample gradients of a batch of ``encode`` outputs (no preconditioning)."""
        b, t = len(encoded), max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((b, t), self.pad_id, dtype=torch.long)
        attn = torch.zeros((b, t), dtype=torch.long)
        rows, cols = [], []
        for i, (ids, n_prompt) in enumerate(encoded):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attn[i, : len(ids)] = 1
            pos = range(max(n_prompt, 1) - 1, len(ids) - 1)  # logits at pos predict token pos + 1
            rows += [i] * len(pos)
            cols += list(pos)
        rows_t, cols_t = torch.tensor(rows), torch.tensor(cols)
        targets = input_ids[rows_t, cols_t + 1].to(self.device)
        counts = torch.bincount(rows_t, minlength=b).clamp(min=1).to(self.device)
        head = self.model.get_output_embeddings()

        def gather(mod, args):  # vocabulary projection only at answer positions
            return (args[0][rows_t.to(args[0].device), cols_t.to(args[0].device)].unsqueeze(0),) + tuple(args[1:])

        h = head.register_forward_pre_hook(gather)
        try:
            with _Capture(self.linears) as cap:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == "bfloat16"):
                    logits = self.model(input_ids=input_ids.to(self.device),
                                        attention_mask=attn.to(self.device), use_cache=False).logits[0]
                nll = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
                per_sample = torch.zeros(b, device=self.device).index_add(0, rows_t.to(self.device), nll) / counts
                torch.autograd.grad(per_sample.sum(), self.params, allow_unused=True)
        finally:
            h.remove()
        return cap.grads

    def _features(self, grads: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.state is not None:
            grads = {n: adam_precondition(g, *(t.to(g.device).flatten() for t in self.state[n]), self.betas, self.eps)
                     for n, g in grads.items()}
        return self.projector.project(grads)

    def features(self, conversations: Sequence[Sequence[dict[str, str]]]) -> np.ndarray:
        """Raw (un-normalised) features, float32 ``len(conversations) x dim``, in input order."""
        enc = [encode(self.tok, c, self.max_length) for c in conversations]
        out = np.zeros((len(enc), self.projector.dim), dtype=np.float32)
        order = sorted(range(len(enc)), key=lambda i: len(enc[i][0]))  # length-sorted batches: less padding
        batches, cur = [], []
        for i in order:  # at most batch_size rows and max_batch_tokens padded tokens per batch
            if cur and (len(cur) == self.batch_size or (len(cur) + 1) * len(enc[i][0]) > self.max_batch_tokens):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        low = torch.bfloat16 if self.dtype == "bfloat16" else None  # frozen weights cast once, not per forward
        with frozen_linears_in(self.model, low) if low else nullcontext():
            for idx in batches:
                if self.attn == "auto":
                    self._attention.pick(max(len(enc[i][0]) for i in idx), self.device.type)
                out[idx] = self._features(self.per_sample_grads([enc[i] for i in idx])).cpu().numpy()
        return out
