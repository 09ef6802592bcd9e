"""THS at degenerate reference points: P_w0 = 0 is reported as undefined, P_c0 = 0 is defined and plots."""

import json

import pytest

from rait.run.aggregate import aggregate_verdicts, reference_point


def test_reference_point_undefined_only_without_wrong_answers():
    assert reference_point({"P_c": {"value": 30.0}, "P_w": {"value": 0.0}}) is None
    assert reference_point({"P_c": {"value": 0.0}, "P_w": {"value": 50.0}}) == (0.0, 50.0)


def test_ths_with_p_c0_zero_is_p_c():
    m = aggregate_verdicts([["correct", "wrong", "refuse", "refuse"]], ref=(0.0, 50.0), n_boot=0)
    assert m["THS"]["value"] == pytest.approx(25.0)


def test_plane_plot_with_p_c0_zero_does_not_divide_by_zero():
    from rait.report.plots import plane_png

    m = {"P_c": {"value": 10, "lo": 5, "hi": 15}, "P_w": {"value": 20, "lo": 16, "hi": 24}}
    png = plane_png(["m1"], ["id"], {"m1": {"id": m}}, {"id": {"P_c0": 0.0, "P_w0": 40.0}})
    assert png[:4] == b"\x89PNG"


def test_run_results_mark_undefined_ths(tmp_path):
    """write_results with a reference that never answers wrongly: THS_undefined, no THS, no crash."""
    from rait.core.config import from_dict
    from rait.run.aggregate import write_results
    from rait.run.pipeline import Plan, RunConfig

    cfg = from_dict(RunConfig, {"name": "r", "out_root": str(tmp_path), "methods": ["init_basic", "init_refuse"],
                                "data": {"ood": None}})
    plan = Plan(cfg)
    for m, verdicts in (("init_basic", ["correct", "refuse"]), ("init_refuse", ["refuse", "refuse"])):
        d = plan.eval_dir(m, 0, "id")
        d.mkdir(parents=True)
        (d / "items.jsonl").write_text("".join(json.dumps({"verdict": v}) + "\n" for v in verdicts))
        p_c = 100.0 * verdicts.count("correct") / 2
        (d / "metrics.json").write_text(json.dumps({"P_c": {"value": p_c}, "P_w": {"value": 0.0}}))
    write_results(plan)
    res = json.loads((plan.root / "results.json").read_text())
    assert "THS_undefined" in res["reference"]["id"] and "THS" not in res["results"]["init_refuse"]["id"]
