"""Never lose data: rait deletes or overwrites only files it wrote (rait.core.safety and its call sites)."""

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from rait.core import safety
from rait.errors import RaitError


def _small_run(tiny_run, **over):
    cfg = yaml.safe_load(tiny_run.read_text())
    cfg.update({"methods": ["init_basic", "van"]}, **over)
    tiny_run.write_text(yaml.safe_dump(cfg))
    return tiny_run


def test_foreign_file_survives_changed_settings_and_force_removes_it(tiny_run):
    """Acceptance (issue 16): a foreign file in a stage dir + changed settings + rerun -> it survives and the run
    stops naming it; under --force the run proceeds and the stale directory (file included) is replaced."""
    from rait.core.config import load_yaml
    from rait.run.pipeline import Plan, RunConfig, execute

    path = _small_run(tiny_run)
    plan = Plan(load_yaml(RunConfig, path))
    execute(plan, log=lambda m: None)
    stage_dir = plan.stages["probe_m0"].out
    mine = stage_dir / "my_notes.txt"
    mine.write_text("do not delete")
    # unchanged settings: nothing reruns and nothing is touched
    assert execute(Plan(load_yaml(RunConfig, path)), log=lambda m: None) == {}
    changed = Plan(load_yaml(RunConfig, path, ["probe.k=2"]))
    with pytest.raises(RaitError, match=r"probe/m0: settings of stage probe_m0 changed.*my_notes\.txt.*--force"):
        execute(changed, log=lambda m: None)
    assert mine.read_text() == "do not delete"
    assert (stage_dir / "table.jsonl").exists()  # the old outputs are still there too
    # a file rait wrote but the user edited counts as foreign as well
    mine.unlink()
    table = stage_dir / "table.jsonl"
    table.write_text(table.read_text() + "\n")
    with pytest.raises(RaitError, match=r"table\.jsonl"):
        execute(changed, log=lambda m: None)
    mine.write_text("do not delete")
    lines = []
    safety.set_force(True)
    try:
        ran = execute(changed, log=lines.append)
    finally:
        safety.set_force(False)
    assert "probe_m0" in ran and not mine.exists()
    assert any("[clean]" in line and "foreign (--force)" in line for line in lines)


def test_changed_settings_without_foreign_files_say_what_is_discarded(tiny_run):
    from rait.core.config import load_yaml
    from rait.run.pipeline import Plan, RunConfig, execute

    path = _small_run(tiny_run)
    execute(Plan(load_yaml(RunConfig, path)), log=lambda m: None)
    lines = []
    ran = execute(Plan(load_yaml(RunConfig, path, ["train.epochs=2"])), log=lines.append)
    assert "train:van:0" in ran and "probe_m0" not in ran
    assert any(line.startswith("[clean]") and "train/van/seed0" in line and "discarding" in line for line in lines)
    assert any(line.startswith("[1/") and "train:van:0" in line and "elapsed" in line for line in lines)


def test_unfinished_stage_keeps_files_that_predate_it(tmp_path):
    d = tmp_path / "stage"
    d.mkdir()
    (d / "old.txt").write_text("user")
    (d / ".stage-started.json").write_text("{}")
    os.utime(d / "old.txt", ns=(1, 1))
    (d / "chunk.jsonl").write_text("partial")
    with pytest.raises(RaitError, match=r"old\.txt") as e:
        safety.clear_stage_dir(d, *safety.stage_record(d), "settings changed", log=lambda m: None)
    assert "chunk.jsonl" not in str(e.value)
    (d / "old.txt").unlink()
    safety.clear_stage_dir(d, *safety.stage_record(d), "settings changed", log=lambda m: None)
    assert not d.exists()


def test_run_name_cannot_leave_out_root(tmp_path):
    from rait.core.config import load_yaml
    from rait.run.pipeline import Plan, RunConfig, execute

    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump({"name": "../../x", "out_root": str(tmp_path / "runs"), "methods": ["init_basic"]}))
    with pytest.raises(RaitError, match=r"run name '\.\./\.\./x' leaves out_root"):
        execute(Plan(load_yaml(RunConfig, p)), dry_run=True, log=lambda m: None)
    assert safety.confined("runs", "exp/seed0").as_posix() == "runs/exp/seed0"
    for bad in ("/abs", ".", "a/../.."):
        with pytest.raises(RaitError, match="leaves out_root"):
            safety.confined(tmp_path, bad)


def test_lock_refuses_a_second_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from rait.core import safety
        safety.acquire({str(tmp_path)!r})
        print("held", flush=True)
        time.sleep(30)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RaitError, match=rf"another rait process \(pid {holder.pid}\) is writing"):
            safety.acquire(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    with safety.output_lock(tmp_path):  # free again once the holder is gone
        with safety.output_lock(tmp_path):  # re-entrant within one process
            pass


def test_stale_temp_files_are_cleaned_but_live_and_user_files_stay(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".table.jsonl.tmp{dead_pid}").write_text("")
    (tmp_path / f"van.npy.tmp{dead_pid}.npy").write_text("")
    (tmp_path / f".live.tmp{os.getpid()}").write_text("")
    (tmp_path / "notes.tmp").write_text("user")
    removed = safety.clean_stale_temps(tmp_path)
    assert sorted(removed) == sorted([f".table.jsonl.tmp{dead_pid}", f"van.npy.tmp{dead_pid}.npy"])
    assert (tmp_path / "notes.tmp").exists() and (tmp_path / f".live.tmp{os.getpid()}").exists()


def test_atomic_write_on_full_disk_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    target.write_text("old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RaitError, match=r"manifest\.json: no space left on device; free some space"):
        safety.atomic_write(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_build_refuses_another_methods_directory(tmp_path, monkeypatch):
    from rait.stages.build import run_build

    table = tmp_path / "table.jsonl"
    table.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Q{i}?", "answers": ["a"], "kind": "oeqa",
                                         "correctness": i / 9, "certainty": 0.5}) + "\n" for i in range(10)))
    out = tmp_path / "build"
    run_build("van", str(table), str(out), [])
    before = (out / "train.jsonl").read_text()
    run_build("van", str(table), str(out), [])  # the same method again: its own files, fine
    with pytest.raises(RaitError, match=r"train\.jsonl.*written by another run \(stage=build, method=van\).*--force"):
        run_build("cor_rait", str(table), str(out), [])
    assert (out / "train.jsonl").read_text() == before
    user = tmp_path / "user"
    user.mkdir()
    (user / "train.jsonl").write_text("mine\n")
    with pytest.raises(RaitError, match=r"not written by rait \(no manifest\.json\)"):
        run_build("van", str(table), str(user), [])
    monkeypatch.setenv("RAIT_FORCE", "1")
    run_build("cor_rait", str(table), str(out), [])
    assert json.loads((out / "manifest.json").read_text())["outputs"]["method"] == "cor_rait"


def test_check_writable(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RaitError, match="output path is a file"):
        safety.check_writable(f)
    with pytest.raises(RaitError, match="a part of this path is a file"):
        safety.check_writable(f / "sub")
    safety.check_writable(tmp_path / "new" / "dir")
    assert (tmp_path / "new" / "dir").is_dir()


def test_force_flag_anywhere_on_the_command_line(monkeypatch, tmp_path):
    import rait.run.pipeline as pl
    from rait.cli import _global_flags, main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("name: x\nmethods: [init_basic]\n")  # `rait run` reads its config first

    assert _global_flags(["run", "c.yaml", "--force", "-vv", "-q", "--", "-v"]) == (
        ["run", "c.yaml", "--", "-v"], {"verbose": 2, "quiet": 1, "force": 1})
    seen = []
    monkeypatch.setattr(pl, "run", lambda config, overrides=(), dry_run=False: seen.append(safety.forced()))
    # (rait run builds the typed RunConfig from c.yaml, then calls pipeline.run)
    assert main(["run", "c.yaml", "--force"]) == 0 and main(["run", "c.yaml"]) == 0
    assert seen == [True, False] and not safety.forced()  # scoped to the one command


class Kill(BaseException):
    """Stands in for kill -9: nothing in rait catches it."""


def _kill_on_write(monkeypatch, k):
    real, calls = safety.atomic_write, []

    def write(path, data):
        calls.append(str(path))
        if len(calls) == k:
            raise Kill(path)
        real(path, data)

    monkeypatch.setattr(safety, "atomic_write", write)
    return calls


def _kill_and_resume(tiny_run, tmp_path, monkeypatch, k):
    """Run with a kill at the k-th file write, then rerun: the results equal an uninterrupted run's."""
    from rait.core.config import load_yaml
    from rait.run.pipeline import Plan, RunConfig, execute

    path = _small_run(tiny_run, isolate=False)  # the kill is injected by a monkeypatch, which only this process sees
    ref_plan = Plan(load_yaml(RunConfig, path, [f"name=ref{k}"]))
    execute(ref_plan, log=lambda m: None)
    plan = Plan(load_yaml(RunConfig, path, [f"name=killed{k}"]))
    with monkeypatch.context() as mp:
        calls = _kill_on_write(mp, k)
        with pytest.raises(Kill):
            execute(plan, log=lambda m: None)
    killed_at = calls[-1]
    safety._release_all()  # the killed process's lock dies with it
    execute(Plan(load_yaml(RunConfig, path, [f"name=killed{k}"])), log=lambda m: None)
    ref = json.loads((ref_plan.root / "results.json").read_text())
    got = json.loads((plan.root / "results.json").read_text())
    assert got == ref, f"killed at write {k} ({killed_at})"
    assert not [p for p in plan.root.rglob("*") if safety.is_temp(p.name)]
    return killed_at


def test_kill_at_a_write_then_resume_gives_the_same_results(tiny_run, tmp_path, monkeypatch):
    killed_at = _kill_and_resume(tiny_run, tmp_path, monkeypatch, k=19)  # inside the probe (its 2nd chunk)
    assert "/probe/m0/chunks/" in killed_at


# writes of the tiny [init_basic, van] run: 1-5 data, 6-15 the Init-Basic evals (8 = metrics.json), 16-24 probe
# (19 = the 2nd chunk, 22 = table.jsonl), 25-30 build (27 = decisions.jsonl: before its manifest), 31-34 train
# (32 = checkpoints/rait_run.json, 33 = manifest), 35-44 the van evals, 45-48 aggregate (results.json ...)
@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 8, 22, 27, 28, 32, 33, 37, 45])
def test_kill_anywhere_then_resume_gives_the_same_results(tiny_run, tmp_path, monkeypatch, k):
    _kill_and_resume(tiny_run, tmp_path, monkeypatch, k)
