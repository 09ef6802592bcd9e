"""Golden tests: Van-Tuning, Cor-RAIT, R-Tuning on the hand-made tables (tests/methods/__init__.py)."""

import pytest

from rait.core.config import ConfigError
from rait.methods.cor_rait import CorRaitConfig
from rait.methods.cor_rait import build as cor_rait
from rait.methods.r_tuning import FALSE_RESPONSES, UNSURE_QUESTION, RTuningConfig
from rait.methods.r_tuning import build as r_tuning
from rait.methods.van import VanConfig
from rait.methods.van import build as van
from tests.methods import OEQA, ids, table

OEQA_VAN_POOL = ["o00", "o01", "o02", "o03", "o04", "o05", "o16", "o19", "o21"]
OEQA_IDK_POOL = ["o07", "o08", "o09", "o10", "o11", "o12", "o13", "o14", "o15", "o18", "o20"]
MCQA_VAN_POOL = ["m00", "m01", "m02", "m04", "m08", "m10", "m13", "m15", "m18", "m20"]
MCQA_IDK_POOL = ["m03", "m05", "m06", "m07", "m09", "m11", "m12", "m14", "m16", "m17", "m19"]


# ---------------------------------------------------------------------------------------------------- van
def test_van_all_gold_no_duplicates():
    rows, s = van(table("oeqa"), VanConfig(n_total=5))
    assert len(set(ids(rows))) == 5 and s["counts"] == {"van": 5, "idk": 0}
    assert all(r["messages"][-1]["content"] == f"gold {r['id']}" for r in rows)
    assert ids(rows) == ["o06", "o11", "o15", "o17", "o21"]  # pinned: seeded draw (seed 0)
    assert s["dropped"] == {"not_sampled": 17}


def test_van_pool_too_small_takes_all_or_resamples():
    rows, s = van(table("oeqa"), VanConfig(n_total=30))
    assert ids(rows) == sorted(i for i, *_ in OEQA) and s["shortfall"] == {"van": 8}
    rows, s = van(table("mcqa"), VanConfig(n_total=30, as_released=True))  # MMLU: with replacement
    assert len(rows) == 30 and s["with_replacement"]["van"] and s["shortfall"]["van"] == 0
    assert len(set(ids(rows))) < 30
    rows, s = van(table("oeqa"), VanConfig(n_total=30, as_released=True))  # TriviaQA: without replacement
    assert len(rows) == 22


def test_van_default_size_scaled():
    rows, s = van(table("oeqa"), VanConfig())
    assert len(rows) == 3 and s["sizing"]["n_total"] == 3


# ----------------------------------------------------------------------------------------------- cor_rait
def test_cor_rait_oeqa_pools_and_boundaries():
    rows, s = cor_rait(table("oeqa"), CorRaitConfig(n_van=20, n_idk=20))  # quotas exceed pools: take all
    assert ids(rows, "van") == OEQA_VAN_POOL  # 0.51 is van
    assert ids(rows, "idk") == OEQA_IDK_POOL  # 0.49 is idk; 0.5 (o06, o17) is neither
    assert s["dropped"] == {"middle_band": 2}
    assert s["pools"] == {"van": 9, "idk": 11} and s["shortfall"] == {"van": 11, "idk": 9}
    assert s["thresholds"] == {"van": "correctness >= 0.51", "idk": "correctness <= 0.49"}


def test_cor_rait_mcqa_pools_and_boundaries():
    rows, s = cor_rait(table("mcqa"), CorRaitConfig(n_van=10, n_idk=11))
    assert ids(rows, "van") == MCQA_VAN_POOL  # 0.5 and 0.51 are van
    assert ids(rows, "idk") == MCQA_IDK_POOL  # 0.49 is idk
    assert s["dropped"] == {} and s["thresholds"]["idk"] == "correctness < 0.5"


def test_cor_rait_random_draw_pinned():
    rows, s = cor_rait(table("oeqa"), CorRaitConfig(n_van=3, n_idk=2))
    assert set(ids(rows, "van")) <= set(OEQA_VAN_POOL) and set(ids(rows, "idk")) <= set(OEQA_IDK_POOL)
    assert ids(rows, "van") == ["o01", "o03", "o05"] and ids(rows, "idk") == ["o13", "o20"]  # seed 0
    assert s["dropped"] == {"middle_band": 2, "not_sampled": 15}


def test_cor_rait_as_released_mcqa_with_replacement():
    rows, s = cor_rait(table("mcqa"), CorRaitConfig(n_van=8, n_idk=8, as_released=True))
    assert s["with_replacement"] == {"van": True, "idk": True} and s["counts"] == {"van": 8, "idk": 8}
    assert set(ids(rows, "van")) <= set(MCQA_VAN_POOL)


def test_cor_rait_shortfall_error_mode():
    from rait.errors import DataError

    with pytest.raises(DataError, match="fewer than its quota"):
        cor_rait(table("oeqa"), CorRaitConfig(n_van=20, n_idk=1, on_shortfall="error"))


def test_cor_rait_custom_thresholds():
    rows, s = cor_rait(table("oeqa"), CorRaitConfig(n_van=30, n_idk=30, van_min=0.5, idk_max=0.2))
    assert "o06" in ids(rows, "van") and "o13" not in ids(rows)
    with pytest.raises(ConfigError):
        CorRaitConfig(van_min=0.4, idk_max=0.6)


# ----------------------------------------------------------------------------------------------- r_tuning
def _rt_table():
    t = table("oeqa")
    t[0]["greedy_correct"] = False  # o00: cor 1.0 but greedy wrong -> idk
    t[8]["greedy_correct"] = True  # o08: cor 0.0 but greedy right -> van
    return t


R_VAN = sorted(["o01", "o02", "o03", "o04", "o05", "o06", "o08", "o16", "o17", "o19", "o21"])  # o06/o17: 0.5 >= 0.5


def test_r_tuning_unknown():
    rows, s = r_tuning(_rt_table(), RTuningConfig())
    assert len(rows) == 22 and ids(rows, "van") == R_VAN
    assert "o00" in ids(rows, "idk") and "o07" in ids(rows, "idk")  # 0.49 < 0.5
    for r in rows:
        ans = r["messages"][-1]["content"]
        assert (ans == f"gold {r['id']}") if r["label"] == "van" else ans in FALSE_RESPONSES
    assert len(FALSE_RESPONSES) == 16
    assert s["basis"] == {"greedy_correct": 2, "threshold": 20}
    assert s["decisions"]["o00"]["basis"] == "greedy_correct=False"


def test_r_tuning_unsure_and_as_released_period():
    rows, _ = r_tuning(_rt_table(), RTuningConfig(variant="unsure"))
    by = {r["id"]: r["messages"][-1]["content"] for r in rows}
    assert by["o01"] == "gold o01" + UNSURE_QUESTION + " I am sure."
    assert by["o00"] == "gold o00" + UNSURE_QUESTION + " I am unsure."
    assert ids(rows, "van") == R_VAN
    rows, _ = r_tuning(table("mcqa"), RTuningConfig(variant="unsure", as_released=True))
    by = {r["id"]: r["messages"][-1]["content"] for r in rows}
    assert by["m01"] == "B." + UNSURE_QUESTION + " I am sure."  # gold letter + period, as in run_MMLU.py


def test_r_tuning_refusal_override_subset_and_validation():
    rows, s = r_tuning(table("oeqa"), RTuningConfig(refusal="I don't know", n_total=6, use_greedy=False))
    assert len(rows) == 6 and {r["messages"][-1]["content"] for r in rows if r["label"] == "idk"} <= {"I don't know"}
    with pytest.raises(ConfigError):
        RTuningConfig(n_van=3)
