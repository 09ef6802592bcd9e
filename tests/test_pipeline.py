"""`rait run` on a tiny in-code model: every stage runs once, a rerun skips everything, and changing only the
GRAIT settings reruns only GRAIT's stages."""

import json

import pytest
import yaml

from rait.pipeline import Plan, RunConfig, execute
from rait.config import load_yaml


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture()
def tiny_run(tmp_path, tiny_model_dir):
    # Alias "e" is inside almost any output of the random tiny model ("known"); "qqzzxx" never is ("unknown").
    pool = [{"id": f"p{i}", "question": f"What is item {i}?", "answers": ["e" if i % 2 else "qqzzxx"]}
            for i in range(24)]
    test = [{"id": f"t{i}", "question": f"Tell me thing {i}?", "answers": ["e" if i % 2 else "qqzzxx"]}
            for i in range(6)]
    _write(tmp_path / "pool.jsonl", pool)
    _write(tmp_path / "id.jsonl", test)
    _write(tmp_path / "ood.jsonl", test)
    cfg = {
        "name": "tiny", "out_root": str(tmp_path / "runs"), "model": str(tiny_model_dir), "dtype": "float32",
        "methods": ["init_basic", "init_refuse", "van", "cor_rait", "craft", "grait"], "seeds": [0],
        "data": {"pool": f"jsonl:{tmp_path / 'pool.jsonl'}", "id": f"jsonl:{tmp_path / 'id.jsonl'}",
                 "ood": f"jsonl:{tmp_path / 'ood.jsonl'}", "n_pool": 24, "n_id": 6, "n_ood": 6},
        "probe": {"k": 3, "max_new_tokens": 6, "fewshot": 0, "certainty": "answer_entropy", "chunk_size": 8},
        "rehearse": {"n": 4, "min_items": 1, "fallback": "top_k",
                     "train": {"epochs": 1, "batch_size": 4, "save_steps": 0, "precision": "fp32"}},
        "build": {"n_total": 10},
        "train": {"epochs": 1, "batch_size": 4, "save_steps": 0, "precision": "fp32"},
        "grads": {"dim": 64, "batch_size": 4, "dtype": "float32"},
        "eval": {"max_new_tokens": 6, "n_boot": 50},
        "report": False,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


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
