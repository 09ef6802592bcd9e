"""Each stage of ``rait run`` in a fresh worker process (``RunConfig.isolate``, on by default).

Why: a stage leaves state behind in the process that ran it — heap fragmentation, glibc's allocator thresholds
(the sampler keeps freed memory in the heap, :func:`rait.generation.cache.keep_freed_memory`), a grown resident
set. Measured on the TriviaQA → NQ benchmark (Sapphire Rapids, 2 threads, docs/speed.md), its gradient stage took
575 s as the 65th stage of one process and 358 s alone in a fresh one, on the same rows. A worker per stage starts
every stage from the same clean state, and a stage's memory is given back to the system when it ends.

How: workers are forked from a ``forkserver`` process (``spawn`` where the platform has no forkserver) that has
imported torch, transformers and the stages once, so a stage starts in a fraction of a second instead of paying
the imports again. The forkserver never runs a tensor operation itself: forking a process whose OpenMP thread
pool is live hangs the child (GNU libgomp), which is why a plain ``fork`` of the pipeline process is not used.
The worker takes over the state of the process that runs ``rait run`` *now* (environment, working directory,
``sys.path``, torch's thread count, ``-q``/``-v`` and ``--force``: the forkserver may have started stages ago),
rebuilds the plan from the run config (plugins included), checks that it derives the same stage key as the
parent and runs that stage; an error comes back to the parent with its message, a worker killed by the
system (out of memory) is reported with its signal. A worker whose ``rait run`` is gone — killed with SIGTERM or
SIGKILL, which leave it no time to stop its worker — ends itself at once (:func:`_follow_parent`), so no stage
goes on writing to a run directory that nothing waits on.

Example::

    rait run configs/demo.yaml                 # every stage in its own worker
    rait run configs/demo.yaml --isolate false # all stages in this process (debuggers, monkeypatched tests)
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import pickle
import signal
import sys
import traceback
from typing import Any

from rait.errors import RaitError

#: imported once by the forkserver, so that workers start with them loaded (a missing optional one is skipped)
PRELOAD = ["torch", "transformers", "transformers.modeling_utils", "transformers.models.llama.modeling_llama",
           "peft", "sentence_transformers", "rait.core.models", "rait.run.pipeline", "rait.stages.probe",
           "rait.stages.rehearse", "rait.stages.train", "rait.stages.evaluate", "rait.gradients.cli",
           "rait.generation.hf"]


def config_data(cfg: Any) -> dict[str, Any]:
    """The fields of a RunConfig as plain data, from which :func:`rait.core.config.from_dict` rebuilds it."""
    return {f.name: (dataclasses.asdict(v) if dataclasses.is_dataclass(v := getattr(cfg, f.name)) else v)
            for f in dataclasses.fields(cfg)}


def _context() -> Any:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


def run_in_worker(data: dict[str, Any], name: str, key: str, threads: int | None = None) -> None:
    """Run stage ``name`` of the run described by ``data`` in a fresh worker; re-raise its error here. ``threads``:
    the worker's torch threads (default: this process's).

    >>> from rait.run.isolate import describe_exit
    >>> describe_exit(-9)
    'was killed by signal 9 (SIGKILL: out of memory?)'
    """
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    alive, held = ctx.Pipe(duplex=False)  # `held` stays here: the worker sees EOF on `alive` once this process ends
    state = _process_state()
    if threads:
        state["threads"] = threads
    proc = ctx.Process(target=_work, args=(state, data, name, key, send, alive), name=f"rait-stage-{name}")
    proc.start()
    send.close()
    alive.close()
    try:
        try:
            outcome = recv.recv()
        except EOFError:  # the worker died without a word: killed, or crashed in C
            outcome = RaitError(f"stage {name}: its worker process {describe_exit(_exitcode(proc))} before the stage "
                                "finished; run the same command again to resume it")
        proc.join()
    finally:
        if proc.is_alive():  # Ctrl-C or an error here: do not leave the worker running
            proc.terminate()
            proc.join()
        recv.close()
        held.close()
    if outcome is not None:
        raise outcome


def _exitcode(proc: Any) -> int | None:
    proc.join(timeout=30)
    return proc.exitcode


def describe_exit(code: int | None) -> str:
    """How a worker ended, in words (negative exit codes are signals)."""
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = "unknown signal"
        hint = ": out of memory?" if -code == signal.SIGKILL else ""
        return f"was killed by signal {-code} ({sig}{hint})"
    return f"exited with code {code}"


def _process_state() -> dict[str, Any]:
    """What a stage of this process would see that the forkserver, started earlier, may not have."""
    from rait.core import progress, safety

    torch = sys.modules.get("torch")
    return {"env": dict(os.environ), "cwd": os.getcwd(), "sys_path": list(sys.path),
            "threads": torch.get_num_threads() if torch else None, "force": safety._force,
            "verbosity": progress._level if progress._handler is not None else None}


def _adopt(state: dict[str, Any]) -> None:
    from rait.core import progress, safety

    os.environ.clear()
    os.environ.update(state["env"])
    os.chdir(state["cwd"])
    sys.path[:] = state["sys_path"]
    if state["threads"]:
        import torch

        torch.set_num_threads(state["threads"])
    safety.set_force(state["force"])
    if state["verbosity"] is not None:
        progress.setup_logging(state["verbosity"])


def _follow_parent(alive: Any) -> None:
    """End this worker (SIGKILL, like any kill of a stage: its writes are atomic and the stage resumes) once the
    ``rait run`` process is gone: ``alive`` is the read end of a pipe whose only write end that process holds, so
    reading it ends (EOF) when the process does, however it ended. The worker's parent process is no sign: the
    forkserver outlives a killed ``rait run`` (measured: it and a waiting worker were still there after SIGKILL)."""
    import threading

    def watch() -> None:
        try:
            while True:
                alive.recv()
        except (EOFError, OSError):
            os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="rait-follow-parent", daemon=True).start()


def _work(state: dict[str, Any], data: dict[str, Any], name: str, key: str, conn: Any, alive: Any) -> None:
    """Worker body: adopt the parent's state, rebuild the plan, check the stage key, run the stage, send back
    ``None`` or the error."""
    try:
        _follow_parent(alive)
        _adopt(state)
        from rait.core.config import from_dict
        from rait.run.pipeline import Plan, RunConfig

        try:
            plan = Plan(from_dict(RunConfig, data))
        except RaitError as e:
            raise RaitError(f"stage {name}: the worker could not rebuild the run config: {e}. {_HINT}") from None
        st = plan.stages.get(name)
        if st is None or st.key != key:
            raise RaitError(f"stage {name}: the worker derived a different plan from the run config than rait run "
                            f"did. {_HINT}")
        st.fn()
        conn.send(None)
    except BaseException as e:  # noqa: BLE001 — every failure goes back to the parent
        conn.send(_portable(e))
    finally:
        conn.close()


_HINT = ("A worker sees what the run config's `plugins` register, not what was registered in the calling Python "
         "process; list such methods, backends or artifact kinds under `plugins`, or run with isolate: false")


def _portable(e: BaseException) -> BaseException:
    """``e`` if it survives pickling; otherwise a RaitError (or RuntimeError) with the same message."""
    if not isinstance(e, RaitError):
        traceback.print_exc(file=sys.stderr)  # a bug, not a user error: the worker's traceback is the useful one
    try:
        back = pickle.loads(pickle.dumps(e))
        if type(back) is type(e) and str(back) == str(e):
            return back
    except Exception:  # noqa: BLE001 — exceptions whose constructor takes other arguments than the message
        pass
    cls = RaitError if isinstance(e, RaitError) else RuntimeError
    return cls(str(e) if isinstance(e, RaitError) else f"{type(e).__name__}: {e}")
