"""``rait ask``: answer (or refuse) a question the way a tuned model would — greedy, with the training prompt.

The question is wrapped like the training rows: an empty system message and the REFUSE prompt by default
(``--prompt basic`` for the bare question), rendered with the model's chat template, decoded greedily.

Command line::

    rait ask --model runs/m1 "What is the capital of France?"
    rait ask --model runs/m1 --interactive          # one question per line; Ctrl-D (EOF) ends

Example:
    >>> from rait.stages.ask import answer
    >>> from rait.core.models import load_model
    >>> model, tok = load_model("default")  # doctest: +SKIP
    >>> answer(model, tok, "What is the capital of France?", prompt="basic")  # doctest: +SKIP
    'The capital of France is Paris.'
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable, TextIO

from rait.core.prompts import STYLES, build_messages, render
from rait.data.schema import QAItem


def answer(model: Any, tokenizer: Any, question: str, prompt: str = "refuse", max_new_tokens: int = 64,
           system_prompt: str | None = "") -> str:
    """The model's greedy answer to one open-ended question (special tokens stripped, whitespace trimmed)."""
    import torch

    item = QAItem(id="ask", question=question.strip())
    text = render(tokenizer, build_messages(item, prompt, system_prompt=system_prompt), add_generation_prompt=True)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                             temperature=None, top_p=None, top_k=None)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def repl(model: Any, tokenizer: Any, lines: Iterable[str], out: TextIO, interactive: bool = False,
         **kw: Any) -> int:
    """Answer each non-empty line; returns the number answered. Ends at EOF."""
    n = 0
    if interactive:
        print("> ", end="", file=sys.stderr, flush=True)
    for line in lines:
        if line.strip():
            print(answer(model, tokenizer, line, **kw), file=out, flush=True)
            n += 1
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
    return n


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rait ask``."""
    p = subparsers.add_parser("ask", help="ask a (tuned) model a question; --interactive for a REPL",
                              description="Greedy answer of a model to a question, with the training prompt.")
    p.add_argument("question", nargs="*", help="the question (omit with --interactive)")
    p.add_argument("--model", default="default", help="model spec or tuned model directory (default: %(default)s)")
    p.add_argument("--prompt", default="refuse", choices=STYLES, help="prompt style (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="generation limit (default: %(default)s)")
    p.add_argument("--system", default="", help="system message (default: empty, as in training rows)")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 (default: %(default)s)")
    p.add_argument("--interactive", "-i", action="store_true", help="read questions from stdin until EOF")
    p.set_defaults(func=_run)
    return p


def _run(args: argparse.Namespace) -> int:
    from rait.core.models import load_model
    from rait.errors import RaitError

    if not args.question and not args.interactive:
        raise RaitError("give a question, or --interactive to read questions from stdin")
    model, tok = load_model(args.model, dtype=args.dtype)
    kw = dict(prompt=args.prompt, max_new_tokens=args.max_new_tokens, system_prompt=args.system)
    if args.question:
        print(answer(model, tok, " ".join(args.question), **kw), flush=True)
    if args.interactive:
        repl(model, tok, sys.stdin, sys.stdout, interactive=sys.stdin.isatty(), **kw)
    return 0
