"""Shared helpers: sizing rule, row format, registry, determinism of every method."""

import json

import pytest

from rait.core.config import ConfigError
from rait.core.prompts import OEQA_REFUSE1, REFUSAL_MCQA, REFUSAL_OEQA
from rait.methods import Summary, available, get
from rait.methods._common import CommonConfig, plan_sizes
from tests.methods import table

METHODS = ("van", "cor_rait", "r_tuning", "corcer", "craft")


def test_registered_with_needs():
    methods = available()
    for name in METHODS:
        assert name in methods and methods[name].description
    assert get("corcer").columns == ("correctness", "certainty") and get("corcer").needs == ("table",)
    assert "correctness_rehearsed" in get("craft").columns and get("craft").needs == ("table", "rehearsed_table")
    assert get("grait").needs == ("table", "grads") and get("grait").display == "GRAIT"


@pytest.mark.parametrize("kind,n,expected", [
    ("oeqa", 87622, (10000, 8000, 2000)), ("oeqa", 200000, (10000, 8000, 2000)),  # capped at the paper's total
    ("mcqa", 14042, (5000, 4000, 1000)),
    ("oeqa", 22, (3, 2, 1)),  # round(10000 * 22 / 87622) = 3; idk = round(0.6) = 1
    ("mcqa", 21, (7, 6, 1)),  # round(5000 * 21 / 14042) = 7; idk = round(1.4) = 1
    ("oeqa", 8837, (1009, 807, 202)),  # the shared TriviaQA train subset
])
def test_sizing_rule_scales_with_pool(kind, n, expected):
    plan = plan_sizes(CommonConfig(), kind, n)
    assert (plan["n_total"], plan["n_van"], plan["n_idk"]) == expected


def test_sizing_overrides():
    assert plan_sizes(CommonConfig(n_total=10), "oeqa", 30)["n_van"] == 8
    assert plan_sizes(CommonConfig(fraction=0.5), "mcqa", 30)["n_total"] == 15
    p = plan_sizes(CommonConfig(n_total=10, n_idk=5), "oeqa", 30)
    assert (p["n_van"], p["n_idk"]) == (8, 5)
    assert plan_sizes(CommonConfig(n_total=4), "oeqa", 30, split=False)["n_van"] == 4
    with pytest.raises(ConfigError):
        CommonConfig(n_total=10, fraction=0.5)
    with pytest.raises(ConfigError):
        CommonConfig(fraction=1.5)
    with pytest.raises(ConfigError):
        CommonConfig(on_shortfall="sometimes")


def _cfg(name, **kv):
    return get(name).config_cls(**kv)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("kind", ["oeqa", "mcqa"])
def test_row_format(name, kind):
    rows, summary = get(name).build(table(kind, rehearsed=True), _cfg(name, n_total=10))
    assert rows and summary["n_rows"] == len(rows)
    for r in rows:
        assert set(r) == {"messages", "id", "label", "weight"}
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
        assert r["messages"][0]["content"] == ""
        assert r["label"] in ("van", "idk") and r["weight"] == 1.0
        user = r["messages"][1]["content"]
        if kind == "oeqa":
            assert user.startswith(OEQA_REFUSE1)
        else:
            assert "If you do not know the answer" in user and user.endswith("Answer: ")
        if name in ("van", "cor_rait", "corcer", "craft"):
            want = REFUSAL_OEQA if kind == "oeqa" else REFUSAL_MCQA
            if r["label"] == "idk":
                assert r["messages"][2]["content"] == want
            else:
                gold = f"gold {r['id']}" if kind == "oeqa" else "ABCD"[int(r["id"][1:]) % 4]
                assert r["messages"][2]["content"] == gold
    assert summary["counts"]["van"] + summary["counts"]["idk"] == len(rows)
    json.dumps(summary.to_dict(decisions=True))  # JSON-able
    assert set(summary.to_dict()) == set(Summary("x").to_dict())  # one schema for every method


@pytest.mark.parametrize("name", METHODS)
def test_deterministic_and_seed_sensitive(name):
    t = table("oeqa", rehearsed=True)
    a = get(name).build(t, _cfg(name, n_total=10))
    b = get(name).build(t, _cfg(name, n_total=10))
    assert json.dumps([a[0], a[1].to_dict(True)], sort_keys=True) == json.dumps([b[0], b[1].to_dict(True)],
                                                                                 sort_keys=True)
    c = get(name).build(t, _cfg(name, n_total=10, seed=123))
    assert [r["id"] for r in c[0]] != [r["id"] for r in a[0]]  # at least the shuffle differs


def test_prompt_style_system_and_refusal_options():
    rows, _ = get("cor_rait").build(table("oeqa"), _cfg("cor_rait", n_total=5, prompt_style="basic",
                                                        system_prompt=None, refusal="Sorry, I don't know."))
    assert all(r["messages"][0]["role"] == "user" for r in rows)
    assert {r["messages"][-1]["content"] for r in rows if r["label"] == "idk"} == {"Sorry, I don't know."}
    assert rows[0]["messages"][0]["content"] == "Question " + rows[0]["id"] + "?"


def test_mixed_kinds_rejected():
    from rait.errors import DataError

    with pytest.raises(DataError, match="one task kind"):
        get("van").build(table("oeqa") + table("mcqa"), _cfg("van"))


@pytest.mark.parametrize("name", ("cor_rait", "r_tuning", "corcer", "craft"))
def test_idk_weight_scales_refusal_rows_only(name):
    base, _ = get(name).build(table("oeqa", rehearsed=True), _cfg(name, n_total=10))
    half, _ = get(name).build(table("oeqa", rehearsed=True), _cfg(name, n_total=10, idk_weight=0.5))
    assert [r["id"] for r in base] == [r["id"] for r in half]  # same rows, same order
    assert {r["label"] for r in base} >= {"idk"}
    for b, h in zip(base, half):
        assert h["weight"] == (0.5 * b["weight"] if b["label"] == "idk" else b["weight"])
    with pytest.raises(ConfigError, match="idk_weight"):
        _cfg(name, idk_weight=0.0)
