"""rait's own method (Probe-RAIT): golden labels on hand-made knowledge tables and hidden states,
and an end-to-end `rait run` on a tiny model."""

import json

import numpy as np
import pytest
import yaml

from rait.core.config import ConfigError, load_yaml
from rait.errors import DataError
from rait.methods.probe_rait import ProbeRaitConfig
from rait.methods.probe_rait import build as probe_build
from rait.run.pipeline import Plan, RunConfig, execute
from rait.stages.build import run_build


def _table(correctness, greedy=None):
    rows = [{"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"], "kind": "oeqa", "correctness": c}
            for i, c in enumerate(correctness)]
    for r, g in zip(rows, greedy or []):
        r["greedy"], r["greedy_correct"] = ("A" + r["id"][1:]) if g else "no", g
    return rows


def _targets(rows):
    return sorted((r["id"], r["label"], r["messages"][-1]["content"], r["weight"]) for r in rows)


def _hidden(tmp_path, n=40, flip=()):
    """Pool states whose layer 1 separates M0's greedy-right items (even ids) from its wrong ones."""
    rng = np.random.default_rng(0)
    known = np.array([i % 2 == 0 for i in range(n)])
    X = rng.normal(size=(n, 3, 4)).astype(np.float32)
    X[:, 1, 0] += 10.0 * known
    (tmp_path / "pool.npy").write_bytes(b"")
    np.save(tmp_path / "pool.npy", X)
    (tmp_path / "pool.ids.json").write_text(json.dumps([f"q{i}" for i in range(n)]))
    # the sampled correctness is noisy: flipped items look known to the samples but M0's greedy answer is wrong
    corr = [(1.0 if k else 0.0) if i not in flip else 1.0 - float(k) for i, k in enumerate(known)]
    return _table(corr, greedy=[bool(k) for k in known])


def test_probe_rait_labels_follow_the_probe_not_the_noisy_samples(tmp_path):
    table = _hidden(tmp_path, flip=(1, 3))
    rows, s = probe_build(table, ProbeRaitConfig(hidden_dir=str(tmp_path), folds=4))
    labels = {r["id"]: r["label"] for r in rows}
    assert all(labels[f"q{i}"] == ("van" if i % 2 == 0 else "idk") for i in range(40))
    assert labels["q1"] == "idk" and labels["q3"] == "idk"  # samples said known; the probe says M0 is wrong
    assert s["probe"]["layer"] == 1 and s["probe"]["cv_auroc"] > 0.95 and s["thresholds"]["tau"] is not None
    assert s["counts"] == {"van": 20, "idk": 20} and s["thresholds"]["verdicts"] == "greedy_correct"
    soft, _ = probe_build(table, ProbeRaitConfig(hidden_dir=str(tmp_path), folds=4, labels="soft"))
    w = {(r["id"], r["label"]): r["weight"] for r in soft}
    assert all(w.get((f"q{i}", "van"), 0) > w.get((f"q{i}", "idk"), 0) for i in range(0, 40, 2))
    assert all(w.get((f"q{i}", "idk"), 0) > w.get((f"q{i}", "van"), 0) for i in range(1, 40, 2))
    half, _ = probe_build(table, ProbeRaitConfig(hidden_dir=str(tmp_path), folds=4, idk_weight=0.5))
    assert _targets(half) == [(i, lab, t, 0.5 if lab == "idk" else 1.0) for i, lab, t, _ in _targets(rows)]


def test_probe_rait_needs_the_hidden_states_of_every_pool_item(tmp_path):
    table = _hidden(tmp_path)
    with pytest.raises(ConfigError, match="hidden_dir"):
        probe_build(table, ProbeRaitConfig())
    with pytest.raises(DataError, match="'zz'"):
        probe_build(table + [{**table[0], "id": "zz"}], ProbeRaitConfig(hidden_dir=str(tmp_path), folds=4))
    out = run_build("probe_rait", _write(tmp_path / "t.jsonl", table), tmp_path / "b",
                    {"hidden_dir": str(tmp_path), "folds": 4})
    assert out["counts"]["idk"] == 20


def test_probe_rait_draws_its_items_with_the_seed(tmp_path):
    table = _hidden(tmp_path)
    a, sa = probe_build(table, ProbeRaitConfig(hidden_dir=str(tmp_path), folds=4, n_total=8, seed=1))
    b, _ = probe_build(table, ProbeRaitConfig(hidden_dir=str(tmp_path), folds=4, n_total=8, seed=2))
    assert len(a) == len(b) == 8 and sa["sizing"] == {"rule": "n_total", "n_table": 40, "n_items": 8}
    assert {r["id"] for r in a} != {r["id"] for r in b}
    assert sa["dropped"] == {"not_drawn": 32}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_own_methods_end_to_end_on_a_tiny_model(tiny_run):
    from tests.methods.test_abstain_methods import _rewrite_pool

    _rewrite_pool(tiny_run)  # mixed verdicts for the tiny model (the probe needs both classes)
    cfg = yaml.safe_load(tiny_run.read_text())
    cfg.update(methods=["init_basic", "probe_rait"], seeds=[0])
    cfg["method_config"] = {"probe_rait": {"folds": 2}}
    tiny_run.write_text(yaml.safe_dump(cfg))
    plan = Plan(load_yaml(RunConfig, tiny_run))
    assert {"hidden", "build:probe_rait", "train:probe_rait:0", "eval:probe_rait:0:ood"} <= set(plan.stages)
    assert plan.stages["build:probe_rait"].cfg["config"].hidden_dir == str(plan.root / "hidden")
    execute(plan, log=lambda m: None)
    res = json.loads((plan.root / "results.json").read_text())["results"]
    m = "probe_rait"
    assert {"id", "ood"} <= set(res[m]) and 0 <= res[m]["id"]["P_r"]["value"] <= 100
    rows = [json.loads(line) for line in (plan.root / "build" / m / "train.jsonl").read_text().splitlines()]
    assert len({r["id"] for r in rows}) == 10  # the run's build.n_total counts its items
