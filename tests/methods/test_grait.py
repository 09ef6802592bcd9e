"""GRAIT golden tests on a hand-made 8 x 8 similarity store (numbers worked out in the comments)."""

import json
import math

import numpy as np
import pytest

from rait.core.config import ConfigError
from rait.errors import DataError
from rait.methods import get
from rait.methods.grait import GraitConfig, build

COR = [0.9, 0.8, 0.8, 0.5, 0.2, 0.1, 0.3, 0.0]  # IK = {0,1,2}; q3 in neither; IDK = {4,5,6,7}


def table():
    return [{"id": f"q{i}", "question": f"Question {i}?", "answers": [f"A{i}"], "kind": "oeqa", "correctness": c}
            for i, c in enumerate(COR)]


@pytest.fixture
def grads_dir(tmp_path):
    n = 8
    iv = np.full((n, n), 9.0, np.float32)  # columns outside V must never be read: 9 would dominate
    # S(j) = idk_van[j, 0] + idk_van[j, 1] over V = {q0, q1}: 0.4, 0.5, 0.2, 0.45 for j = 4..7
    for j, (a, b) in {4: (0.3, 0.1), 5: (0.2, 0.3), 6: (0.1, 0.1), 7: (0.4, 0.05)}.items():
        iv[j, 0], iv[j, 1] = a, b
    ii = np.zeros((n, n), np.float32)
    np.fill_diagonal(ii, 1.0)
    for (a, b), s in {(4, 5): 0.1, (4, 6): 0.6, (4, 7): -0.2, (5, 6): -0.3, (5, 7): 0.2, (6, 7): 0.05}.items():
        ii[a, b] = ii[b, a] = s
    ii[5, :3] = [0.2, 0.1, 0.0]  # mean over IK 0.1
    ii[7, :3] = [0.3, 0.3, 0.3]  # mean over IK 0.3
    np.save(tmp_path / "idk_van.npy", iv)
    np.save(tmp_path / "idk_idk.npy", ii)
    (tmp_path / "index.json").write_text(json.dumps({"ids": [f"q{i}" for i in range(n)], "dim": 4}))
    return tmp_path


def idk_rows(rows):
    return {r["id"]: r["weight"] for r in rows if r["label"] == "idk"}


# greedy, n_idk = 2: pick q5 (S 0.5); S += col 5 -> q4 0.5, q6 -0.1, q7 0.65; pick q7; then q4 0.3, q6 -0.05
# a5 = mean(.2,.1,0) - mean(.1,1,-.3,.2) = 0.1 - 0.25 = -0.15; a7 = 0.3 - mean(-.2,.2,.05,1) = 0.0375
W7 = 1 / (1 + math.exp(-(0.0375 + 0.15) / 0.05))  # 0.5 * 2 * softmax


@pytest.mark.parametrize("sign,w5,w7", [(1, 1 - W7, W7), (-1, W7, 1 - W7)])
def test_greedy_adaptive_weights(grads_dir, sign, w5, w7):
    rows, summary = build(table(), GraitConfig(grads_dir=str(grads_dir), n_van=2, n_idk=2, weight_sign=sign))
    assert summary["greedy_order"] == ["q5", "q7"]
    w = idk_rows(rows)
    assert set(w) == {"q5", "q7"}
    assert w["q5"] == pytest.approx(w5, abs=1e-6) and w["q7"] == pytest.approx(w7, abs=1e-6)
    assert sum(w.values()) == pytest.approx(0.5 * 2)
    van = {r["id"]: r for r in rows if r["label"] == "van"}
    assert set(van) == {"q0", "q1"}  # top 2 of IK by correctness, tie q1/q2 broken by table order
    assert van["q0"]["messages"][-1]["content"] == "A0" and van["q0"]["weight"] == 1.0
    r5 = next(r for r in rows if r["id"] == "q5")
    assert r5["messages"][-1]["content"] == "I don't know" and r5["messages"][0] == {"role": "system", "content": ""}
    assert "if you don't know the answer" in r5["messages"][1]["content"]
    assert summary["pools"] == {"van": 3, "idk": 4} and summary["dropped"]["middle_band"] == 1
    assert summary["counts"] == {"van": 2, "idk": 2} and summary["n_rows"] == 4
    assert summary["idk_weights"]["max"] == pytest.approx(max(w5, w7), abs=1e-6)
    half, _ = build(table(), GraitConfig(grads_dir=str(grads_dir), n_van=2, n_idk=2, weight_sign=sign, idk_weight=0.5))
    assert idk_rows(half) == pytest.approx({k: 0.5 * v for k, v in w.items()})  # idk_weight scales GRAIT's weights


@pytest.mark.parametrize("sign", [1, -1])
def test_as_released(grads_dir, sign):
    # n_idk = 2: G = [q5, q7], IDK \ G by ascending S: q6 (-0.05), q4 (0.3)
    rows, summary = build(table(), GraitConfig(grads_dir=str(grads_dir), n_van=2, n_idk=2, as_released=True,
                                               weight_sign=sign))
    assert idk_rows(rows) == {"q6": 1.0, "q4": 1.0} and summary["mode"] == "as_released"
    # n_idk = 1: G = [q5]; S then q4 0.5, q6 -0.1, q7 0.65 -> smallest q6; greedy mode keeps q5
    rows, _ = build(table(), GraitConfig(grads_dir=str(grads_dir), n_van=2, n_idk=1, as_released=True))
    assert idk_rows(rows) == {"q6": 1.0}
    rows, _ = build(table(), GraitConfig(grads_dir=str(grads_dir), n_van=2, n_idk=1))
    assert idk_rows(rows) == {"q5": pytest.approx(0.5)}


def test_uniform_weights_and_shuffle_is_seeded(grads_dir):
    cfg = GraitConfig(grads_dir=str(grads_dir), n_van=3, n_idk=2, weighting="uniform")
    a, s = build(table(), cfg)
    b, _ = build(table(), cfg)
    assert a == b and idk_rows(a) == {"q5": 1.0, "q7": 1.0}
    other, _ = build(table(), GraitConfig(grads_dir=str(grads_dir), n_van=3, n_idk=2, weighting="uniform", seed=1))
    assert sorted(r["id"] for r in other) == sorted(r["id"] for r in a)


def test_shortfall_and_default_sizes(grads_dir):
    rows, s = build(table(), GraitConfig(grads_dir=str(grads_dir), n_van=5, n_idk=9))
    assert s["counts"]["van"] == 3 and s["shortfall"] == {"van": 2, "idk": 5}
    _, s = build(table(), GraitConfig(grads_dir=str(grads_dir)))
    assert s["quotas"]["van"] + s["quotas"]["idk"] == round(10000 * 8 / 87622)


def test_mismatched_store_is_clear_error(grads_dir):
    t = table()
    t[2], t[3] = t[3], t[2]
    with pytest.raises(DataError, match="row 2: id 'q2'"):
        build(t, GraitConfig(grads_dir=str(grads_dir)))
    with pytest.raises(DataError, match="8 ids, but the knowledge table has 7"):
        build(table()[:7], GraitConfig(grads_dir=str(grads_dir)))
    with pytest.raises(DataError, match="not set"):
        build(table(), GraitConfig())


def test_registered_and_config_validation():
    m = get("grait")
    assert m.config_cls is GraitConfig and m.needs == ("table", "grads")
    with pytest.raises(ConfigError):
        GraitConfig(weight_sign=2)
    with pytest.raises(ConfigError):
        GraitConfig(temperature=0)


def test_decisions_explain_every_item(grads_dir):
    _, summary = build(table(), GraitConfig(grads_dir=str(grads_dir), n_van=2, n_idk=2))
    d = summary["decisions"]
    assert set(d) == {f"q{i}" for i in range(8)}
    assert d["q0"]["label"] == "van" and d["q2"]["reason"].startswith("dropped: over_quota")
    assert d["q3"]["pool"] == "neither" and d["q3"]["label"] is None
    assert d["q5"]["label"] == "idk" and d["q5"]["greedy_rank"] == 0
    assert d["q5"]["S"] == pytest.approx(0.5 + 1.0 + 0.2)  # final S after both greedy updates
    assert d["q6"]["reason"] == "dropped: not_selected (not selected by the greedy pass)"
    from rait.stages.build import explain

    text = explain(d, summary.to_dict(), "q7")
    assert "greedy pick 1" in text and "pool=idk" in text
