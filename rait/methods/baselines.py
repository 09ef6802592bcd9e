"""Init-Basic and Init-Refuse: the initial model M0, untrained, with the BASIC or the REFUSE prompt.

Training-free methods (``trains=False``): their hook evaluates M0 on a test set with ``rait eval``'s settings of
the run. Init-Basic is the THS reference point (P_c0, P_w0) of every other method on the same test set
(method-spec §F); Init-Refuse only adds the instruction to refuse when unsure. Where rait's evaluation departs
from the papers' released code (MCQA letter parsing, refusal detection, open-ended scoring, generation limits):
``docs/deviations.md``, rows 1-5.

Example:
    >>> from rait.methods import get
    >>> m = get("init_refuse")
    >>> m.trains, m.display, m.needs
    (False, 'Init-Refuse', ())
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rait.methods import EvalContext, register


@dataclass
class M0Config:
    """The untrained baselines take no settings."""


def evaluate_m0(ctx: EvalContext, prompt: str) -> None:
    """``rait eval`` of the initial model with ``prompt`` on ``ctx.data`` into ``ctx.out``."""
    from rait.stages.evaluate import EvalConfig, evaluate

    base = ctx.eval if ctx.eval is not None else EvalConfig()
    evaluate(replace(base, model=ctx.model, dtype=ctx.dtype, data=f"jsonl:{ctx.data}", out=str(ctx.out),
                     prompt=prompt, reference=str(ctx.reference) if ctx.reference else None))


@register("init_basic", "Init-Basic: M0 with the BASIC prompt, untrained (the THS reference)", M0Config, needs=(),
          display="Init-Basic", paper="reference point of CRaFT (arXiv 2410.06913) and GRAIT (arXiv 2502.05911)",
          trains=False)
def init_basic(ctx: EvalContext) -> None:
    evaluate_m0(ctx, "basic")


@register("init_refuse", "Init-Refuse: M0 with the REFUSE prompt (told to say it does not know), untrained",
          M0Config, needs=(), display="Init-Refuse", paper="baseline of CRaFT (arXiv 2410.06913)", trains=False)
def init_refuse(ctx: EvalContext) -> None:
    evaluate_m0(ctx, "refuse")
