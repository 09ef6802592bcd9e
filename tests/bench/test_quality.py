"""bench/quality.py: a from-scratch rerun of a run config reproduces every number, and the doc section is rendered
from results.json (no typed numbers) and replaced in place on a rerun."""

import json

from rait.core.config import load_yaml
from rait.run.pipeline import Plan, RunConfig, execute
from tests.bench import bench_module


def _quality():
    return bench_module("quality")


def test_rerun_from_scratch_reproduces_results_and_section(tiny_run, tmp_path):
    plan_a = Plan(load_yaml(RunConfig, tiny_run))
    execute(plan_a, log=lambda m: None)
    plan_b = Plan(load_yaml(RunConfig, tiny_run, [f"out_root={tmp_path / 'again'}"]))
    execute(plan_b, log=lambda m: None)
    res_a = json.loads((plan_a.root / "results.json").read_text())
    res_b = json.loads((plan_b.root / "results.json").read_text())
    assert res_a == res_b  # same seeds, fresh directory: identical numbers (probe, rehearse, grads, train, eval)

    quality = _quality()
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nkept text\n")
    block = quality.render(plan_a, "oeqa", 1.0, str(tiny_run))
    quality.write_section("oeqa", block, doc)
    quality.write_section("oeqa", quality.render(plan_b, "oeqa", 2.0, str(tiny_run)), doc)
    text = doc.read_text()
    assert text.count("<!-- oeqa:start -->") == 1 and "kept text" in text
    r = res_a["results"]
    for m, name in (("van", "Van-Tuning"), ("craft", "CRaFT"), ("grait", "GRAIT")):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert f"{r[m]['id']['P_c']['value']:.1f} [{r[m]['id']['P_c']['lo']:.1f}" in row
        assert f"{r[m]['ood']['THS']['value']:.1f}" in row
    summary = json.loads((plan_a.root / "build" / "cor_rait" / "summary.json").read_text())
    assert f"| Cor-RAIT | {summary['quotas']['van']} / {summary['quotas']['idk']} |" in text
    assert "GRAIT ≥ CRaFT ≥ Cor-RAIT" in text and "### Wall time" in text
    assert "### Knowledge flow of GRAIT's picks" in text  # the run has GRAIT, CRaFT and the rehearsed table
    assert "### Echo-safe scoring" in text  # open-ended items are scored both ways
    n_pool = len((plan_a.root / "probe" / "m0" / "table.jsonl").read_text().splitlines())
    assert f"training pool (knowledge table): {quality.pool_echo(plan_a.root)[0]} of {n_pool}" in text
    # "significantly above Init-Basic" is judged on the paired interval of ΔTHS, not on the method's own THS CI
    pairs = res_a["paired"]["id"]["pairs"]
    above = [m for m in pairs if "init_basic" in pairs[m] and pairs[m]["init_basic"]["THS"]["lo"] > 0]
    line = next(x for x in text.splitlines() if x.startswith("- in-domain: THS significantly above"))
    assert "paired 95 % interval of ΔTHS > 0" in line
    assert (line.split("): ")[1].split(";")[0] == "none") == (not above)
    # the paired Δ table and the diagnostics come from results.json["paired"] and diagnostics.json
    d = res_a["paired"]["id"]["pairs"]["craft"]["init_basic"]["THS"]
    row = next(line for line in text.split("### Paired differences")[1].splitlines() if line.startswith("| CRaFT |"))
    assert f"{d['value']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]" in row
    # the matrix of paired ΔTHS (row − column) and the ordering judged on paired intervals
    g = res_a["paired"]["ood"]["pairs"]["grait"]["craft"]["THS"]
    block = text.split("Paired ΔTHS between methods, ood")[1].split("### Diagnostics")[0]
    row = next(line for line in block.splitlines() if line.startswith("| GRAIT |")).split(" | ")
    head = next(line for line in block.splitlines() if line.startswith("| row − column |")).split(" | ")
    assert row[head.index("CRaFT")].startswith(f"{g['value']:+.1f}")
    assert f"GRAIT − CRaFT {res_a['paired']['id']['pairs']['grait']['craft']['THS']['value']:+.1f}" in text
    diag = json.loads((plan_a.root / "diagnostics.json").read_text())
    a = diag["refusal_alignment"]["ood"]["grait"]
    row = next(line for line in text.split("### Diagnostics")[1].splitlines() if line.startswith("| GRAIT |"))
    assert f"{100 * a['refused']:.0f} %" in row


def _m(v, sd=None, lo=None, hi=None):
    return {"value": v, "sd": sd, "lo": v - 1 if lo is None else lo, "hi": v + 1 if hi is None else hi}


def test_macro_and_echo_tables_come_from_results():
    q = _quality()
    res = {
        "init_basic": {"id": {"n": 100, "n_echo": 7, "P_c": _m(12.0), "THS": _m(0.0),
                              "echo_safe": {"P_c": _m(9.0), "THS": _m(0.0)},
                              "macro": {"n_groups": 4, "P_c": _m(11.25, 0.0), "P_w": _m(88.75, 0.0),
                                        "P_r": _m(0.0, 0.0), "THS": _m(0.0, 0.0)}}},
        "grait": {"id": {"n": 100, "n_echo": 7, "P_c": _m(10.0), "THS": _m(4.5),
                         "echo_safe": {"P_c": _m(6.0), "THS": _m(2.25)},
                         "macro": {"n_groups": 4, "P_c": _m(8.5, 0.4), "P_w": _m(30.0, 2.0),
                                   "P_r": _m(61.5, 2.1), "THS": _m(3.75, 0.5)}}},
    }
    mac = "\n".join(q.macro_table(res, ["id"], ["init_basic", "grait"]))
    assert "topics per set: id: 4" in mac
    row = next(x for x in mac.splitlines() if x.startswith("| GRAIT |"))
    assert row.split(" | ")[1:5] == ["8.5 ± 0.4", "30.0 ± 2.0", "61.5 ± 2.1", "3.8 ± 0.5"]
    echo = "\n".join(q.echo_table(res, ["id"], ["init_basic", "grait"]))
    assert "id: 7 of 100" in echo
    row = next(x for x in echo.splitlines() if x.startswith("| GRAIT |")).split(" | ")
    assert row[1:] == ["10.0 [9.0, 11.0]", "6.0 [5.0, 7.0]", "4.5 [3.5, 5.5]", "2.2 [1.2, 3.2] |"]
    for r in res.values():  # no echo item: one line instead of a table of equal columns
        r["id"]["n_echo"] = 0
    assert "No test item's question contains" in "\n".join(q.echo_table(res, ["id"], ["init_basic", "grait"]))
    # a test set without topics / without echo scoring gets no table
    for r in res.values():
        del r["id"]["macro"], r["id"]["echo_safe"]
    assert q.macro_table(res, ["id"], ["grait"]) == [] and q.echo_table(res, ["id"], ["grait"]) == []


def test_method_times_count_needed_artifacts_whole_and_own_stages_per_seed():
    q = _quality()
    times = {"probe_m0": 120.0, "rehearse": 30.0, "grads": 60.0, "hidden": 6.0, "probe_tests": 600.0,
             "build:grait": 0.0, "train:grait:0": 50.0, "train:grait:1": 70.0, "eval:grait:0:id": 30.0,
             "eval:grait:1:id": 30.0, "build:van:0": 0.0, "train:van:0": 90.0, "train:van:1": 90.0,
             "eval:init_basic:0:id": 25.0}
    per = q.method_times(times, ["init_basic", "grait", "van"], [0, 1])
    assert set(per) == {"grait", "van"}
    assert per["grait"]["shared"] * 60 == 120 + 30 + 60  # table, rehearsed model, gradients; not hidden / tests
    assert per["grait"]["own"] * 60 == (50 + 70 + 30 + 30) / 2
    assert per["van"]["total"] * 60 == 120 + 90


def test_pool_echo_counts_the_knowledge_tables_echo_items(tmp_path):
    q = _quality()
    assert q.pool_echo(tmp_path) is None
    (tmp_path / "probe" / "m0").mkdir(parents=True)
    rows = [{"id": "a", "kind": "oeqa", "question": "Which city is Beograd?", "answers": ["Belgrade", "Beograd"]},
            {"id": "b", "kind": "oeqa", "question": "Who wrote Hamlet?", "answers": ["Shakespeare"]},
            {"id": "c", "kind": "mcqa", "question": "Pick A", "choices": ["A", "B"], "gold": "A"}]
    (tmp_path / "probe" / "m0" / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert q.pool_echo(tmp_path) == (1, 2)
