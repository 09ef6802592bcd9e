"""bench/candidates: the candidates for rait's own method that lost, kept as plugins so their measurements rerun
(Soft-RAIT). Golden labels on a hand-made knowledge table, and the graded benchmark config loads them."""

import pytest

from rait.core.config import ConfigError, load_yaml
from rait.errors import DataError
from rait.methods import get, load_plugin
from rait.run.pipeline import RunConfig
from tests.bench import BENCH

SOFT = BENCH / "candidates" / "soft_rait.py"


def _table(correctness, greedy=None):
    rows = [{"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"], "kind": "oeqa", "correctness": c}
            for i, c in enumerate(correctness)]
    for r, g in zip(rows, greedy or []):
        r["greedy"], r["greedy_correct"] = ("A" + r["id"][1:]) if g else "no", g
    return rows


def _targets(rows):
    return sorted((r["id"], r["label"], r["messages"][-1]["content"], r["weight"]) for r in rows)


def _soft():
    load_plugin(SOFT)
    m = get("soft_rait")
    return m.build, m.config_cls


def test_soft_rait_golden_weights_min_weight_and_scores():
    soft_build, SoftRaitConfig = _soft()
    rows, s = soft_build(_table([0.0, 1 / 6, 0.5, 0.98, 1.0]), SoftRaitConfig(min_weight=0.05))
    assert _targets(rows) == [
        ("q0", "idk", "I don't know", 1.0),
        ("q1", "idk", "I don't know", 0.833333), ("q1", "van", "A1", 0.166667),
        ("q2", "idk", "I don't know", 0.5), ("q2", "van", "A2", 0.5),
        ("q3", "van", "A3", 0.98),  # refusal weight 0.02 < min_weight: left out
        ("q4", "van", "A4", 1.0)]
    assert s["counts"] == {"van": 4, "idk": 3} and s["weight_mass"] == {"van": 2.647, "idk": 2.333}
    rows, _ = soft_build(_table([0.2, 0.8], greedy=[True, False]), SoftRaitConfig(score="greedy_correct"))
    assert _targets(rows) == [("q0", "van", "A0", 1.0), ("q1", "idk", "I don't know", 1.0)]
    rows, _ = soft_build(_table([0.5]), SoftRaitConfig(idk_weight=0.5))
    assert _targets(rows) == [("q0", "idk", "I don't know", 0.25), ("q0", "van", "A0", 0.5)]


def test_soft_rait_draws_items_with_the_seed_and_checks_its_config():
    soft_build, SoftRaitConfig = _soft()
    table = _table([i / 10 for i in range(10)])
    a, sa = soft_build(table, SoftRaitConfig(n_total=4, seed=1))
    b, _ = soft_build(table, SoftRaitConfig(n_total=4, seed=2))
    assert len({r["id"] for r in a}) == 4 and sa["dropped"] == {"not_drawn": 6}
    assert {r["id"] for r in a} != {r["id"] for r in b}
    with pytest.raises(ConfigError, match="min_weight"):
        SoftRaitConfig(min_weight=1.0)
    with pytest.raises(DataError, match="greedy_correct"):
        soft_build(_table([0.5]), SoftRaitConfig(score="greedy_correct"))


def test_graded_benchmark_config_loads_the_candidate_plugins(monkeypatch):
    monkeypatch.chdir(BENCH.parent)  # plugin paths are relative to the repository root
    cfg = load_yaml(RunConfig, BENCH.parent / "configs" / "graded_bench.yaml")
    assert {"probe_rait", "relabel_rait", "soft_rait"} <= set(cfg.methods)
    assert cfg.method("soft_rait").n_total is None and cfg.method("relabel_rait").n_total is None
