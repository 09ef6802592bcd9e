"""`rait run` on a tiny in-code model: every stage runs once, a rerun skips everything, and changing only the
GRAIT settings reruns only GRAIT's stages."""

import json

import pytest

from rait.pipeline import Plan, RunConfig, execute
from rait.config import load_yaml


def test_run_skip_and_partial_rerun(tiny_run):
    plan = Plan(load_yaml(RunConfig, tiny_run))
    first = execute(plan, log=lambda m: None)
    assert set(first) == set(plan.stages)  # everything ran
    res = json.loads((plan.root / "results.json").read_text())["results"]
    assert set(res) == {"init_basic", "init_refuse", "van", "cor_rait", "craft", "grait"}
    assert res["init_basic"]["id"]["THS"]["value"] == pytest.approx(0.0)
    for m in res:
        for t in ("id", "ood"):
            r = res[m][t]
            assert r["n"] == 6
            assert r["P_c"]["lo"] <= r["P_c"]["value"] <= r["P_c"]["hi"]

    again = execute(Plan(load_yaml(RunConfig, tiny_run)), log=lambda m: None)
    assert again == {}  # all skipped

    changed = Plan(load_yaml(RunConfig, tiny_run, ["method_config={grait: {weight_sign: -1}}"]))
    ran = execute(changed, log=lambda m: None)
    assert set(ran) == {"build:grait", "train:grait:0", "eval:grait:0:id", "eval:grait:0:ood", "aggregate"}


def test_dry_run_lists_plan(tiny_run):
    plan = Plan(load_yaml(RunConfig, tiny_run))
    lines = []
    assert execute(plan, dry_run=True, log=lines.append) == {}
    assert any(line.startswith("[run ] probe_m0") for line in lines)
    assert not (plan.root / "results.json").exists()


def test_unknown_method_is_a_clear_error(tmp_path):
    from rait.config import ConfigError

    p = tmp_path / "bad.yaml"
    p.write_text("methods: [init_basic, nope]\n")
    with pytest.raises(ConfigError, match="nope"):
        load_yaml(RunConfig, p)


def test_seeds_vary_the_draw_of_random_methods(tiny_run):
    from rait.methods.cor_rait import CorRaitConfig
    from rait.methods.cor_rait import build as cor_rait
    from rait.methods.van import VanConfig
    from rait.methods.van import build as van
    from tests.methods import ids, table

    plan = Plan(load_yaml(RunConfig, tiny_run, ["seeds=[0,1,2]"]))
    for s in (0, 1, 2):  # van / cor_rait: one build per seed, seeded with the training seed
        for m in ("van", "cor_rait"):
            st = plan.stages[f"build:{m}:{s}"]
            assert st.out == plan.root / "build" / m / f"seed{s}" and f"seed={s}" in st.argv
            assert st.argv[st.argv.index("--out") + 1] == str(st.out)
            assert plan.stages[f"train:{m}:{s}"].deps == [f"build:{m}:{s}"]
            assert str(st.out / "train.jsonl") in plan.stages[f"train:{m}:{s}"].argv
    assert "build:craft" in plan.stages and "build:craft:1" not in plan.stages  # deterministic: one build
    assert plan.stages["train:craft:2"].deps == ["build:craft"]
    single = Plan(load_yaml(RunConfig, tiny_run))  # one seed: unchanged layout, the method's own seed
    assert "build:van" in single.stages and not any("seed=" in a for a in single.stages["build:van"].argv)
    # and the seed really changes the label sets
    draws = {s: ids(van(table("oeqa"), VanConfig(n_total=5, seed=s))[0]) for s in (0, 1, 2)}
    assert len({tuple(v) for v in draws.values()}) == 3
    cr = {s: sorted(ids(cor_rait(table("oeqa"), CorRaitConfig(n_van=3, n_idk=3, seed=s))[0])) for s in (0, 1, 2)}
    assert len({tuple(v) for v in cr.values()}) == 3
