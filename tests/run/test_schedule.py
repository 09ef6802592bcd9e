"""rait.run.schedule: with ``jobs`` > 1 a stage starts only after the stages it reads from, at most ``jobs`` run at
once, a failure stops new starts while the running stages finish, and the results equal a one-at-a-time run."""

import threading
import time
from types import SimpleNamespace

import pytest
import yaml

from rait.core.config import ConfigError, load_yaml
from rait.run import schedule
from rait.run.pipeline import Plan, RunConfig, execute
from tests.run.test_isolate import _items  # eval outputs item by item, per eval directory


def _fake(monkeypatch, fail: set[str] = frozenset(), seconds: dict[str, float] | None = None) -> list[tuple]:
    """Replace run_one by a recorder: (event, stage, time, thread name) per start and end."""
    events, lock = [], threading.Lock()

    def run_one(plan, st, log, threads=None):
        with lock:
            events.append(("start", st.name, time.monotonic(), threading.current_thread().name, threads))
        time.sleep((seconds or {}).get(st.name, 0.05))
        with lock:
            events.append(("end", st.name, time.monotonic(), threading.current_thread().name, threads))
        if st.name in fail:
            raise RuntimeError(f"{st.name} broke")
        return 0.05

    monkeypatch.setattr(schedule, "run_one", run_one)
    return events


def _stages(spec: dict[str, list[str]]) -> list:
    return [SimpleNamespace(name=n, deps=d) for n, d in spec.items()]


def _plan(jobs: int):
    return SimpleNamespace(cfg=SimpleNamespace(jobs=jobs))


def test_stages_wait_for_their_inputs_and_at_most_jobs_run_at_once(monkeypatch):
    events = _fake(monkeypatch, seconds={"b": 0.2})
    dag = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": [], "f": ["done-before"]}
    timings = schedule.run_stages(_plan(2), _stages(dag), log=lambda m: None)
    assert set(timings) == set(dag)
    at = {(e, n): t for e, n, t, _, _ in events}
    for n, deps in dag.items():
        for d in deps:
            if d in dag:
                assert at[("start", n)] >= at[("end", d)], (n, d)
    running, most = 0, 0
    for e, *_ in sorted(events, key=lambda e: e[2]):
        running += 1 if e == "start" else -1
        most = max(most, running)
    assert most == 2  # two at a time, never three
    assert {th for *_, th, _ in events} != {threading.current_thread().name}  # in threads of their own


def test_a_failure_stops_new_starts_and_lets_the_running_stages_finish(monkeypatch):
    events = _fake(monkeypatch, fail={"a"}, seconds={"a": 0.01, "b": 0.3})
    logged = []
    with pytest.raises(RuntimeError, match="a broke"):
        schedule.run_stages(_plan(2), _stages({"a": [], "b": [], "c": [], "d": ["a"]}), log=logged.append)
    names = [(e, n) for e, n, *_ in events]
    assert ("end", "b") in names  # the running stage finished
    assert ("start", "c") not in names and ("start", "d") not in names  # nothing new after the failure
    assert any(m.startswith("[fail] a") and "'b'" in m for m in logged)


def test_the_longest_chain_starts_first(monkeypatch):
    events = _fake(monkeypatch)
    dag = {"data": [], "eval:x:0:id": ["data"], "eval:y:0:id": ["data"], "probe_m0": ["data"],
           "train:a:0": ["probe_m0"]}
    schedule.run_stages(_plan(2), _stages(dag), log=lambda m: None)
    starts = [n for e, n, *_ in events if e == "start"]
    assert starts[:2] == ["data", "probe_m0"]  # the probe, which the training waits on, before the evaluations


def test_one_job_runs_in_plan_order_in_this_thread(monkeypatch):
    events = _fake(monkeypatch)
    schedule.run_stages(_plan(1), _stages({"x": [], "y": [], "z": ["x"]}), log=lambda m: None)
    assert [n for e, n, *_ in events if e == "start"] == ["x", "y", "z"]
    assert {th for *_, th, _ in events} == {threading.current_thread().name}


def test_each_worker_gets_its_share_of_the_threads(monkeypatch):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        events = _fake(monkeypatch)
        schedule.run_stages(_plan(2), _stages({"a": [], "b": [], "c": ["a", "b"]}), log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    got = {n: t for e, n, _, _, t in events if e == "start"}
    assert got == {"a": 1, "b": 1, "c": 2}  # c starts alone (nothing else left): all the threads


def test_jobs_needs_workers(tiny_run):
    with pytest.raises(ConfigError, match="jobs: 2 needs isolate: true.*--jobs 1"):
        load_yaml(RunConfig, tiny_run, ["jobs=2", "isolate=false"])
    with pytest.raises(ConfigError, match="jobs: 0"):
        load_yaml(RunConfig, tiny_run, ["jobs=0"])


def test_two_jobs_give_the_results_of_one(tiny_run):
    cfg = yaml.safe_load(tiny_run.read_text())
    roots, logs = {}, {}
    for jobs in (1, 2):
        cfg.update(jobs=jobs, name=f"jobs{jobs}", methods=["init_basic", "van", "cor_rait"])
        tiny_run.write_text(yaml.safe_dump(cfg))
        plan = Plan(load_yaml(RunConfig, tiny_run))
        logs[jobs] = []
        assert set(execute(plan, log=logs[jobs].append)) == set(plan.stages)
        roots[jobs] = plan.root
    a, b = _items(roots[1]), _items(roots[2])
    assert len(a) == 6 and a == b  # 3 methods × id/ood, same outputs, verdicts and confidences item by item
    assert (roots[1] / "probe/m0/table.jsonl").read_bytes() == (roots[2] / "probe/m0/table.jsonl").read_bytes()
    assert any(m.startswith("[done]") for m in logs[2]) and not any(m.startswith("[done]") for m in logs[1])
