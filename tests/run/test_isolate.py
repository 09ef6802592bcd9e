"""rait.run.isolate: every stage in a fresh worker gives the in-process results; a worker's error or death comes back
to the parent as a clear message naming the stage, and nothing is marked done."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rait.cli import main
from rait.core.config import load_yaml
from rait.errors import RaitError
from rait.run.isolate import config_data, describe_exit, run_in_worker
from rait.run.pipeline import Plan, RunConfig, execute

FAILING = '''
import json, os, signal
from dataclasses import dataclass
from rait.errors import DataError, RaitError
from rait.methods import register

@dataclass
class C:
    how: str = "data"

@register("toy_fail", "fails in its eval hook", C, needs=(), trains=False)
def evaluate(ctx):
    if ctx.cfg.how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if ctx.cfg.how == "hang":  # says who it is, then waits to be ended
        import time
        from pathlib import Path

        Path(ctx.out).parent.joinpath("worker.pid").write_text(str(os.getpid()))
        time.sleep(120)
    if ctx.cfg.how == "kill_once":  # killed the first time, half-way through its writes; Keep-All the next
        from pathlib import Path
        from rait.core.artifacts import read_jsonl, write_jsonl
        from rait.core.metrics import summarize

        items = read_jsonl(Path(ctx.reference) / "items.jsonl")
        write_jsonl(Path(ctx.out) / "items.jsonl", items)
        if not (Path(ctx.out).parent / "killed").exists():
            (Path(ctx.out).parent / "killed").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        (Path(ctx.out) / "metrics.json").write_text(json.dumps(summarize([r["verdict"] for r in items], n_boot=0)))
        return
    if ctx.cfg.how == "state":
        import torch
        from rait.core import progress, safety

        raise RaitError("state " + json.dumps({"env": os.environ.get("RAIT_TOY"), "cwd": os.getcwd(),
                                                "threads": torch.get_num_threads(), "quiet": progress.quiet(),
                                                "forced": safety.forced()}))
    raise DataError(ctx.data, 7, "broken on purpose")  # a constructor that pickle cannot call with the message
'''


pytestmark = pytest.mark.usefixtures("registries")


def _items(root: Path) -> dict[str, list]:
    rows = lambda p: [(r["id"], r["output"], r["verdict"], r["confidence"]) for r in map(json.loads, p.open())]  # noqa: E731
    return {str(p.relative_to(root)): rows(p) for p in sorted(root.glob("eval/*/*/*/items.jsonl"))}


def test_isolated_run_gives_the_in_process_results(tiny_run):
    cfg = yaml.safe_load(tiny_run.read_text())
    roots = {}
    for isolate in (True, False):
        cfg.update(isolate=isolate, name=f"iso{isolate}", methods=["init_basic", "van", "craft"])
        tiny_run.write_text(yaml.safe_dump(cfg))
        plan = Plan(load_yaml(RunConfig, tiny_run))
        assert set(execute(plan, log=lambda m: None)) == set(plan.stages)
        roots[isolate] = plan.root
    a, b = _items(roots[True]), _items(roots[False])
    assert len(a) == 6 and a == b  # 3 methods × id/ood, same outputs, verdicts and confidences item by item
    same = [(roots[x] / "probe" / "m0" / "table.jsonl").read_bytes() for x in (True, False)]
    assert same[0] == same[1]


def _failing_run(tiny_run, how: str) -> Path:
    plugin = tiny_run.parent / "toy_fail.py"
    plugin.write_text(FAILING)
    cfg = yaml.safe_load(tiny_run.read_text())
    cfg.update(plugins=[str(plugin)], methods=["toy_fail"], method_config={"toy_fail": {"how": how}})
    tiny_run.write_text(yaml.safe_dump(cfg))
    return tiny_run


def test_a_stage_error_comes_back_with_its_message(tiny_run, capsys):
    assert main(["run", str(_failing_run(tiny_run, "data"))]) == 2
    err = capsys.readouterr().err
    assert "id.jsonl:7: broken on purpose" in err and "Traceback" not in err
    root = tiny_run.parent / "runs" / "tiny"
    assert (root / "eval/init_basic/seed0/id/.stage.json").exists()  # the stages before it finished and count
    assert not (root / "eval/toy_fail/seed0/id/.stage.json").exists()


def test_a_killed_worker_is_reported_with_its_signal(tiny_run, capsys):
    assert main(["run", str(_failing_run(tiny_run, "kill"))]) == 2
    err = capsys.readouterr().err
    assert "stage eval:toy_fail:0:id: its worker process was killed by signal 9 (SIGKILL: out of memory?)" in err
    assert "run the same command again to resume it" in err
    assert not (tiny_run.parent / "runs/tiny/eval/toy_fail/seed0/id/.stage.json").exists()


def test_a_run_whose_worker_was_killed_resumes(tiny_run, capsys):
    run_yaml = _failing_run(tiny_run, "kill_once")
    assert main(["run", str(run_yaml)]) == 2
    assert "its worker process was killed by signal 9" in capsys.readouterr().err
    assert main(["run", str(run_yaml)]) == 0
    results = json.loads((tiny_run.parent / "runs/tiny/results.json").read_text())
    assert "toy_fail" in json.dumps(results)


def test_the_worker_sees_the_state_of_this_process_now(tiny_run, capsys, monkeypatch, tmp_path):
    import torch

    run_yaml = _failing_run(tiny_run, "state")
    with pytest.raises(RaitError):  # the forkserver is running before the state below changes
        run_in_worker(config_data(load_yaml(RunConfig, run_yaml)), "data", "not-the-key")
    monkeypatch.setenv("RAIT_TOY", "set late")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["-q", "--force", "run", str(run_yaml)]) == 2
    finally:
        torch.set_num_threads(threads)
    state = json.loads(capsys.readouterr().err.split("state ", 1)[1].strip())
    assert state == {"env": "set late", "cwd": str(tmp_path / "elsewhere"), "threads": 1, "quiet": True, "forced": True}


def test_the_worker_checks_it_runs_the_parents_stage(tiny_run):
    cfg = load_yaml(RunConfig, tiny_run)
    with pytest.raises(RaitError, match="stage data: the worker derived a different plan"):
        run_in_worker(config_data(cfg), "data", "not-the-key")


def test_a_method_registered_only_in_this_process_is_explained(tiny_run, capsys):
    from dataclasses import make_dataclass

    from rait.methods import register

    register("toy_here", "registered in the test process", make_dataclass("C", []), needs=(), trains=False)(print)
    cfg = yaml.safe_load(tiny_run.read_text())
    tiny_run.write_text(yaml.safe_dump({**cfg, "methods": ["toy_here"]}))
    with pytest.raises(RaitError, match="unknown method 'toy_here'.*list such methods, backends or artifact kinds "
                                        "under `plugins`, or run with isolate: false"):
        execute(Plan(load_yaml(RunConfig, tiny_run)), log=lambda m: None)


def test_exit_codes_in_words():
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-11) == "was killed by signal 11 (SIGSEGV)"
    assert describe_exit(None) == "stopped answering"


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_worker_ends_when_rait_run_is_killed(tiny_run):
    """SIGKILL (or SIGTERM) of `rait run` gives it no chance to stop its worker: the worker ends itself."""
    run_yaml = _failing_run(tiny_run, "hang")
    pid_file = tiny_run.parent / "runs/tiny/eval/toy_fail/seed0/worker.pid"
    parent = subprocess.Popen([sys.executable, "-m", "rait.cli", "-q", "run", str(run_yaml)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not pid_file.exists() and parent.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert pid_file.exists(), "the hanging stage never started"
        worker = int(pid_file.read_text())
        assert _running(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 15
        while _running(worker) and time.time() < deadline:
            time.sleep(0.2)
        assert not _running(worker)
    finally:
        if parent.poll() is None:
            parent.kill()
        if pid_file.exists() and _running(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
