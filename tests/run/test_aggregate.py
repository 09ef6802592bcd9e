"""rait.run.aggregate.aggregate_run on hand-made eval directories: pooled, macro, echo-safe and paired views."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rait.run.aggregate import aggregate_run


def _write(root: Path, method: str, seed: int, test: str, recs: list[dict]) -> None:
    d = root / method / f"seed{seed}" / test
    d.mkdir(parents=True)
    (d / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    n = len(recs)
    pc = 100 * sum(r["verdict"] == "correct" for r in recs) / n
    pw = 100 * sum(r["verdict"] == "wrong" for r in recs) / n
    (d / "metrics.json").write_text(json.dumps({"P_c": {"value": pc}, "P_w": {"value": pw}, "AUROC": 0.5}))


def _mc(verdicts, topics):
    return [{"id": f"i{i}", "verdict": v, "topic": t} for i, (v, t) in enumerate(zip(verdicts, topics))]


def _oe(pairs):  # (papers verdict, echo-safe verdict)
    return [{"id": f"i{i}", "verdict": p, "echo": p != e, "verdicts": {"papers": p, "echo_safe": e}}
            for i, (p, e) in enumerate(pairs)]


def test_aggregate_run_mcqa_macro_and_paired(tmp_path):
    topics = ["a", "a", "a", "b"]
    _write(tmp_path, "init_basic", 0, "id", _mc(["correct", "wrong", "wrong", "wrong"], topics))
    _write(tmp_path, "van", 0, "id", _mc(["correct", "correct", "wrong", "refuse"], topics))
    _write(tmp_path, "van", 1, "id", _mc(["correct", "refuse", "wrong", "correct"], topics))
    res = aggregate_run(lambda m, s, t: tmp_path / m / f"seed{s}" / t, ["init_basic", "van"], ["id"], [0, 1],
                        n_boot=100)
    assert res["reference"]["id"] == {"P_c0": 25.0, "P_w0": 75.0}
    van = res["results"]["van"]["id"]
    assert van["seeds"] == [0, 1] and van["P_c"]["value"] == 50.0 and van["AUROC"] == 0.5
    # macro: Init-Basic a = (33.3 c, 66.7 w), b = (0, 100) -> (16.67, 83.33); van seed0 a = (66.7, 33.3), b = (0, 0)
    # -> (33.3, 16.7); seed1 a = (33.3, 33.3), b = (100, 0) -> (66.7, 16.7); mean (50, 16.67)
    ib = res["results"]["init_basic"]["id"]["macro"]
    assert ib["P_c"]["value"] == pytest.approx(50 / 3) and ib["THS"]["value"] == pytest.approx(0.0)
    m = van["macro"]
    assert m["n_groups"] == 2 and m["P_c"]["value"] == pytest.approx(50.0)
    assert m["P_w"]["value"] == pytest.approx(50 / 3)
    assert m["THS"]["value"] == pytest.approx(50 - (50 / 3) * (50 / 3) / (250 / 3))
    assert "echo_safe" not in van  # no open-ended scorings recorded
    d = res["paired"]["id"]["pairs"]["van"]["init_basic"]
    # per item, van seed-averaged: c = [100, 50, 0, 50], w = [0, 0, 100, 0]; init: c = [100,0,0,0], w = [0,100,100,100]
    assert d["P_c"]["value"] == pytest.approx(25.0) and d["P_w"]["value"] == pytest.approx(-50.0)
    assert d["THS"]["value"] == pytest.approx(25 + 50 * 25 / 75)
    assert van["THS"]["value"] - res["results"]["init_basic"]["id"]["THS"]["value"] == pytest.approx(d["THS"]["value"])


def test_aggregate_run_echo_safe(tmp_path):
    _write(tmp_path, "init_basic", 0, "id", _oe([("correct", "wrong"), ("wrong", "wrong"), ("correct", "correct")]))
    _write(tmp_path, "van", 0, "id", _oe([("correct", "correct"), ("refuse", "refuse"), ("wrong", "wrong")]))
    res = aggregate_run(lambda m, s, t: tmp_path / m / f"seed{s}" / t, ["init_basic", "van"], ["id"], [0], n_boot=0)
    ib, van = res["results"]["init_basic"]["id"], res["results"]["van"]["id"]
    assert ib["n_echo"] == 1 and "macro" not in ib
    assert ib["echo_safe"]["P_c"]["value"] == pytest.approx(100 / 3) and ib["echo_safe"]["THS"]["value"] == 0.0
    # van echo-safe (33.3, 33.3) against Init-Basic's echo-safe point (33.3, 66.7): THS = 33.3 - 33.3 * 0.5
    assert van["echo_safe"]["THS"]["value"] == pytest.approx(100 / 3 - 100 / 3 * 0.5)
    assert van["echo_safe"]["ref"] == {"P_c0": pytest.approx(100 / 3), "P_w0": pytest.approx(200 / 3)}
