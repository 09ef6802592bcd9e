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
