"""vLLM backend (optional extra ``rait[vllm]``; imported only when ``backend: vllm`` is selected).

Same interface as :class:`rait.generation.hf.HFBackend`: ``generate`` uses ``SamplingParams(n=k, seed=...)`` so
the k samples of a prompt share its prefix in vLLM's paged KV cache; ``next_token_probs`` and
``last_token_probs`` use prompt/next-token log-probabilities. A GGUF or ``default`` spec is first converted to a
safetensors directory by :func:`rait.core.models.resolve`, so vLLM loads plain HF weights.

Example:
    >>> from rait.generation import get_backend
    >>> be = get_backend("vllm", "Qwen/Qwen2.5-1.5B-Instruct")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from rait.errors import RaitError
from rait.generation.base import Completion, SamplingConfig


class VLLMBackend:
    """Generation through ``vllm.LLM``.

    Args:
        llm: a ``vllm.LLM``.
        tokenizer: the HF tokenizer of the same model (chat templates, candidate token ids).
    """

    name = "vllm"

    def __init__(self, llm: Any, tokenizer: Any):
        self.llm = llm
        self.tok = tokenizer

    @classmethod
    def from_spec(cls, spec: str, dtype: str = "auto", batch_size: int | None = None, **kwargs: Any) -> "VLLMBackend":
        """Load a model spec into vLLM (``dtype`` auto/float32/bfloat16/float16; extra kwargs go to ``vllm.LLM``)."""
        try:
            from vllm import LLM
        except ImportError:
            raise RaitError("backend 'vllm' needs the vllm extra: pip install 'rait[vllm]' (CUDA machines)") from None
        from rait.core.models import load_tokenizer, resolve

        where = str(resolve(spec))
        kwargs.pop("device", None)
        llm = LLM(model=where, dtype=dtype if dtype != "auto" else "auto", seed=0, **kwargs)
        return cls(llm, load_tokenizer(where))

    def _params(self, s: SamplingConfig, n: int, seed: int) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            n=n, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k if s.top_k else -1,
            max_tokens=s.max_new_tokens, stop=list(s.stop) or None, seed=seed, logprobs=0 if s.logprobs else None,
        )

    def generate(self, prompts: Sequence[str], n: int = 1, sampling: SamplingConfig | None = None,
                 seed: int = 0) -> list[list[Completion]]:
        """``n`` completions per prompt (vLLM seeds each request; outputs are stripped of stop strings)."""
        s = sampling or SamplingConfig()
        if s.greedy and n > 1:
            raise ValueError("greedy decoding with n > 1 would repeat the same answer; use temperature > 0")
        outs = self.llm.generate(list(prompts), self._params(s, n, seed), use_tqdm=False)
        res = []
        for o in outs:
            comps = []
            for c in o.outputs:
                lps = None
                if s.logprobs and c.logprobs is not None:
                    lps = [step[t].logprob for step, t in zip(c.logprobs, c.token_ids)]
                finish = "length" if c.finish_reason == "length" else "stop"
                comps.append(Completion(text=c.text, n_tokens=len(c.token_ids), finish=finish, token_logprobs=lps))
            res.append(comps)
        return res

    def _prompt_lp_last(self, token_lists: Sequence[list[int]]) -> list[float]:
        """exp(prompt log-prob) of the last token of each token list, given the tokens before it."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outs = self.llm.generate([{"prompt_token_ids": t} for t in token_lists], params, use_tqdm=False)
        return [math.exp(o.prompt_logprobs[-1][t[-1]].logprob) for o, t in zip(outs, token_lists)]

    def next_token_probs(self, prompts: Sequence[str], candidates: Sequence[str]) -> list[list[float]]:
        """Probability of each candidate's first token right after each prompt (full-vocabulary softmax)."""
        cand = [self.tok.encode(c, add_special_tokens=False)[0] for c in candidates]
        enc = [self.tok.encode(p, add_special_tokens=False) for p in prompts]
        flat = self._prompt_lp_last([e + [c] for e in enc for c in cand])
        k = len(cand)
        return [flat[i * k:(i + 1) * k] for i in range(len(prompts))]

    def last_token_probs(self, texts: Sequence[str]) -> list[float]:
        """Probability of each text's final token given the text before it."""
        return self._prompt_lp_last([self.tok.encode(t, add_special_tokens=False) for t in texts])
