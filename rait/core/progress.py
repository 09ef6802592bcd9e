"""Progress bars and logging for long stages: tqdm bars with rate and ETA that keep moving, logging that does
not break them.

* :func:`setup_logging` (called by the CLI: ``-v`` debug, ``-q`` warnings only and no bars) routes ``logging``
  and Python warnings through ``tqdm.write`` so a library warning prints above the bar instead of through it.
* :func:`bar` is a tqdm bar that redraws itself every 2 s (elapsed time keeps moving during a long batch).
* :func:`track_batches` credits a bar per model batch: a forward hook on the model sees every prefill (one
  batch of prompts) and every decode step, so probe and eval bars move per batch, not per chunk.
* :func:`train_progress` is a ``transformers.TrainerCallback``: one bar per training run, per optimizer step,
  with the loss; it starts at the resumed step.

Example:
    >>> from rait.core.progress import bar, fmt_seconds
    >>> with bar(total=3, desc="demo") as b:  # doctest: +SKIP
    ...     b.update(3)
    >>> fmt_seconds(125)
    '2m05s'
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

_level = 0  # verbosity set by setup_logging: <0 quiet, 0 normal, >0 verbose


class TqdmHandler(logging.Handler):
    """A logging handler that writes through ``tqdm.write`` (keeps bars intact)."""

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102
        try:
            tqdm.write(self.format(record), file=sys.stderr)  # stdout stays for results
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(verbosity: int = 0) -> Callable[[], None]:
    """Configure the ``rait`` loggers and warnings for the command line; returns a function that undoes it.

    Args:
        verbosity: ``-1`` (``-q``: rait's warnings and errors only, no Python warnings from libraries, no progress
            bars), ``0`` (info), ``1`` (``-v``: debug).
    """
    global _level, _handler
    names = ("rait", "py.warnings", "transformers", "peft", "accelerate", "datasets", "sentence_transformers")
    saved = [(lg, lg.handlers, lg.propagate, lg.level) for lg in map(logging.getLogger, names)]
    saved_level = _level

    def restore() -> None:
        global _level, _handler
        _level = saved_level
        routed = _handler is not None and _handler in _routed
        if routed:
            _routed.discard(_handler)
        for lg, handlers, propagate, level in saved:
            lg.handlers, lg.propagate = [h for h in handlers if h is not _handler], propagate
            lg.setLevel(level)
        if routed:  # transformers' own stderr handler comes back
            from transformers.utils import logging as hf_logging

            hf_logging.enable_default_handler()
        _handler = None
        logging.captureWarnings(False)
        if verbosity < 0:
            from transformers.utils import logging as hf_logging

            hf_logging.enable_progress_bar()

    _level = verbosity
    handler = _handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbosity > 0
                                           else "%(message)s"))
    for name in ("rait", "py.warnings"):
        lg = logging.getLogger(name)
        lg.handlers = [handler]
        lg.propagate = False
        lg.setLevel(logging.DEBUG if verbosity > 0 else logging.INFO if verbosity == 0 else logging.WARNING)
    if verbosity < 0:  # -q: rait's warnings stay, library deprecation chatter goes
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
    logging.captureWarnings(True)  # warnings.warn(...) -> logger py.warnings -> tqdm.write
    if verbosity < 0:  # -q: no library bars either (hub downloads, "Loading weights")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    for lib in ("transformers", "peft", "accelerate", "datasets", "sentence_transformers"):
        lg = logging.getLogger(lib)
        lg.handlers = [handler]
        lg.propagate = False
        lg.setLevel(logging.INFO if verbosity > 0 else logging.WARNING if verbosity == 0 else logging.ERROR)
    return restore


_handler: logging.Handler | None = None  # the handler of setup_logging, while it is in force
_routed: set = set()


def _route_transformers() -> None:
    """Send transformers' own log records (it installs a stderr handler of its own) through the tqdm handler.

    Done when a bar opens, not in :func:`setup_logging`, so ``rait --help`` does not import transformers.
    """
    if _handler is None or _handler in _routed or "transformers.utils.logging" not in sys.modules:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_default_handler()
    hf_logging.add_handler(_handler)
    _routed.add(_handler)


def quiet() -> bool:
    """True after ``setup_logging(-1)`` (``rait -q``): bars are off."""
    return _level < 0


class _Ticker(threading.Thread):
    """Redraws a bar every ``every`` seconds so its elapsed time and rate stay current."""

    def __init__(self, b: Any, every: float):
        super().__init__(daemon=True)
        self.b, self.every, self.stop = b, every, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            with contextlib.suppress(Exception):
                self.b.refresh()


@contextlib.contextmanager
def bar(total: int | None, desc: str, unit: str = "it", disable: bool = False, initial: int = 0,
        every: float = 2.0) -> Iterator[Any]:
    """A tqdm bar (count, rate, ETA) redrawn at least every ``every`` seconds; off under ``rait -q``."""
    _route_transformers()
    b = tqdm(total=total, desc=desc, unit=unit, disable=disable or quiet(), initial=initial, dynamic_ncols=True,
             mininterval=0.5, smoothing=0.1)
    ticker = None
    if not b.disable:
        ticker = _Ticker(b, every)
        ticker.start()
    try:
        yield b
    finally:
        if ticker:
            ticker.stop.set()
        b.close()


@contextlib.contextmanager
def track_batches(model: Any, b: Any, total: int) -> Iterator[None]:
    """Advance bar ``b`` by each batch's prompts while ``total`` prompts go through ``model`` in one call.

    A forward whose inputs are longer than one token is a prefill of a new batch: the previous batch is then
    done and its rows are credited (rows ÷ samples per prompt, which the first decode step reveals). What is
    left is credited when the block ends, so the bar ends exactly ``total`` further.
    """
    state = {"credited": 0, "pending": 0, "steps": 0}

    def hook(mod: Any, args: Any, kwargs: dict, out: Any) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None or getattr(ids, "ndim", 0) != 2:
            return
        if ids.shape[1] > 1:  # prefill: a new batch starts, the previous one is finished
            _credit(state, b, total)
            state["pending"], state["steps"] = int(ids.shape[0]), 0
        else:
            state["steps"] += 1
            b.set_postfix_str(f"token {state['steps']}", refresh=False)  # shown at the next redraw (<= 2 s)

    handle = model.register_forward_hook(hook, with_kwargs=True) if hasattr(model, "register_forward_hook") else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()
        b.update(max(0, total - state["credited"]))


def _credit(state: dict, b: Any, total: int) -> None:
    n = min(state["pending"], total - state["credited"])
    if n > 0:
        state["credited"] += n
        b.update(n)
    state["pending"] = 0


class TrainBar:
    """The methods of :func:`train_progress`'s callback: a bar of optimizer steps with rate, ETA and loss."""

    def __init__(self, desc: str = "train", every: int = 1):
        self.desc, self.every, self._cm, self.bar, self.losses = desc, max(1, int(every)), None, None, []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:  # noqa: D102
        if not state.is_world_process_zero:
            return
        self._cm = bar(total=state.max_steps, desc=self.desc, unit="step", initial=state.global_step)
        self.bar = self._cm.__enter__()
        self._t0 = time.time()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:  # noqa: D102
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:  # noqa: D102
        if self.bar is not None and logs and "loss" in logs:
            self.losses = (self.losses + [float(logs["loss"])])[-self.every:]
            self.bar.set_postfix(loss=f"{sum(self.losses) / len(self.losses):.4f}", epoch=f"{state.epoch or 0:.2f}",
                                 refresh=False)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:  # noqa: D102
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = self.bar = None


def train_progress(desc: str = "train", every: int = 1) -> Any:
    """A ``transformers.TrainerCallback`` showing one tqdm bar per training run (steps, rate, ETA, and the mean
    loss of the last ``every`` steps)."""
    from transformers import TrainerCallback

    cls = type("TrainProgress", (TrainBar, TrainerCallback), {})
    return cls(desc, every)


class StageClock:
    """``[k/N] stage (elapsed 3m12s, about 9m left)`` lines for ``rait run``: the estimate is the mean time of the
    stages run so far times the stages left (shown once two stages took 10 s or more together).

    >>> c = StageClock(3, now=lambda: 0.0)
    >>> c.start("probe_m0")
    '[1/3] probe_m0 (elapsed 0s)'
    """

    def __init__(self, n: int, now: Any = time.time):
        self.n, self.k, self.now, self.t0, self.done_s = n, 0, now, now(), []
        self._started: float | None = None

    def start(self, name: str) -> str:
        """Line for the next stage (also closes the previous one)."""
        t = self.now()
        if self._started is not None:
            self.done_s.append(t - self._started)
        self._started, self.k = t, self.k + 1
        msg = f"[{self.k}/{self.n}] {name} (elapsed {fmt_seconds(t - self.t0)}"
        if len(self.done_s) >= 2 and sum(self.done_s) >= 10:  # no estimate from the first, quick stages
            left = sum(self.done_s) / len(self.done_s) * (self.n - self.k + 1)
            msg += f", about {fmt_seconds(left)} left"
        return msg + ")"


def fmt_seconds(s: float) -> str:
    """``75`` -> ``1m15s``; ``3700`` -> ``1h01m``.

    >>> fmt_seconds(75), fmt_seconds(3700), fmt_seconds(4)
    ('1m15s', '1h01m', '4s')
    """
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
