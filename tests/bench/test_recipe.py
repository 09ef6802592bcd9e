"""bench/recipe.py: a point runs the pipeline's own stages (the base point reproduces the run's Cor-RAIT and CRaFT
evaluations item for item), overrides reach the stage configs, finished units are skipped, and the doc section is
rendered from the measured results."""

import json

import pytest
import yaml

from rait.core.artifacts import read_jsonl
from rait.core.config import load_yaml
from rait.run.pipeline import Plan, RunConfig, execute
from tests.bench import bench_module


def _recipe():
    return bench_module("recipe")


@pytest.fixture()
def base_run(tiny_run):
    cfg = yaml.safe_load(tiny_run.read_text())
    cfg["methods"] = ["init_basic", "cor_rait", "craft"]
    tiny_run.write_text(yaml.safe_dump(cfg))
    plan = Plan(load_yaml(RunConfig, tiny_run))
    execute(plan, log=lambda m: None)
    return tiny_run, plan


def test_base_point_reproduces_the_pipeline_and_overrides_reach_the_stages(base_run, tmp_path):
    config, plan = base_run
    recipe = _recipe()
    out, doc = tmp_path / "recipe", tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nkept\n")
    assert recipe.main([str(config), "--only", "base", "epochs_4+lr_2e-3", "--out", str(out), "--doc", str(doc),
                        "--fresh", "--pairs"]) == 0
    for m in ("cor_rait", "craft"):
        for t in ("id", "ood"):
            ours = read_jsonl(out / "base" / m / "seed0" / "eval" / t / "items.jsonl")
            pipeline = read_jsonl(plan.root / "eval" / m / "seed0" / t / "items.jsonl")
            assert [(r["id"], r["output"]) for r in ours] == [(r["id"], r["output"]) for r in pipeline]
    man = json.loads((out / "epochs_4+lr_2e-3" / "cor_rait" / "seed0" / "train" / "manifest.json").read_text())
    assert man["config"]["epochs"] == 4 and man["config"]["lr"] == 0.002
    results = json.loads((out / "recipe.json").read_text())
    text = doc.read_text()
    assert "kept" in text and text.count("<!-- recipe:start -->") == 1
    for r in results:
        ths, d = r["id"]["THS"]["value"], r["id"]["dTHS"]["value"]
        assert d == pytest.approx(ths, abs=1e-6)  # Init-Basic's THS is 0 by definition: Δ = THS
        assert f"{d:+.1f} [" in text
    # paired ΔTHS between units: its point estimate is the difference of the two THS values
    pairs = json.loads((out / "recipe.pairs.json").read_text())
    a, b = (next(r for r in results if r["point"] == "base" and r["method"] == m) for m in ("cor_rait", "craft"))
    d = pairs["id"]["pairs"]["base · Cor-RAIT"]["base · CRaFT"]["THS"]
    assert d["value"] == pytest.approx(a["id"]["THS"]["value"] - b["id"]["THS"]["value"], abs=1e-6)
    assert "ΔTHS between the rows, ood" in text
    # the base run's own methods are columns too; the base point re-trained with --fresh reproduces them exactly
    run = pairs["id"]["pairs"]["base · CRaFT"]["run · CRaFT"]["THS"]
    assert run["value"] == 0 and "run · Cor-RAIT" in pairs["ood"]["methods"]
    # a rerun skips finished units (done.json untouched) and an unknown point fails by name before anything runs
    done = out / "base" / "craft" / "seed0" / "done.json"
    before = done.stat().st_mtime_ns
    recipe.main([str(config), "--only", "base", "--out", str(out), "--doc", str(doc)])
    assert done.stat().st_mtime_ns == before
    # without --fresh the base point reuses the base run's own stages (same configs, same keys): same numbers
    reused = tmp_path / "reused"
    recipe.main([str(config), "--only", "base", "--out", str(reused), "--doc", str(doc)])
    rec = json.loads((reused / "base" / "cor_rait" / "seed0" / "done.json").read_text())
    assert rec["from_base_run"] == str(plan.root) and not (reused / "base" / "cor_rait" / "seed0" / "eval").exists()
    again = json.loads((reused / "recipe.json").read_text())
    first = [r for r in results if r["point"] == "base"]
    assert [(r["id"]["THS"], r["ood"]["dTHS"]) for r in again] == [(r["id"]["THS"], r["ood"]["dTHS"]) for r in first]
    with pytest.raises(SystemExit, match="epochs_5"):
        recipe.main([str(config), "--only", "epochs_5", "--out", str(out), "--doc", str(doc)])


def test_study_units_name_known_points_and_methods():
    from rait.methods import get

    recipe = _recipe()
    assert len(recipe.STUDY) == len(set(recipe.STUDY))
    for unit in recipe.STUDY:
        point, method = unit.split(":", 1)
        assert recipe.overrides_of(point) or point == "base"
        assert get(method).trains
