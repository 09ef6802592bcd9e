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
    "eval": ("rait.stages.evaluate", "greedy evaluation: P_c / P_w / P_r / THS on a test set"),
    "probe": ("rait.stages.probe", "knowledge probe: k samples, correctness and certainty per item"),
    "rehearse": ("rait.stages.rehearse", "CRaFT rehearsal: fine-tune on mastered items, save M_r"),
    "grads": ("rait.gradients.cli", "GRAIT per-sample LoRA gradient features and similarities"),
    "build": ("rait.stages.build", "build a refusal-aware training set with a registered method"),
    "train": ("rait.stages.train", "(weighted) SFT on a training set, LoRA or full"),
    "ask": ("rait.stages.ask", "ask a (tuned) model a question; --interactive for a REPL"),
    "run": ("rait.run.pipeline", "run a whole experiment config: probe -> build -> train -> eval"),
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
    from rait.core.registry import did_you_mean

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


#: global flags taken from anywhere before ``--`` (no subcommand uses these names)
GLOBAL_FLAGS = {"-v": "verbose", "--verbose": "verbose", "-q": "quiet", "--quiet": "quiet", "--force": "force"}


def _global_flags(argv: list[str]) -> tuple[list[str], dict[str, int]]:
    """Strip ``-v``/``-q``/``--force`` from ``argv``; returns the rest and how often each was given."""
    rest, seen, end = [], {"verbose": 0, "quiet": 0, "force": 0}, False
    for a in argv:
        if a == "--":
            end = True
        if not end and a in GLOBAL_FLAGS:
            seen[GLOBAL_FLAGS[a]] += 1
        elif not end and a.startswith("-v") and set(a[1:]) == {"v"}:
            seen["verbose"] += len(a) - 1
        else:
            rest.append(a)
    return rest, seen


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rait`` console script.

    Global flags (anywhere on the line): ``-v`` (debug logging, tracebacks of unexpected errors), ``-q`` (warnings
    only, no progress bars), ``--force`` (delete or overwrite files rait did not write; see docs/safety.md).
    """
    from rait.core import safety
    from rait.core.progress import setup_logging
    from rait.core.runtime import bound_kernel_caches

    bound_kernel_caches()  # before any stage's first matmul, in this process and in the workers it starts

    global _outer
    argv, flags = _global_flags(list(sys.argv[1:] if argv is None else argv))
    if _outer is not None:  # a stage run in-process by `rait run` keeps the outer command's settings
        return _main(argv, _outer)
    _outer = flags["verbose"] - flags["quiet"]
    restore = setup_logging(_outer)
    was_forced = safety._force
    safety.set_force(was_forced or bool(flags["force"]))
    try:
        return _main(argv, _outer)
    finally:
        _outer = None
        safety.set_force(was_forced)
        restore()


_outer: int | None = None  # verbosity of the running main() (stages of `rait run` call main() in-process)


def _main(argv: list[str], verbosity: int) -> int:
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
    except (OSError, UnicodeError, MemoryError) as e:  # the environment, not a bug in rait
        if verbosity > 0:
            raise
        print(f"rait {args.command}: error: {_environment_message(e)} (-v shows the traceback)", file=sys.stderr)
        return 2


def _environment_message(e: BaseException) -> str:
    """One line for an exception caused by the machine or the files, not by rait's code."""
    from rait.core.safety import os_error_message

    if isinstance(e, OSError):
        return str(os_error_message(e))
    if isinstance(e, UnicodeDecodeError):
        return (f"a file is not UTF-8 text ({e.reason} at byte {e.start}); re-save it as UTF-8, e.g. "
                "`iconv -f latin1 -t utf-8 IN > OUT`")
    if isinstance(e, MemoryError):
        return "out of memory; lower batch_size (or max_length) and try again"
    return f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    sys.exit(main())
