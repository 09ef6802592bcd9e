"""``rait probe`` on the tiny model: determinism, sharding, SIGKILL resume, skip/refuse on rerun, MCQA scoring."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from rait.cli import main
from rait.errors import RaitError
from rait.stages.probe import ProbeConfig, mcqa_prompt, merge, parse_shard, probe

ROOT = Path(__file__).resolve().parents[2]

OEQA = [
    ("Who wrote Hamlet?", ["William Shakespeare", "Shakespeare"]),
    ("What is the capital of France?", ["Paris"]),
    ("What is the capital of Italy?", ["Rome"]),
    ("What is 2+2?", ["4", "four"]),
    ("Which planet is known as the red planet?", ["Mars"]),
    ("What is the largest ocean?", ["Pacific", "Pacific Ocean"]),
    ("Who painted the Mona Lisa?", ["Leonardo da Vinci", "da Vinci"]),
    ("What is the chemical symbol for gold?", ["Au"]),
    ("How many legs does a spider have?", ["8", "eight"]),
    ("What is the boiling point of water in Celsius?", ["100"]),
]
MCQA = [
    ("What is 2+2?", ["3", "4", "5", "6"], "B", "elementary_mathematics"),
    ("Capital of France?", ["Rome", "Madrid", "Paris", "Berlin"], "C", "geography"),
    ("Who wrote Hamlet?", ["Shakespeare", "Dickens", "Austen", "Twain"], "A", None),
    ("Largest planet?", ["Mars", "Venus", "Earth", "Jupiter"], "D", "astronomy"),
    ("Pick E.", ["a", "b", "c", "d", "e"], "E", "misc"),
]



def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def oeqa_data(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("data") / "oe.jsonl"
    return _write(p, [{"id": f"q{i}", "question": q, "answers": a} for i, (q, a) in enumerate(OEQA)])


@pytest.fixture(scope="module")
def mcqa_data(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("data") / "mc.jsonl"
    rows = []
    for i, (q, ch, g, t) in enumerate(MCQA):
        rows.append({"id": f"m{i}", "question": q, "choices": ch, "gold": g, **({"topic": t} if t else {})})
    return _write(p, rows)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from rait.generation.hf import HFBackend

    return HFBackend.from_spec(str(tiny_model_dir), dtype="float32", device="cpu", batch_size=32)


def _cfg(tiny_model_dir, data: Path, out: Path, **kw) -> ProbeConfig:
    base = dict(model=str(tiny_model_dir), data=f"jsonl:{data}", out=str(out), dtype="float32", k=3,
                max_new_tokens=6, chunk_size=3, certainty="answer_entropy", stop=[])
    base.update(kw)
    return ProbeConfig(**base)


@pytest.fixture(scope="module")
def single_run(tiny_model_dir, oeqa_data, backend, tmp_path_factory) -> Path:
    """An uninterrupted single-process probe (the reference table)."""
    out = tmp_path_factory.mktemp("single")
    table = probe(_cfg(tiny_model_dir, oeqa_data, out), backend=backend, progress=False)
    assert table == out / "table.jsonl"
    return table


def test_config_validation():
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(RaitError, match="shard"):
            parse_shard(bad)
    with pytest.raises(RaitError, match="k must be"):
        ProbeConfig(k=0)
    with pytest.raises(RaitError, match="fewshot"):
        ProbeConfig(fewshot=4)
    with pytest.raises(RaitError, match="expected one of"):
        ProbeConfig(certainty="vibes")


def test_table_schema(single_run):
    rows = [json.loads(line) for line in single_run.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(len(OEQA))]  # dataset order
    for r, (q, a) in zip(rows, OEQA):
        assert r["question"] == q and r["answers"] == a and r["kind"] == "oeqa"
        assert len(r["samples"]) == len(r["correct"]) == len(r["refused"]) == len(r["n_tokens"]) == 3
        assert r["correctness"] == r["correctness_raw"] == sum(r["correct"]) / 3
        assert 0.0 <= r["certainty"] <= 1.0 and r["certainty_method"] == "answer_entropy"
        assert all(n <= 6 for n in r["n_tokens"])
        assert "greedy" not in r
    out = single_run.parent
    assert sorted(p.name for p in (out / "chunks").iterdir()) == [f"chunk-0000{c}.jsonl" for c in range(4)]
    man = json.loads((out / "manifest.json").read_text())
    assert man["stage"] == "probe" and man["outputs"]["n_items"] == len(OEQA) and man["config"]["k"] == 3
    plan = json.loads((out / "plan.json").read_text())
    assert plan["n_chunks"] == 4 and plan["n_items"] == len(OEQA)


def test_samples_vary(single_run):
    rows = [json.loads(line) for line in single_run.read_text().splitlines()]
    assert any(len(set(r["samples"])) > 1 for r in rows)


def test_same_seed_same_bytes(tiny_model_dir, oeqa_data, backend, single_run, tmp_path):
    table = probe(_cfg(tiny_model_dir, oeqa_data, tmp_path / "again"), backend=backend, progress=False)
    assert table.read_bytes() == single_run.read_bytes()
    other = probe(_cfg(tiny_model_dir, oeqa_data, tmp_path / "seed1", seed=1), backend=backend, progress=False)
    assert other.read_bytes() != single_run.read_bytes()


def test_backend_built_from_config(tiny_model_dir, oeqa_data, single_run, tmp_path):
    """Without a backend argument, probe() builds the same one from the config."""
    table = probe(_cfg(tiny_model_dir, oeqa_data, tmp_path / "built"), progress=False)
    assert table.read_bytes() == single_run.read_bytes()


def test_shards_merge_to_single_process_table(tiny_model_dir, oeqa_data, backend, single_run, tmp_path):
    out = tmp_path / "sharded"
    assert probe(_cfg(tiny_model_dir, oeqa_data, out, shard="0/2"), backend=backend, progress=False) is None
    assert sorted(p.name for p in (out / "chunks").glob("chunk-*.jsonl")) == ["chunk-00000.jsonl", "chunk-00002.jsonl"]
    assert not (out / "table.jsonl").exists()
    table = probe(_cfg(tiny_model_dir, oeqa_data, out, shard="1/2"), backend=backend, progress=False)
    assert table is not None and table.read_bytes() == single_run.read_bytes()
    (out / "table.jsonl").unlink()
    assert merge(out).read_bytes() == single_run.read_bytes()
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    assert set(timings) == {"shard-0of2", "shard-1of2"}


def test_other_chunk_size_keeps_item_order(tiny_model_dir, oeqa_data, backend, tmp_path):
    a = probe(_cfg(tiny_model_dir, oeqa_data, tmp_path / "c5", chunk_size=5), backend=backend, progress=False)
    rows = [json.loads(x) for x in a.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(len(OEQA))]


def test_rerun_finished_dir_skips_every_chunk(tiny_model_dir, oeqa_data, single_run, monkeypatch):
    out = single_run.parent
    before = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").iterdir()}
    table_bytes = single_run.read_bytes()
    import rait.generation

    def no_backend(*a, **k):
        raise AssertionError("a finished probe must not load a model")

    monkeypatch.setattr(rait.generation, "get_backend", no_backend)
    assert probe(_cfg(tiny_model_dir, oeqa_data, out), progress=False) == single_run
    assert {p.name: p.stat().st_mtime_ns for p in (out / "chunks").iterdir()} == before
    assert single_run.read_bytes() == table_bytes
    assert json.loads((out / "timings" / "shard-0of1.json").read_text())["chunks"] == 0


def test_other_settings_into_same_dir_refused(tiny_model_dir, oeqa_data, mcqa_data, single_run, backend):
    out = single_run.parent
    for change in (dict(k=4), dict(seed=5), dict(data=f"jsonl:{mcqa_data}"), dict(limit=5),
                   dict(certainty="mean_logprob")):
        with pytest.raises(RaitError, match="other settings or data; use another --out"):
            probe(replace(_cfg(tiny_model_dir, oeqa_data, out), **change), backend=backend, progress=False)
    # shard and out are not part of the plan
    assert probe(_cfg(tiny_model_dir, oeqa_data, out, shard="1/3"), backend=backend, progress=False) == single_run


def test_kill_and_resume(tiny_model_dir, oeqa_data, backend, single_run, tmp_path, capsys):
    """SIGKILL a CLI probe after its first chunk; a rerun completes it to the uninterrupted table."""
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "rait.cli", "probe", "--model", str(tiny_model_dir), "--data", f"jsonl:{oeqa_data}",
           "--out", str(out), "--dtype", "float32", "--k", "3", "--max-new-tokens", "6", "--chunk-size", "3",
           "--certainty", "answer_entropy", "--set", "stop=[]"]
    # slow the child down so that it is still running when the first chunk lands
    code = ("import sys, time, runpy, rait.stages.probe as P\n"
            "orig = P.probe_chunk\n"
            "def slow(*a, **k):\n"
            "    rows = orig(*a, **k); time.sleep(0.5); return rows\n"
            "P.probe_chunk = slow\n"
            "sys.argv = ['rait'] + sys.argv[1:]\n"
            "from rait.cli import main; sys.exit(main())\n")
    proc = subprocess.Popen([sys.executable, "-c", code, *cmd[3:]], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if list((out / "chunks").glob("chunk-*.jsonl")):
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done = sorted(p.name for p in (out / "chunks").glob("chunk-*.jsonl"))
    assert 1 <= len(done) < 4 and not (out / "table.jsonl").exists()
    # rerun (same CLI settings, so the same plan) to completion; in-process to save an interpreter start
    assert main(cmd[3:]) == 0
    assert capsys.readouterr().out.strip().endswith("table.jsonl")
    assert (out / "table.jsonl").read_bytes() == single_run.read_bytes()
    timings = json.loads((out / "timings" / "shard-0of1.json").read_text())
    assert timings["chunks"] == 4 - len(done)


def test_cli_merge_missing_chunks(tiny_model_dir, oeqa_data, backend, tmp_path, capsys):
    out = tmp_path / "partial"
    assert probe(_cfg(tiny_model_dir, oeqa_data, out, shard="0/2"), backend=backend, progress=False) is None
    rc = main(["probe", "merge", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "rait probe: error:" in err and "2 chunk(s) missing, e.g. chunk-00001.jsonl" in err
    assert "run the remaining shards first" in err
    assert not (out / "table.jsonl").exists()
    # --out works as the directory too, and a non-probe dir is named as such
    assert main(["probe", "merge", "--out", str(out)]) == 2
    assert main(["probe", "merge", str(tmp_path)]) == 2
    assert "not a probe directory (no plan.json)" in capsys.readouterr().err


def test_cli_merge_complete(single_run, capsys):
    before = single_run.read_bytes()
    assert main(["probe", "merge", str(single_run.parent)]) == 0
    assert capsys.readouterr().out.strip() == str(single_run)
    assert single_run.read_bytes() == before


# ----------------------------------------------------------------------------- multiple choice
def _entropy(p):
    return -sum(x * math.log(x) for x in p if x > 0)


@pytest.mark.parametrize("entropy_mode", ["raw", "normalized"])
def test_mcqa_rows(tiny_model_dir, mcqa_data, backend, tmp_path, entropy_mode):
    cfg = _cfg(tiny_model_dir, mcqa_data, tmp_path / "mc", mcqa_entropy=entropy_mode, chunk_size=2)
    table = probe(cfg, backend=backend, progress=False)
    rows = [json.loads(x) for x in table.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"m{i}" for i in range(len(MCQA))]
    from rait.data import load

    items = load(cfg.data)
    for r, it in zip(rows, items):
        letters = it.letters
        probs = backend.next_token_probs([mcqa_prompt(it, backend.tok, cfg)], list(letters))[0]
        assert r["kind"] == "mcqa" and r["samples"] == [] and r["correct"] == [] and r["refused"] == []
        assert r["option_probs"] == pytest.approx(probs, rel=1e-5)
        gold = probs[letters.index(it.gold)]
        assert r["correctness_raw"] == pytest.approx(gold, rel=1e-5)
        assert r["correctness"] == pytest.approx(gold / sum(probs), rel=1e-5)
        p = probs if entropy_mode == "raw" else [x / sum(probs) for x in probs]
        assert r["entropy"] == pytest.approx(_entropy(p), rel=1e-5)
        assert r["certainty"] == pytest.approx(-_entropy(p), rel=1e-5)
        assert r["certainty_method"] == f"entropy_{entropy_mode}"
        assert r["greedy"] == letters[max(range(len(probs)), key=probs.__getitem__)]
        assert r["greedy_correct"] == (r["greedy"] == it.gold)
    assert len(rows[-1]["option_probs"]) == 5


def test_mcqa_per_option_scoring(tiny_model_dir, mcqa_data, backend, tmp_path):
    cfg = _cfg(tiny_model_dir, mcqa_data, tmp_path / "mcpo", mcqa_scoring="per_option")
    rows = [json.loads(x) for x in probe(cfg, backend=backend, progress=False).read_text().splitlines()]
    from rait.data import load

    for r, it in zip(rows, load(cfg.data)):
        prompt = mcqa_prompt(it, backend.tok, cfg)
        probs = backend.last_token_probs([prompt + x for x in it.letters])
        assert r["option_probs"] == pytest.approx(probs, rel=1e-5)
        assert r["correctness"] == pytest.approx(probs[it.letters.index(it.gold)] / sum(probs), rel=1e-5)


def test_mixed_oeqa_and_mcqa_keep_order(tiny_model_dir, oeqa_data, mcqa_data, backend, tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(a + b for a, b in zip(oeqa_data.read_text().splitlines(True)[:4],
                                                    mcqa_data.read_text().splitlines(True)[:4])))
    cfg = _cfg(tiny_model_dir, mixed, tmp_path / "mix", chunk_size=3, greedy=True)
    rows = [json.loads(x) for x in probe(cfg, backend=backend, progress=False).read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q0", "m0", "q1", "m1", "q2", "m2", "q3", "m3"]
    assert [r["kind"] for r in rows] == ["oeqa", "mcqa"] * 4
    assert all(isinstance(r["greedy"], str) and isinstance(r["greedy_correct"], bool) for r in rows)


def test_empty_dataset_is_an_error(tiny_model_dir, tmp_path, backend):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(RaitError, match="empty.jsonl: no records: the file is empty"):
        probe(_cfg(tiny_model_dir, empty, tmp_path / "o"), backend=backend, progress=False)


def _mmlu_fixture(root: Path) -> Path:
    """A one-subject MMLU root: dev (6 rows: 5 demonstrations + one that must not be used) and test (1 row)."""
    head = "id,lang,question,A,B,C,D,target\n"
    for split, rows in {
        "dev": [(f"d{i}", f"What is {i}+1?", [str(i), str(i + 1), str(i + 2), str(i + 3)], "B") for i in range(6)],
        "test": [("t0", "What is 2+2?", ["3", "4", "5", "6"], "B")],
    }.items():
        (root / split).mkdir(parents=True)
        lines = "".join(f"{i},en,{q},{','.join(ch)},{g}\n" for i, q, ch, g in rows)
        (root / split / f"elementary_mathematics_{split}.csv").write_text(head + lines)
    return root


PAPERS_PROMPT = (
    "There is a single choice question about elementary mathematics. Answer the question by replying A, B, C or D."
    + "".join(f"Question: What is {i}+1?\nA. {i}\nB. {i + 1}\nC. {i + 2}\nD. {i + 3}\nAnswer: B\n" for i in range(5))
    + "Question: What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: "
)


def test_mcqa_papers_prompt_on_fixture_subject(tiny_model_dir, backend, tmp_path, capsys):
    from rait.core.prompts import plain_prefix
    from rait.data import load

    root = _mmlu_fixture(tmp_path / "mmlu")
    cfg = ProbeConfig(model=str(tiny_model_dir), data=f"mmlu:{root}/test", out=str(tmp_path / "p"), dtype="float32",
                      mcqa_prompt="papers", mcqa_shots=f"mmlu:{root}/dev")
    item = load(cfg.data)[0]
    prompt = mcqa_prompt(item, backend.tok, cfg)
    assert prompt == plain_prefix(backend.tok) + PAPERS_PROMPT  # no chat template, dev rows 0-4 only
    assert "<|im_start|>" not in prompt and "What is 5+1?" not in prompt
    rows = [json.loads(x) for x in probe(cfg, backend=backend, progress=False).read_text().splitlines()]
    assert rows[0]["option_probs"] == pytest.approx(backend.next_token_probs([prompt], list("ABCD"))[0], rel=1e-5)
    # the CLI flag
    assert main(["probe", "--model", str(tiny_model_dir), "--data", f"mmlu:{root}/test", "--dtype", "float32",
                 "--out", str(tmp_path / "cli"), "--mcqa-prompt", "papers", "--mcqa-shots", f"mmlu:{root}/dev"]) == 0
    cli_rows = [json.loads(x) for x in (tmp_path / "cli" / "table.jsonl").read_text().splitlines()]
    assert cli_rows[0]["option_probs"] == pytest.approx(rows[0]["option_probs"], rel=1e-5)


def test_mcqa_papers_prompt_errors(tiny_model_dir, backend, tmp_path):
    from rait.data import load

    with pytest.raises(RaitError, match="needs mcqa_shots"):
        ProbeConfig(mcqa_prompt="papers")
    root = _mmlu_fixture(tmp_path / "mmlu")
    cfg = ProbeConfig(data=f"mmlu:{root}/test", mcqa_prompt="papers", mcqa_shots=f"mmlu:{root}/dev", mcqa_nshot=7)
    with pytest.raises(RaitError, match="6 demonstration.*'elementary_mathematics', need 7"):
        mcqa_prompt(load(cfg.data)[0], backend.tok, cfg)
