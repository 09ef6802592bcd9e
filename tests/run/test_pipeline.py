"""`rait run` on a tiny in-code model: every stage runs once, a rerun skips everything, and changing only the
GRAIT settings reruns only GRAIT's stages."""

import json

import pytest

from rait.core.config import load_yaml
from rait.run.pipeline import Plan, RunConfig, execute


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

    from rait.core.artifacts import MANIFEST_KEYS

    r = plan.root
    dirs = {"probe": r / "probe" / "m0", "rehearse": r / "rehearse", "grads": r / "grads", "build": r / "build" / "van",
            "train": r / "train" / "van" / "seed0", "eval": r / "eval" / "van" / "seed0" / "id"}
    for stage, d in dirs.items():  # one manifest layout for all six stages
        man = json.loads((d / "manifest.json").read_text())
        assert tuple(sorted(man)) == tuple(sorted(MANIFEST_KEYS)) and man["stage"] == stage, stage
        assert man["git_sha"] and man["versions"]["rait"] and man["config"], stage

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
    from rait.core.config import ConfigError

    p = tmp_path / "bad.yaml"
    p.write_text("methods: [init_basic, nope]\n")
    with pytest.raises(ConfigError, match="nope"):
        load_yaml(RunConfig, p)


def test_stage_typos_fail_at_load_with_did_you_mean(tiny_run):
    from rait.core.config import ConfigError

    with pytest.raises(ConfigError, match=r"probe: unknown key 'temprature' \(did you mean 'temperature'\?\)"):
        load_yaml(RunConfig, tiny_run, ["probe.temprature=0.5"])
    with pytest.raises(ConfigError, match=r"method_config.grait: unknown key 'n_totl' \(did you mean 'n_total'\?\)"):
        load_yaml(RunConfig, tiny_run, ["method_config.grait.n_totl=200"])
    with pytest.raises(ConfigError, match=r"train.epochs: expected a number"):
        load_yaml(RunConfig, tiny_run, ["train.epochs=two"])
    with pytest.raises(ConfigError, match=r"are set by rait run itself"):
        load_yaml(RunConfig, tiny_run, ["probe.out=elsewhere"])
    with pytest.raises(ConfigError, match=r"did you mean 'grait'"):
        load_yaml(RunConfig, tiny_run, ["methods=[init_basic, griat]"])


def test_known_keys_settable_when_the_yaml_omits_them(tiny_run):
    plan = Plan(load_yaml(RunConfig, tiny_run, ["probe.batch_size=3", "method_config.grait.n_total=7",
                                                "rehearse.train.lr=0.001", "eval.refusal=strict"]))
    assert plan.stages["probe_m0"].cfg.batch_size == 3 and plan.stages["probe_mr"].cfg.batch_size == 3
    assert plan.stages["build:grait"].cfg["config"].n_total == 7
    assert plan.stages["build:craft"].cfg["config"].n_total == 10  # the shared build section
    assert plan.stages["rehearse"].cfg.train.lr == 0.001
    assert plan.stages["rehearse"].cfg.train.warmup_ratio == 0.0  # a partial section keeps the field's defaults
    assert plan.stages["eval:van:0:id"].cfg.refusal == "strict"


def test_dry_run_cli_rejects_a_misspelt_stage_key(tiny_run, capsys):
    from rait.cli import main

    assert main(["run", str(tiny_run), "--dry-run", "--set", "probe.temprature=0.5"]) == 2
    err = capsys.readouterr().err
    assert "temprature" in err and "'temperature'" in err and "Traceback" not in err


def test_stage_keys_hash_the_typed_config(tiny_run):
    a = Plan(load_yaml(RunConfig, tiny_run))
    b = Plan(load_yaml(RunConfig, tiny_run, ["probe.k=3"]))  # the value the YAML already has
    assert {n: s.key for n, s in a.stages.items()} == {n: s.key for n, s in b.stages.items()}
    c = Plan(load_yaml(RunConfig, tiny_run, ["train.lr=0.001"]))
    changed = {n for n in a.stages if a.stages[n].key != c.stages[n].key}
    assert changed == {n for n in a.stages if n.startswith(("train:", "eval:")) and "init_" not in n} | {"aggregate"}


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
            assert st.out == plan.root / "build" / m / f"seed{s}" and st.cfg["config"].seed == s
            assert plan.stages[f"train:{m}:{s}"].deps == [f"build:{m}:{s}"]
            assert plan.stages[f"train:{m}:{s}"].cfg.data == str(st.out / "train.jsonl")
    assert "build:craft" in plan.stages and "build:craft:1" not in plan.stages  # deterministic: one build
    assert plan.stages["train:craft:2"].deps == ["build:craft"]
    single = Plan(load_yaml(RunConfig, tiny_run))  # one seed: unchanged layout, the method's own seed
    assert "build:van" in single.stages and single.stages["build:van"].cfg["config"].seed is None
    # and the seed really changes the label sets
    draws = {s: ids(van(table("oeqa"), VanConfig(n_total=5, seed=s))[0]) for s in (0, 1, 2)}
    assert len({tuple(v) for v in draws.values()}) == 3
    cr = {s: sorted(ids(cor_rait(table("oeqa"), CorRaitConfig(n_van=3, n_idk=3, seed=s))[0])) for s in (0, 1, 2)}
    assert len({tuple(v) for v in cr.values()}) == 3


def test_idk_weight_enters_the_build_key_only_when_set(tiny_run):
    a = Plan(load_yaml(RunConfig, tiny_run))
    b = Plan(load_yaml(RunConfig, tiny_run, ["build.idk_weight=1.0"]))  # the default: keys of existing runs hold
    assert {n: s.key for n, s in a.stages.items()} == {n: s.key for n, s in b.stages.items()}
    c = Plan(load_yaml(RunConfig, tiny_run, ["build.idk_weight=0.5"]))
    changed = {n for n in a.stages if a.stages[n].key != c.stages[n].key}
    trained = {"van", "cor_rait", "craft", "grait"}
    assert changed == {n for n in a.stages if n.split(":")[0] in ("build", "train", "eval")
                       and n.split(":")[1] in trained} | {"aggregate"}
    assert c.stages["build:cor_rait"].cfg["added"] == {"idk_weight": 0.5}
