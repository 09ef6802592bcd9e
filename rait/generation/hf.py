"""Fast batched sampling with transformers on CPU or GPU.

What makes it fast compared with ``model.generate(num_return_sequences=k)``:

* **Prefix sharing**: each prompt is encoded once (prefill with ``logits_to_keep=1``, so the lm_head runs on one
  position only); its KV cache is then repeated k times for the k samples. The tokens that all prompts of a batch
  share (the system turn and the papers' few-shot turns: 140 of the demo probe's 171 prompt tokens) are
  prefilled once per batch, not once per prompt.
* **Early drop**: a sequence stops at EOS or a stop string (default: newline); finished rows are removed from the
  batch (cache compaction whenever a quarter of the rows have finished) instead of decoding padding.
* **Length buckets**: prompts are sorted by length before batching, so little padding is prefilled.
* **bf16** where the hardware runs it fast (AMX / AVX512-BF16 CPUs, recent GPUs).
* **Cheap sampling**: inverse-CDF sampling (one uniform per row) instead of ``torch.multinomial``, and glibc told
  to keep freed memory (see :mod:`rait.generation.cache`).

Results are deterministic for a given (prompts, n, sampling, seed, batch_size, torch thread count): sampling uses
one seeded ``torch.Generator`` per call, and batching depends only on the prompts (fp32 GEMMs of MKL can change
in their last bits with the thread count: docs/probing.md).

Example:
    >>> from rait.generation.hf import HFBackend
    >>> from rait.generation.base import SamplingConfig
    >>> be = HFBackend.from_spec("default")  # doctest: +SKIP
    >>> be.generate(["<|im_start|>user\\nCapital of France?<|im_end|>\\n<|im_start|>assistant\\n"], n=2,
    ...             sampling=SamplingConfig(max_new_tokens=8))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from typing import Any, Sequence

import torch

from rait.core import packed
from rait.core.runtime import bound_kernel_caches
from rait.generation.base import Completion, SamplingConfig
from rait.generation.batching import length_batches, prefix_batches, shared_prefix_len
from rait.generation.cache import KVArena, keep_freed_memory, reserved_cache
from rait.generation.cascade import active as cascade_active
from rait.generation.cascade import capturing, cascade_cache, is_cascade

__all__ = ["HFBackend", "cache_kwarg", "shared_prefix_len"]


def cache_kwarg(model: Any) -> str:
    """Name of the KV-cache argument (and output field) of ``model.forward``: ``cache`` in transformers >= 5.24,
    ``past_key_values`` before (deprecated there, removed in 5.40).

    >>> from tests.tiny import make_tiny_model
    >>> cache_kwarg(make_tiny_model()) in ("cache", "past_key_values")
    True
    """
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class HFBackend:
    """Batched prefix-shared sampler over a transformers causal LM.

    Args:
        model: a loaded causal LM (eval mode).
        tokenizer: its tokenizer.
        batch_size: prompts per prefill batch (rows during decoding = batch_size × n).
        max_rows: cap on decoding rows; ``batch_size`` is reduced for large ``n`` to respect it.
        max_kv_mb: cap on the KV cache of one batch (rows × (longest prompt + max_new_tokens) positions);
            ``batch_size`` is reduced to respect it. 3-shot prompts × k samples make the cache, not the weights,
            the largest allocation: SmolLM2-135M keeps 46 KB per position in fp32.
        max_score_tokens: cap on the padded positions of one batch when scoring prompts without generating
            (:meth:`next_token_probs`, :meth:`last_token_probs`: MCQA probes, whose 5-shot prompts run to
            thousands of tokens; 32 of them in one uncached forward pass took 12 GB on a 135M model).
        min_shared_prefix: when the prompts of a batch start with at least this many identical tokens (a system
            prompt, the papers' few-shot turns), that prefix is prefilled once and its KV cache repeated for every
            row; 0 turns it off.
        reserve_cache: allocate each batch's KV cache once (:class:`rait.generation.cache.ReservedLayer`) instead
            of growing it by concatenation every step (models whose layers all use full attention); when sampling
            several answers per prompt, in one block reused by every batch and call
            (:class:`rait.generation.cache.KVArena`: the probe's heap stops growing batch after batch; greedy
            evaluation batches are small and keep a cache of their own size).
        cascade: when sampling several answers per prompt from prompts with a shared prefix, keep the prefix's
            keys and values once per batch instead of once per row and attend to them with one matrix product for
            all rows (:mod:`rait.generation.cascade`; models with plain causal attention under SDPA or eager
            kernels). Greedy calls (one answer per prompt) keep the plain cache: evaluation's shared prefix is
            short (31 tokens of ~46), and there the cascade measured 0.94–1.06x the speed, within noise.

    Attribute ``prefill_tokens``: prompt tokens :meth:`generate` has run through the model so far, a shared prefix
    once per batch and no padding (the work done, for roofline figures).
    """

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 32, max_rows: int = 512,
                 max_kv_mb: float = 1024, reserve_cache: bool = True, max_score_tokens: int = 8192,
                 min_shared_prefix: int = 16, cascade: bool = True):
        keep_freed_memory()
        bound_kernel_caches()  # a model passed in, not loaded by load_model: before the first matmul
        self.min_shared_prefix = min_shared_prefix
        self.prefill_tokens = 0
        self.max_score_tokens = max_score_tokens
        self.model = model
        self.tok = tokenizer
        self.batch_size = batch_size
        self.max_rows = max_rows
        self.max_kv_mb = max_kv_mb
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self._n_layers = int(cfg.num_hidden_layers)
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self._kv_bytes = 2 * self._n_layers * kv_heads * head_dim * next(model.parameters()).element_size()
        full = all(t == "full_attention" for t in (getattr(cfg, "layer_types", None) or ["full_attention"]))
        self.reserve_cache = reserve_cache and full and not getattr(cfg, "sliding_window", None)
        own = getattr(model.config, "_attn_implementation", None) or "sdpa"
        self.cascade = cascade and self.reserve_cache and packed.supports(model.config) and own in ("sdpa", "eager")
        self.device = next(model.parameters()).device
        eos = set()
        for src in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
            if isinstance(src, int):
                eos.add(src)
            elif src:
                eos.update(int(x) for x in src)
        for t in ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>"):
            tid = tokenizer.convert_tokens_to_ids(t) if t in tokenizer.get_vocab() else None
            if tid is not None:
                eos.add(int(tid))
        self.eos_ids = sorted(eos)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        self._stop_masks: dict[tuple[str, ...], torch.Tensor] = {}
        self._cache_kw = cache_kwarg(model)
        self._arena: KVArena | None = None

    @classmethod
    def from_spec(cls, spec: str, dtype: str = "auto", device: str | None = None, **kwargs: Any) -> "HFBackend":
        """Load a model spec (see :func:`rait.core.models.load_model`) into a backend."""
        from rait.core.models import load_model

        model, tok = load_model(spec, dtype=dtype, device=device)
        return cls(model, tok, **kwargs)

    # ------------------------------------------------------------------ helpers
    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tok.encode(t, add_special_tokens=False) for t in texts]

    def _left_pad(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
                mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _stop_mask(self, stops: tuple[str, ...]) -> torch.Tensor:
        """Boolean vocab mask of tokens that are EOS or whose text contains a stop string."""
        if stops not in self._stop_masks:
            vocab = self.model.get_output_embeddings().weight.shape[0]
            mask = torch.zeros(vocab, dtype=torch.bool)
            mask[[i for i in self.eos_ids if i < vocab]] = True
            if stops:
                for tid in range(min(vocab, len(self.tok))):
                    piece = self.tok.decode([tid])
                    if any(s in piece for s in stops):
                        mask[tid] = True
            self._stop_masks[stops] = mask.to(self.device)
        return self._stop_masks[stops]

    def _per_batch(self, positions: int, n: int) -> int:
        """Prompts per batch: ``batch_size``, fewer if n samples each would exceed ``max_rows`` or ``max_kv_mb``."""
        kv_rows = int(self.max_kv_mb * 2**20 // (self._kv_bytes * max(positions, 1)))
        return max(1, min(self.batch_size, self.max_rows // max(n, 1), kv_rows // max(n, 1)))

    def _batches(self, lengths: Sequence[int], per_batch: int, max_tokens: int | None = None) -> list[list[int]]:
        return length_batches(lengths, per_batch, max_tokens)

    def _forward(self, ids, mask, pos, cache, keep: int = 1):
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=keep,
                         **{self._cache_kw: cache})
        return out.logits[:, -1, :].float(), getattr(out, self._cache_kw)

    @staticmethod
    def _pick(logits: torch.Tensor, s: SamplingConfig, gen: torch.Generator | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose next tokens; returns (token ids, their log-probs under the sampling distribution)."""
        if s.greedy:  # log p(token) = logit - logsumexp: no full log-softmax written per step
            tok = logits.argmax(dim=-1)
            return tok, logits.gather(1, tok[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
        logits = logits / s.temperature
        if s.top_k and s.top_k < logits.shape[-1]:
            kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if s.top_p < 1.0:
            sorted_l, idx = torch.sort(logits, descending=True, dim=-1)
            cum = torch.softmax(sorted_l, dim=-1).cumsum(-1)
            drop = cum - torch.softmax(sorted_l, dim=-1) > s.top_p
            sorted_l = sorted_l.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(1, idx, sorted_l)
        # Inverse-CDF sampling: one uniform per row (6x faster than torch.multinomial over a 49k vocabulary).
        probs = torch.softmax(logits, dim=-1)
        cdf = probs.cumsum(-1)
        u = torch.rand((logits.shape[0], 1), generator=gen, device=logits.device) * cdf[:, -1:]
        tok = torch.searchsorted(cdf, u)[:, 0].clamp(max=logits.shape[-1] - 1)
        return tok, probs.gather(1, tok[:, None])[:, 0].log()

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def generate(
        self, prompts: Sequence[str], n: int = 1, sampling: SamplingConfig | None = None, seed: int = 0
    ) -> list[list[Completion]]:
        """``n`` completions per prompt; see the module docstring for what makes it fast.

        Args:
            prompts: rendered prompt strings.
            n: samples per prompt (use 1 with ``temperature=0`` for greedy).
            sampling: decoding settings.
            seed: sampling seed (same inputs + seed → same outputs).
        """
        s = sampling or SamplingConfig()
        if s.greedy and n > 1:
            raise ValueError("greedy decoding with n > 1 would repeat the same answer; use temperature > 0")
        encoded = self._encode(prompts)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        results: list[list[Completion] | None] = [None] * len(prompts)
        positions = max((len(e) for e in encoded), default=0) + s.max_new_tokens
        per_batch = self._per_batch(positions, n)
        common = shared_prefix_len(encoded) if self.cascade and n > 1 and len(encoded) > 1 else 0
        positions -= common if common >= self.min_shared_prefix > 0 else 0  # a cascade cache holds it once
        arena = None
        if self.reserve_cache and n > 1:  # k samples per prompt: one cache block for every batch of every call
            self._arena = self._arena or KVArena(per_batch * n, positions, int(self.max_kv_mb * 2**20), self._n_layers)
            self._arena.reshape(per_batch * n, positions)
            arena = self._arena
        stop_mask = self._stop_mask(tuple(s.stop))
        for batch in self._batches([len(e) for e in encoded], per_batch):
            outs = self._generate_batch([encoded[i] for i in batch], n, s, gen, stop_mask, arena)
            for j, i in enumerate(batch):
                results[i] = outs[j * n: (j + 1) * n]
        return results  # type: ignore[return-value]

    def _generate_batch(self, seqs, n, s: SamplingConfig, gen, stop_mask, arena=None) -> list[Completion]:
        from transformers import DynamicCache

        shared = shared_prefix_len(seqs) if len(seqs) > 1 else 0
        shared = shared if shared >= self.min_shared_prefix > 0 else 0
        self.prefill_tokens += shared + sum(len(q) - shared for q in seqs)
        positions = max(len(q) for q in seqs) + s.max_new_tokens
        if shared and self.cascade and n > 1:  # the shared prefix cached once, every row's own positions beside it
            cache = cascade_cache(self._n_layers, positions - shared, arena)
        else:
            cache = (reserved_cache(self._n_layers, positions, arena) if self.reserve_cache
                     else DynamicCache(config=self.model.config))
        with cascade_active(self.model, cache):
            return self._sample(seqs, shared, cache, n, s, gen, stop_mask)

    def _sample(self, seqs, shared: int, cache, n: int, s: SamplingConfig, gen, stop_mask) -> list[Completion]:
        """Prefill ``seqs`` into ``cache``, then sample ``n`` completions of each (rows dropped as they finish)."""
        logits, cache, mask, pos = self._prefill(seqs, shared, cache)
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
            mask = mask.repeat_interleave(n, dim=0)
            pos = pos.repeat_interleave(n, dim=0)
        rows = logits.shape[0]
        next_pos = pos[:, -1:] + 1
        tokens: list[list[int]] = [[] for _ in range(rows)]
        lps: list[list[float]] = [[] for _ in range(rows)]
        finish = ["length"] * rows
        alive = torch.arange(rows, device=self.device)  # original row index of each live row
        done_since_compact = torch.zeros(rows, dtype=torch.bool, device=self.device)
        multi_stops = [x for x in s.stop if len(self.tok.encode(x, add_special_tokens=False)) > 1]
        for step in range(s.max_new_tokens):
            tok, lp = self._pick(logits, s, gen)
            stopped = stop_mask[tok] & ~done_since_compact
            tl, ll, al = tok.tolist(), lp.tolist(), alive.tolist()
            for r, orig in enumerate(al):
                if done_since_compact[r]:
                    continue
                tokens[orig].append(tl[r])
                lps[orig].append(ll[r])
                if multi_stops and not stopped[r]:
                    tail = self.tok.decode(tokens[orig][-8:])
                    if any(x in tail for x in multi_stops):
                        stopped[r] = True
            done_since_compact |= stopped
            for r in stopped.nonzero()[:, 0].tolist():
                finish[al[r]] = "stop"
            if bool(done_since_compact.all()) or step == s.max_new_tokens - 1:
                break
            n_done = int(done_since_compact.sum())
            if n_done and n_done * 4 >= len(al):  # compact: drop finished rows from cache and batch
                keep = (~done_since_compact).nonzero()[:, 0]
                cache.batch_select_indices(keep)
                alive, mask, next_pos, tok = alive[keep], mask[keep], next_pos[keep], tok[keep]
                done_since_compact = done_since_compact[keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            logits, cache = self._forward(tok[:, None], mask, next_pos, cache)
            next_pos = next_pos + 1
        return [self._completion(tokens[r], lps[r], finish[r], s) for r in range(rows)]

    def _completion(self, toks: list[int], lps: list[float], finish: str, s: SamplingConfig) -> Completion:
        if finish == "stop" and toks and toks[-1] in self.eos_ids:
            toks, lps = toks[:-1], lps[:-1]
        text = self.tok.decode(toks, skip_special_tokens=True)
        for stop in s.stop:
            if stop and stop in text:
                text = text[: text.index(stop)]
                finish = "stop"
        return Completion(text=text, n_tokens=len(toks), finish=finish, token_logprobs=lps if s.logprobs else None)

    def _prefill(self, seqs: Sequence[Sequence[int]], shared: int, cache: Any) -> tuple:
        """Prefill left-padded ``seqs`` into ``cache``; returns (last logits, cache, attention mask, positions).
        A prefix of ``shared`` tokens common to all rows is laid out as [prefix | left padding | own suffix] and
        computed once, for one row, its KV cache then repeated for every row."""
        ids, mask = self._left_pad([q[shared:] for q in seqs])
        if shared:
            mask = torch.cat([torch.ones((len(seqs), shared), dtype=mask.dtype, device=mask.device), mask], dim=1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        if shared:
            with capturing(cache) if is_cascade(cache) else contextlib.nullcontext():
                _, cache = self._forward(torch.tensor([list(seqs[0][:shared])], device=self.device),
                                         mask[:1, :shared], pos[:1, :shared], cache)
            if not is_cascade(cache):  # a cascade cache keeps the prefix as one row
                cache.batch_repeat_interleave(len(seqs))
        logits, cache = self._forward(ids, mask, pos[:, shared:], cache)
        return logits, cache, mask, pos

    def _last_logits(self, seqs: Sequence[Sequence[int]], shared: int) -> torch.Tensor:
        """Next-token logits after each sequence (without a shared prefix: one uncached forward pass)."""
        if shared:
            from transformers import DynamicCache

            return self._prefill(seqs, shared, DynamicCache(config=self.model.config))[0]
        ids, mask = self._left_pad(seqs)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1,
                          use_cache=False).logits[:, -1, :]

    def _score_batches(self, encoded: Sequence[Sequence[int]]) -> list[tuple[list[int], int]]:
        """Scoring batches with their shared prefix lengths (:func:`rait.generation.batching.prefix_batches`)."""
        return prefix_batches(encoded, self.batch_size, self.max_score_tokens, self._kv_bytes,
                              self.max_kv_mb, self.min_shared_prefix)

    @torch.inference_mode()
    def next_token_probs(self, prompts: Sequence[str], candidates: Sequence[str]) -> list[list[float]]:
        """Softmax probability (full vocabulary) of each candidate's first token right after each prompt.

        Args:
            prompts: rendered prompts.
            candidates: strings such as ``["A", "B", "C", "D"]``; each is tokenised on its own and its first
                token is read.
        """
        cand_ids = []
        for c in candidates:
            ids = self.tok.encode(c, add_special_tokens=False)
            if not ids:
                raise ValueError(f"candidate {c!r} encodes to no token")
            cand_ids.append(ids[0])
        encoded = self._encode(prompts)
        out: list[list[float] | None] = [None] * len(prompts)
        for batch, shared in self._score_batches(encoded):
            logits = self._last_logits([encoded[i] for i in batch], shared)
            probs = torch.softmax(logits.float(), dim=-1)[:, cand_ids]
            for j, i in enumerate(batch):
                out[i] = probs[j].tolist()
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def last_token_probs(self, texts: Sequence[str]) -> list[float]:
        """Probability of each text's last token given the rest (opencompass ``get_last_token_prob``)."""
        encoded = self._encode(texts)
        out: list[float | None] = [None] * len(texts)
        for batch in self._batches([len(e) - 1 for e in encoded], self.batch_size, self.max_score_tokens):
            seqs = [encoded[i] for i in batch]
            ids, mask = self._left_pad([s[:-1] for s in seqs])
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1,
                                use_cache=False).logits
            probs = torch.softmax(logits[:, -1, :].float(), dim=-1)
            last = torch.tensor([s[-1] for s in seqs], device=probs.device)
            vals = probs.gather(1, last[:, None])[:, 0].tolist()
            for j, i in enumerate(batch):
                out[i] = vals[j]
        return out  # type: ignore[return-value]
