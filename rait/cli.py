"""The ``rait`` command: one console script, one subcommand per stage.

Each stage module defines ``add_parser(subparsers)`` which adds its subcommand and sets ``func`` (called with
the parsed ``argparse.Namespace``; returns an exit code). Modules are imported lazily so ``rait --help`` is fast.

Example:
    >>> from rait.cli import main
    >>> main(["--version"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

import rait

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("rait.evaluate", "greedy evaluation: P_c / P_w / P_r / THS on a test set"),
    "probe": ("rait.probe", "knowledge probe: k samples, correctness and certainty per item"),
    "rehearse": ("rait.rehearse", "CRaFT rehearsal: fine-tune on mastered items, save M_r"),
    "grads": ("rait.gradients.cli", "GRAIT per-sample LoRA gradient features and similarities"),
    "build": ("rait.build", "build a refusal-aware training set with a registered method"),
    "train": ("rait.train", "(weighted) SFT on a training set, LoRA or full"),
    "ask": ("rait.ask", "ask a (tuned) model a question; --interactive for a REPL"),
    "run": ("rait.pipeline", "run a whole experiment config: probe -> build -> train -> eval"),
    "report": ("rait.report", "markdown + HTML report of a run directory"),
}



def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; with ``only`` set, import just that subcommand's module."""
    p = argparse.ArgumentParser(prog="rait", description="Refusal-Aware Instruction Tuning toolkit.")
    p.add_argument("--version", action="version", version=f"rait {rait.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, helptext) in COMMANDS.items():
        if name != only:  # listed only; its module is imported when the subcommand is used
            sub.add_parser(name, help=helptext)
            continue
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a stage not installed in this build
            if e.name and e.name.startswith("rait"):
                continue
            raise
        module.add_parser(sub)
    return p


def unknown_flag(parser: argparse.ArgumentParser, command: str | None, argv: Sequence[str]) -> str | None:
    """``unknown option --x (did you mean --y?)`` for the first flag the subcommand does not take, else None.

    argparse would otherwise report the flag's *value* as an invalid positional choice.
    """
    from rait.registry import did_you_mean

    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if command is None or sub is None or command not in sub.choices:
        return None
    known = sub.choices[command]._option_string_actions
    for tok in argv[argv.index(command) + 1:]:
        if tok == "--":
            break
        flag = tok.split("=", 1)[0]
        if flag.startswith("--") and flag not in known:
            return f"unknown option {flag}{did_you_mean(flag, [k for k in known if k.startswith('--')])}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rait`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    only = first if first in COMMANDS else None
    parser = build_parser(only=only)
    bad = unknown_flag(parser, only, argv)
    if bad:
        print(f"rait {only}: error: {bad}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if not argv else 2
    from rait.errors import RaitError

    try:
        return int(args.func(args) or 0)
    except RaitError as e:
        print(f"rait {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
