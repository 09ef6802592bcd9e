"""Running the stages of a plan: one at a time, or several at once (``RunConfig.jobs``).

A stage starts once every stage it reads from is done. ``jobs: 1`` runs the plan in its order (a dependency
order), in this thread. With ``jobs`` > 1 up to that many stages run at once, each in its own worker process
(:mod:`rait.run.isolate`), torch's threads divided between them (``threads // jobs``, at least one each); among the
stages that could start, the one with the costliest chain of stages waiting on it goes first
(:func:`critical_path`), and a stage that starts with nothing beside it — nothing running, nothing else ready, so
nothing can become ready before it ends — gets all the threads.

Why: on a CPU a small model's operators are too short to keep two threads busy, while two stages of one thread
each keep both cores busy. Measured on a 2-core AMD EPYC (bf16, 2026-12-06; docs/speed.md): two LoRA trainings of
the demo one after the other with 2 threads each took 162.9 s, side by side with one thread each 127.8 s; two
evaluations 24.4 vs 13.9 s.

When a stage fails, no new stage starts; the running ones finish (their results are kept, so the rerun that
follows skips them) and the first error is raised.

Example::

    rait run configs/demo.yaml --jobs 2      # two stages at a time, one torch thread each on a 2-core CPU
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import TYPE_CHECKING, Callable

from rait.core.artifacts import atomic_write_text
from rait.errors import RaitError

if TYPE_CHECKING:
    from rait.run.pipeline import Plan, Stage


def execute(plan: Plan, dry_run: bool = False, log: Callable[[str], None] = print) -> dict[str, float]:
    """Run every stage that is not done; returns seconds per executed stage."""
    from rait.core import safety
    from rait.run.pipeline import spec

    safety.confined(plan.cfg.out_root, plan.cfg.name)
    todo = []
    for st in plan.stages.values():
        if plan.done(st):
            log(f"[skip] {st.name}")
        elif dry_run:
            log(f"[run ] {st.name}: {json.dumps(spec(st.cfg), sort_keys=True)}")
        else:
            todo.append(st)
    if dry_run:
        return {}
    safety.acquire(plan.root)  # one process per run directory; released at exit
    try:
        return run_stages(plan, todo, log)
    finally:
        safety.release(plan.root)


def run_stages(plan: Plan, todo: list[Stage], log: Callable[[str], None]) -> dict[str, float]:
    """Run ``todo`` (in plan order) with ``plan.cfg.jobs`` stages at a time; seconds per stage."""
    from rait.core.progress import StageClock

    clock, timings = StageClock(len(todo)), {}
    jobs = min(plan.cfg.jobs, len(todo))
    if jobs <= 1:
        for st in todo:
            log(clock.start(st.name))
            timings[st.name] = run_one(plan, st, log)
        return timings
    threads = worker_threads(jobs)
    rank = critical_path(todo)
    waiting, running, done = sorted(todo, key=lambda s: -rank[s.name]), set(), set()  # stable: plan order in ties
    names = {st.name for st in todo}
    ended: queue.Queue = queue.Queue()
    failure: BaseException | None = None
    while waiting or running:
        while failure is None and len(running) < jobs:
            ready = [s for s in waiting if all(d not in names or d in done for d in s.deps)]
            if not ready:
                break
            st = ready[0]
            waiting.remove(st)
            alone = not running and len(ready) == 1  # nothing beside it now: all of this process's threads
            running.add(st.name)
            log(clock.start(st.name))
            threading.Thread(target=_in_thread, args=(plan, st, log, worker_threads(1) if alone else threads, ended),
                             name=f"rait-{st.name}", daemon=True).start()  # daemon: an interrupted rait run exits
        if not running:
            break
        name, seconds, error = _next(ended)
        running.discard(name)
        if error is None:
            done.add(name)
            timings[name] = seconds
            log(f"[done] {name} ({seconds:.0f}s)")
        elif failure is None:
            failure = error
            if running:
                log(f"[fail] {name}; letting the {len(running)} running stage(s) finish: {sorted(running)}")
    if failure is not None:
        raise failure
    if waiting:  # cannot happen with a plan in dependency order
        raise RaitError(f"stages {[s.name for s in waiting]} wait on stages that never ran")
    return timings


#: rough relative cost of a stage by kind (its name's first part), for :func:`critical_path`: on the demo a probe,
#: or a training run take a minute or two, the gradients longer, an evaluation or the rehearsal a few seconds
COST = {"probe_m0": 3, "probe_mr": 3, "grads": 4, "train": 3, "rehearse": 1, "eval": 1}


def critical_path(stages: list) -> dict[str, float]:
    """Per stage: its cost plus the costliest chain of stages that wait on it (among ``stages``, given in
    dependency order). The scheduler starts the ready stage with the longest such chain first, so that the stages
    everything else waits on (the probe, the rehearsal, the gradients) do not queue behind short leaves.

    >>> from types import SimpleNamespace as S
    >>> critical_path([S(name="probe_m0", deps=[]), S(name="eval:x", deps=[]), S(name="train:a", deps=["probe_m0"])])
    {'train:a': 3, 'eval:x': 1, 'probe_m0': 6}
    """
    waiting_on: dict[str, list[str]] = {st.name: [] for st in stages}
    for st in stages:
        for d in st.deps:
            if d in waiting_on:
                waiting_on[d].append(st.name)
    rank: dict[str, float] = {}
    for st in reversed(stages):
        own = COST.get(st.name, COST.get(st.name.split(":")[0], 0))
        rank[st.name] = own + max((rank[n] for n in waiting_on[st.name]), default=0)
    return rank


def _next(ended: queue.Queue) -> tuple[str, float, BaseException | None]:
    while True:  # a timeout, so that Ctrl-C reaches this thread while it waits
        try:
            return ended.get(timeout=0.5)
        except queue.Empty:
            continue


def _in_thread(plan: Plan, st: Stage, log: Callable[[str], None], threads: int, ended: queue.Queue) -> None:
    try:
        ended.put((st.name, run_one(plan, st, log, threads), None))
    except BaseException as e:  # noqa: BLE001 — handed to the scheduling thread, which raises the first one
        ended.put((st.name, 0.0, e))


def worker_threads(jobs: int) -> int:
    """torch threads of each of ``jobs`` workers running at once: this process's threads divided between them.

    >>> import torch
    >>> worker_threads(1) == torch.get_num_threads()
    True
    >>> worker_threads(10**6)
    1
    """
    import torch

    return max(1, torch.get_num_threads() // max(1, jobs))


def run_one(plan: Plan, st: Stage, log: Callable[[str], None] = print, threads: int | None = None) -> float:
    """Run one stage (clean start or resume inside it), then write its done-marker; returns its seconds."""
    from rait.core import safety
    from rait.run.pipeline import spec

    started = st.out / ".stage-started.json"
    resume = started.exists() and json.loads(started.read_text()).get("key") == st.key
    if st.name != "aggregate" and st.out.exists() and not resume:
        # outputs of other settings: start clean, deleting only what rait wrote (same key: resume inside)
        safety.clear_stage_dir(st.out, *safety.stage_record(st.out), f"settings of stage {st.name} changed", log=log)
    if st.name != "aggregate":
        safety.clean_stale_temps(st.out, log)
        if not resume:  # its time stamp is the first start: what the stage wrote since then is rait's
            atomic_write_text(started, json.dumps({"key": st.key}) + "\n")
    t0 = time.time()
    _run_stage(plan, st, threads)
    seconds = round(time.time() - t0, 2)
    atomic_write_text(plan._marker(st), json.dumps({
        "key": st.key, "seconds": seconds, "config": spec(st.cfg),
        "files": safety.list_files(st.out) if st.name != "aggregate" else None}, sort_keys=True) + "\n")
    return seconds


def _run_stage(plan: Plan, st: Stage, threads: int | None) -> None:
    """In a fresh worker (``isolate``), or here, giving the stage's freed peak back to the system afterwards."""
    if plan.cfg.isolate:
        from rait.run.isolate import config_data, run_in_worker

        return run_in_worker(config_data(plan.cfg), st.name, st.key, threads=threads)
    from rait.generation.cache import release_freed_memory

    st.fn()
    release_freed_memory()  # a stage's peak is not kept resident for the rest of the run
