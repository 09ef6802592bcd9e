"""bench/candidates: the candidates for rait's own method that lost, kept as plugins so their measurements rerun
(Soft-RAIT). Golden labels on a hand-made knowledge table, and the graded benchmark config loads them."""

import json

import pytest
import yaml

from rait.core.config import ConfigError, load_yaml
from rait.errors import DataError
from rait.methods import get, load_plugin
from rait.run.pipeline import Plan, RunConfig, execute
from tests.bench import BENCH
from tests.methods.test_own_methods import _table, _targets, _write

SOFT = BENCH / "candidates" / "soft_rait.py"
RELABEL = BENCH / "candidates" / "relabel_rait.py"


def _soft():
    load_plugin(SOFT)
    m = get("soft_rait")
    return m.build, m.config_cls


def _relabel():
    load_plugin(RELABEL)
    m = get("relabel_rait")
    return m.build, m.config_cls


def _relabel_module():
    import sys

    return sys.modules[get("relabel_rait").build.__module__]


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


# ------------------------------------------------------------------------------------------------ Relabel-RAIT
def test_relabel_rait_labels_follow_the_tuned_model_not_m0(tmp_path):
    relabel_build, RelabelRaitConfig = _relabel()

    m0 = [True, True, False, False, False, True]  # M0's greedy verdicts
    tuned = [True, False, True, False, True, True]  # the cross-fitted tuned model's
    table = _table([1.0] * 6, greedy=m0)
    path = _write(tmp_path / "tuned.jsonl", list(reversed(_table([0.0] * 6, greedy=tuned))))  # any order
    rows, summary = relabel_build(table, RelabelRaitConfig(tuned_table=str(path), idk_weight=0.5))
    assert _targets(rows) == [("q0", "van", "A0", 1.0), ("q1", "idk", "I don't know", 0.5),
                              ("q2", "van", "A2", 1.0), ("q3", "idk", "I don't know", 0.5),
                              ("q4", "van", "A4", 1.0), ("q5", "van", "A5", 1.0)]
    assert summary["pools"] == {"van": 4, "idk": 2} and summary["thresholds"]["verdicts"] == "greedy_correct"
    assert summary["m0_vs_tuned"] == {"m0_correct": 3, "gained": 2, "lost": 1}
    assert summary.decisions["q1"]["reason"] == "selected as idk: tuned model wrong (M0 correct)"


def test_relabel_rait_needs_a_tuned_row_for_every_pool_item(tmp_path):
    relabel_build, RelabelRaitConfig = _relabel()

    table = _table([1.0] * 3, greedy=[True, False, True])
    path = _write(tmp_path / "tuned.jsonl", _table([1.0] * 2, greedy=[True, True]))
    with pytest.raises(DataError, match="q2"):
        relabel_build(table, RelabelRaitConfig(tuned_table=str(path)))
    with pytest.raises(ConfigError, match="tuned_table"):
        relabel_build(table, RelabelRaitConfig())


def test_relabel_folds_are_a_seeded_balanced_split():
    _relabel()
    mod = _relabel_module()
    RelabelConfig, fold_of = mod.RelabelConfig, mod.fold_of

    ids = [f"q{i}" for i in range(11)]
    a, b = fold_of(ids, 2, 0), fold_of(ids, 2, 1)
    assert a == fold_of(ids, 2, 0) and a != b and set(a) == set(ids)
    assert sorted(list(a.values()).count(f) for f in (0, 1)) == [5, 6]
    with pytest.raises(ConfigError, match="folds"):
        RelabelConfig(folds=1)


def test_relabel_rait_end_to_end_on_a_tiny_model(tiny_run):
    from tests.methods.test_abstain_methods import _rewrite_pool

    _rewrite_pool(tiny_run)
    cfg = yaml.safe_load(tiny_run.read_text())
    cfg.update(methods=["init_basic", "relabel_rait"], seeds=[0], plugins=[str(RELABEL)])
    tiny_run.write_text(yaml.safe_dump(cfg))
    plan = Plan(load_yaml(RunConfig, tiny_run))
    execute(plan, log=lambda m: None)
    res = json.loads((plan.root / "results.json").read_text())["results"]
    # Relabel-RAIT: the relabel stage re-probed every pool item with a model tuned on the other fold
    assert plan.stages["build:relabel_rait"].cfg["config"].tuned_table == str(plan.root / "relabel" / "table.jsonl")
    tuned = [json.loads(x) for x in (plan.root / "relabel" / "table.jsonl").read_text().splitlines()]
    m0 = [json.loads(x) for x in (plan.root / "probe" / "m0" / "table.jsonl").read_text().splitlines()]
    assert [r["id"] for r in tuned] == [r["id"] for r in m0] and {r["fold"] for r in tuned} == {0, 1}
    for f in (0, 1):
        trained = {json.loads(x)["id"] for x in (plan.root / "relabel" / f"fold{f}" / "train.jsonl").read_text()
                   .splitlines()}
        assert trained == {r["id"] for r in tuned if r["fold"] != f}  # never probed on an item it trained on
    labels = {r["id"]: r["label"] for r in (json.loads(x) for x in
                                            (plan.root / "build" / "relabel_rait" / "train.jsonl").read_text()
                                            .splitlines())}
    assert all(labels[r["id"]] == ("van" if r["greedy_correct"] else "idk") for r in tuned if r["id"] in labels)
    assert {"id", "ood"} <= set(res["relabel_rait"])

