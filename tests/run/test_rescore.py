"""rait.rescore on a fixture run: the papers' MCQA parser and echo-safe scoring applied to stored answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rait.errors import RaitError
from rait.run.rescore import main, rescore_eval, rescore_run


def _eval_dir(d: Path, recs: list[dict], prompt: str, reference: str | None = None) -> None:
    d.mkdir(parents=True)
    (d / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (d / "manifest.json").write_text(json.dumps({"config": {"prompt": prompt, "refusal": "lenient",
                                                            "reference": reference, "n_boot": 0}}))
    (d / "metrics.json").write_text(json.dumps({"P_c": {"value": 0.0}, "P_w": {"value": 0.0}}))


def _mc(i, out, gold, verdict, topic="t"):  # a record as an older rait wrote it (legacy parser, no letters)
    return {"id": f"m{i}", "question": f"q{i}?", "gold": gold, "topic": topic, "output": out, "verdict": verdict,
            "confidence": -0.5}


@pytest.fixture()
def run_dir(tmp_path):
    d = tmp_path / "run"
    ib = [_mc(0, "B. A cell membrane", "B", "wrong"), _mc(1, "A, since C is false", "A", "wrong", "u"),
          _mc(2, "C", "D", "wrong"), _mc(3, "D", "D", "correct", "u")]
    van = [_mc(0, "I don't know.", "B", "refuse"), _mc(1, "C because D is wrong", "C", "wrong", "u"),
           _mc(2, "D", "D", "correct"), _mc(3, "B", "D", "wrong", "u")]
    _eval_dir(d / "eval" / "init_basic" / "seed0" / "id", ib, "basic")
    _eval_dir(d / "eval" / "van" / "seed0" / "id", van, "refuse", reference="elsewhere")
    (d / "run.json").write_text(json.dumps({"name": "fx", "methods": ["init_basic", "van"], "tests": {"id": "x"},
                                            "seeds": [0], "config": {"eval": {"n_boot": 0}}}))
    return d


def test_rescore_run_with_papers_parser(run_dir, tmp_path):
    changes = rescore_run(run_dir, tmp_path / "new")
    # the golden cases explain every change: letter-first answers whose text holds another capital A-D
    assert changes["init_basic/seed0/id"] == {("wrong", "correct"): 2}
    assert changes["van/seed0/id"] == {("wrong", "correct"): 1}
    res = json.loads((tmp_path / "new" / "results.json").read_text())
    assert res["reference"]["id"] == {"P_c0": 75.0, "P_w0": 25.0}
    van = res["results"]["van"]["id"]
    assert van["P_c"]["value"] == 50.0 and van["THS"]["value"] == pytest.approx(50 - 25 * 75 / 25)
    assert res["results"]["init_basic"]["id"]["macro"]["n_groups"] == 2
    assert "paired" in res and (tmp_path / "new" / "run.json").exists()
    m = json.loads((tmp_path / "new" / "eval" / "van" / "seed0" / "id" / "metrics.json").read_text())
    assert m["changed"] == {"wrong->correct": 1} and m["rescored_from"].endswith("van/seed0/id")
    legacy = rescore_run(run_dir, tmp_path / "leg", mcqa_parse="legacy")
    assert sum(sum(c.values()) for c in legacy.values()) == 0  # the old parser reproduces the stored verdicts


def test_rescore_echo_safe_and_cli(tmp_path, capsys):
    src = tmp_path / "tqa"
    recs = [{"id": "e0", "question": "Which capital city is known as Beograd by its inhabitants?",
             "gold": ["Belgrade", "Beograd"], "output": "Beograd is a city", "verdict": "correct", "topic": None},
            {"id": "e1", "question": "Capital of France?", "gold": ["Paris"], "output": "Paris", "verdict": "correct",
             "topic": None}]
    _eval_dir(src, recs, "basic")
    m, ch = rescore_eval(src, tmp_path / "es", scoring="echo_safe")
    assert ch == {("correct", "wrong"): 1} and m["P_c"]["value"] == 50.0 and m["n_echo"] == 1
    assert m["scorings"]["papers"]["P_c"]["value"] == 100.0
    assert main([str(src), "--out", str(tmp_path / "cli"), "--scoring", "echo_safe"]) == 0
    assert "total: 1 verdict(s) changed" in capsys.readouterr().out
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("not ours")
    with pytest.raises(RaitError, match="not written by rait.rescore"):
        rescore_eval(src, tmp_path / "foreign")
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2


def test_python_dash_m_rait_rescore_is_the_documented_command(tmp_path):
    """`python -m rait.rescore` (docs/deviations.md, docs/benchmarks.md) runs rait.run.rescore."""
    import subprocess
    import sys

    src = tmp_path / "e"
    _eval_dir(src, [{"id": "e1", "question": "Capital of France?", "gold": ["Paris"], "output": "Paris",
                     "verdict": "correct", "topic": None}], "basic")
    p = subprocess.run([sys.executable, "-m", "rait.rescore", str(src), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "total: 0 verdict(s) changed" in p.stdout and (tmp_path / "o" / "metrics.json").is_file()
