"""The generation interface shared by every backend (probe and evaluation use the same one).

A backend takes *rendered* prompt strings (chat template already applied, see :mod:`rait.core.prompts`) and returns
``n`` completions per prompt, or next-token probabilities for multiple-choice scoring.

Example:
    >>> from rait.generation.base import SamplingConfig
    >>> SamplingConfig(temperature=0.0).greedy
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from rait.core.config import ConfigError, option


@dataclass
class SamplingConfig:
    """How to decode."""

    temperature: float = option(1.0, "sampling temperature; 0 = greedy")
    top_p: float = option(1.0, "nucleus sampling mass (1.0 = off)")
    top_k: int = option(0, "top-k sampling (0 = off)")
    max_new_tokens: int = option(32, "maximum new tokens per completion")
    stop: list[str] = option(["\n"], "stop strings (cut before them); EOS always stops")
    logprobs: bool = option(False, "also return per-token log-probabilities of the generated tokens")

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        """True when decoding is deterministic argmax."""
        return self.temperature == 0.0


@dataclass
class Completion:
    """One generated answer."""

    text: str
    n_tokens: int
    finish: str  # "stop" (EOS or stop string) or "length"
    token_logprobs: list[float] | None = field(default=None)


class Backend(Protocol):
    """What a generation backend provides."""

    name: str
    tok: Any  # the tokenizer whose chat template renders the prompts (rait.core.prompts.render)

    def generate(
        self, prompts: Sequence[str], n: int, sampling: SamplingConfig, seed: int = 0
    ) -> list[list[Completion]]:
        """``n`` completions for each prompt (outer list aligned with ``prompts``)."""
        ...

    def next_token_probs(self, prompts: Sequence[str], candidates: Sequence[str]) -> list[list[float]]:
        """Full-vocabulary softmax probability of each candidate's first token right after each prompt."""
        ...

    def last_token_probs(self, texts: Sequence[str]) -> list[float]:
        """Probability of each text's final token given the text before it (the papers' per-option scoring)."""
        ...
