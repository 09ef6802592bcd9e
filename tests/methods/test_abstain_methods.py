"""The abstention baselines through `rait run` on a tiny model: thresholds fit on the pool only, verdicts from
Init-Basic's, diagnostics against M0's verdict on the same items."""

import json

import pytest
import yaml

from rait.core.config import load_yaml
from rait.run.pipeline import Plan, RunConfig, execute


def _config(tiny_run, name, test_file=None, methods=("init_basic", "abstain_consistency", "abstain_probe")):
    cfg = yaml.safe_load(tiny_run.read_text())
    cfg.update(name=name, methods=list(methods))
    cfg["method_config"] = {"abstain_probe": {"folds": 2}}
    if test_file is not None:
        cfg["data"]["id"] = f"jsonl:{test_file}"
    path = tiny_run.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _rewrite_pool(tiny_run):
    """A pool whose sampled verdicts are mixed for the tiny model: any sample with a letter, a digit or a stop
    matches the "known" aliases, none matches "qqzzxx"."""
    known = list("abcdefghijklmnopqrstuvwxyz0123456789.,")
    rows = [{"id": f"p{i}", "question": f"What is item {i}?", "answers": known if i % 3 else ["qqzzxx"],
             "popularity": i + 1} for i in range(24)]
    (tiny_run.parent / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    test = [{"id": f"t{i}", "question": f"Tell me thing {i}?", "answers": known if i % 2 else ["qqzzxx"],
             "popularity": 10 * i} for i in range(6)]
    (tiny_run.parent / "id.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))


def test_abstention_baselines_run_fit_on_the_pool_only(tiny_run, tmp_path):
    _rewrite_pool(tiny_run)
    plan = Plan(load_yaml(RunConfig, _config(tiny_run, "a")))
    assert {"probe_m0", "probe_tests", "hidden"} <= set(plan.stages)
    execute(plan, log=lambda m: None)
    res = json.loads((plan.root / "results.json").read_text())["results"]
    assert {"abstain_consistency", "abstain_probe"} <= set(res)
    taus = {}
    for m in ("abstain_consistency", "abstain_probe"):
        items = [json.loads(line) for line in open(plan.eval_dir(m, 0, "id") / "items.jsonl")]
        base = {r["id"]: r for r in map(json.loads, open(plan.eval_dir("init_basic", 0, "id") / "items.jsonl"))}
        metrics = json.loads((plan.eval_dir(m, 0, "id") / "metrics.json").read_text())
        tau = metrics["abstain"]["tau"]
        taus[m] = tau
        for r in items:  # refuse below tau, else exactly Init-Basic's verdict
            if tau is not None and r["confidence"] < tau:
                assert r["verdict"] == "refuse"
                assert set((r.get("verdicts") or {"x": "refuse"}).values()) == {"refuse"}  # every scoring view
            else:
                assert r["verdict"] == base[r["id"]]["verdict"] and r["output"] == base[r["id"]]["output"]
    assert json.loads((plan.eval_dir("abstain_consistency", 0, "id") / "metrics.json").read_text())[
        "abstain"]["cost_generations"] == 4  # k = 3 samples + the greedy answer
    diag = json.loads((plan.root / "diagnostics.json").read_text())
    assert set(diag["refusal_alignment"]["id"]) == {"abstain_consistency", "abstain_probe"}
    assert len(diag["knowledge_curve"]["id"]["bins"]) == 6 and "ood" not in diag["knowledge_curve"]
    from rait.report import make_report

    md, html = make_report(plan.root)
    text = md.read_text()
    assert "### Knowledge curve · id" in text and "### Refusal alignment and inference cost" in text
    assert (plan.root / "report_curve.png").exists() and "Knowledge curve · id" in html.read_text()

    # other test items: the same pool gives the same thresholds
    other = [{"id": f"o{i}", "question": f"Name the thing called {i}?", "answers": ["e" if i % 2 else "zzqq"]}
             for i in range(6)]
    test_file = tmp_path / "other_id.jsonl"
    test_file.write_text("".join(json.dumps(r) + "\n" for r in other))
    plan2 = Plan(load_yaml(RunConfig, _config(tiny_run, "b", test_file)))
    execute(plan2, log=lambda m: None)
    for m, tau in taus.items():
        assert json.loads((plan2.eval_dir(m, 0, "id") / "metrics.json").read_text())["abstain"]["tau"] == tau


def test_refusal_alignment_is_against_m0_on_the_same_items(tmp_path):
    from rait.run.diagnostics import run_diagnostics

    def write(method, rows):
        d = tmp_path / "eval" / method / "seed0" / "id"
        d.mkdir(parents=True)
        (d / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    write("init_basic", [{"id": "a", "verdict": "correct"}, {"id": "b", "verdict": "wrong"},
                         {"id": "c", "verdict": "wrong"}])
    write("m", [{"id": "c", "verdict": "refuse"}, {"id": "b", "verdict": "correct"}, {"id": "a", "verdict": "wrong"},
                {"id": "zz", "verdict": "refuse"}])  # an item M0 did not see is left out
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "id.jsonl").write_text("".join(json.dumps({"id": i, "popularity": p}) + "\n"
                                                        for i, p in (("a", 3), ("b", 2), ("c", 1))))
    d = run_diagnostics(tmp_path, ["init_basic", "m"], ["id"], {"init_basic": [0], "m": [0]}, n_bins=3)
    ra = d["refusal_alignment"]["id"]["m"]
    assert ra["n"] == 3 and ra["m0_wrong"] == 2 and ra["auroc"] == pytest.approx(0.75) and ra["precision"] == 1.0
    kc = d["knowledge_curve"]["id"]
    assert kc["methods"]["init_basic"]["P_c"] == [0.0, 0.0, 100.0]  # least popular first
    assert d["cost"]["id"]["m"] == {"generations_per_q": 1.0, "forward_per_q": 0.0}
