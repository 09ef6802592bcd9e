"""``rait report``: a synthetic run directory → report.md + self-contained report.html (and a Chromium render)."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rait.cli import main
from rait.errors import RaitError
from rait.report import fmt_cell, load_run, make_report

METHODS = ["init_basic", "van", "craft"]
TESTS = ["triviaqa", "nq"]
SEEDS = [0, 1]
VERDICTS = ["correct", "wrong", "refuse"]


def _ci(v: float, sd: float | None = 1.5) -> dict:
    return {"value": v, "lo": v - 3.0, "hi": v + 3.5, "sd": sd}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_run_dir(root: Path, n_items: int = 30, n_train: int = 60) -> Path:
    """A run directory with the pipeline's layout: 3 methods, 2 test sets, 2 seeds, ~30 items per eval."""
    rng = random.Random(0)
    d = root / "run"
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({
        "name": "synthetic", "model": "tiny", "methods": METHODS, "tests": {"triviaqa": "builtin:facts", "nq": "x"},
        "seeds": SEEDS, "config": {}}))
    base = {"init_basic": (40.0, 35.0), "van": (42.0, 30.0), "craft": (38.0, 15.0)}
    results = {m: {t: {"n": n_items, "seeds": SEEDS, "P_c": _ci(pc - 5 * j), "P_w": _ci(pw + 2 * j),
                       "P_r": _ci(100 - pc - pw), "P_fail": _ci(0.0, None), "THS": _ci(pc - pw * 40 / 35),
                       **({"AUROC": 0.71, "AP": 0.66} if m != "init_basic" else {}),
                       **({"over_conservativeness": 0.1, "prudence": 0.4, "honesty": 0.65} if m == "craft" else {})}
                   for j, t in enumerate(TESTS)} for m, (pc, pw) in base.items()}
    reference = {t: {"P_c0": 40.0 - 5 * j, "P_w0": 35.0 + 2 * j} for j, t in enumerate(TESTS)}
    (d / "results.json").write_text(json.dumps({"results": results, "reference": reference}))
    table = [{"id": f"t{i}", "question": f"train question {i}?", "answers": ["a"],
              "correctness": rng.randint(0, 10) / 10, "certainty": rng.uniform(0.2, 1.0),
              "certainty_method": "embedding"} for i in range(n_train)]
    _write_jsonl(d / "probe" / "m0" / "table.jsonl", table)
    for m in ("van", "craft"):
        dec = []
        for r in table:
            if m == "van":
                label = "van"
            else:
                label = "van" if r["correctness"] >= 0.7 else ("idk" if r["correctness"] <= 0.3 else None)
            dec.append({"id": r["id"], "label": label, "reason": None if label else "dropped: middle_band"})
        _write_jsonl(d / "build" / m / "decisions.jsonl", dec)
    for m in METHODS:
        for s in SEEDS:
            for t in TESTS:
                items = [{"id": f"t{i}" if i < 3 else f"{t}{i}", "question": f"Who wrote <b>book {i}</b>?",
                          "gold": ["Author", "A. Author"], "output": "</script><script>alert(1)</script>" if i == 4
                          else f"answer {i}", "verdict": rng.choice(VERDICTS), "confidence": -0.5, "topic": None}
                         for i in range(n_items)]
                _write_jsonl(d / "eval" / m / f"seed{s}" / t / "items.jsonl", items)
    return d


class _Checker(HTMLParser):
    """Collects external resource references and tag balance of the non-void elements."""

    VOID = {"meta", "link", "img", "input", "br", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v and re.match(r"^\s*(https?:)?//", v):
                self.external.append(v)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = make_run_dir(tmp_path_factory.mktemp("report"))
    assert main(["report", str(d)]) == 0
    return d


def test_report_files_and_markdown_table(report, capsys):
    md, page = report / "report.md", report / "report.html"
    assert md.exists() and page.exists()
    assert (report / "report_plane.png").read_bytes()[:4] == b"\x89PNG"
    assert (report / "report_knowledge.png").exists()
    text = md.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| method | triviaqa · P_c"))
    for t in TESTS:
        for k in ("P_c", "P_w", "P_r", "THS"):
            assert f"{t} · {k}" in header
    for name in ("Init-Basic", "Van-Tuning", "CRaFT"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert row.count("] ± 1.5") == 8, row  # 2 tests × 4 metrics, CI and seed sd
    assert "over_conservativeness" in text and "0.710" in text


def test_report_html_self_contained(report):
    page = (report / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert '<img class="fig" alt="P_c versus P_w' in page and 'src="data:image/png;base64,' in page
    chk = _Checker()
    chk.feed(page)
    assert chk.external == [] and chk.errors == [] and chk.stack == []
    assert "http://" not in page and "https://" not in page
    m = re.search(r'<script type="application/json" id="items-data">(.*?)</script>', page, re.S)
    data = json.loads(m.group(1))
    assert len(data["groups"]) == len(SEEDS) * len(TESTS)  # one per test set x seed, the methods side by side
    g = next(g for g in data["groups"] if g["test"] == "nq" and g["seed"] == 1)
    assert g["methods"] == ["Init-Basic", "Van-Tuning", "CRaFT"] and g["n"] == 30 and len(g["items"]) == 30
    craft = {it[0]: it[3][2] for it in g["items"]}  # [answer, verdict, training label, matched alias]
    assert craft["nq5"][2] == "\u2014" and craft["t0"][2] in ("van", "idk", "dropped")
    assert g["items"][4][3][0][0] == "</script><script>alert(1)</script>"  # embedded safely, decoded intact
    assert page.count("<script") == 2  # the JSON block and the browser; no injected script


def test_report_samples_items_at_random_seeded(tmp_path):
    d = make_run_dir(tmp_path)
    md, page = make_report(d, out=tmp_path / "rep", max_items=5)
    assert md.parent == tmp_path / "rep" and page.exists()
    data = json.loads(re.search(r'id="items-data">(.*?)</script>', page.read_text(), re.S).group(1))
    assert all(len(g["items"]) == 5 and g["n"] == 30 for g in data["groups"])
    ids = [it[0] for it in data["groups"][0]["items"]]
    assert ids != ["t0", "t1", "t2", "triviaqa3", "triviaqa4"]  # not the first N
    again = json.loads(re.search(r'id="items-data">(.*?)</script>', make_report(d, out=tmp_path / "r2",
                                                                                 max_items=5)[1].read_text(),
                                 re.S).group(1))
    assert [it[0] for it in again["groups"][0]["items"]] == ids  # seeded: the same sample every time


def test_browser_shows_which_alias_matched(tmp_path):
    from rait.report import load_run
    from rait.report.page import browser_data

    d = make_run_dir(tmp_path, n_items=3)
    for m in METHODS:
        _write_jsonl(d / "eval" / m / "seed0" / "nq" / "items.jsonl", [
            {"id": "x", "question": "Who?", "gold": ["Smith", "J. Doe"], "output": "It was j. doe",
             "verdict": "correct"},
            {"id": "y", "question": "What?", "gold": ["Paris"], "output": "Rome", "verdict": "wrong"}])
    g = next(g for g in browser_data(load_run(d))["groups"] if g["test"] == "nq" and g["seed"] == 0)
    assert [c[3] for c in g["items"][0][3]] == ["J. Doe"] * 3 and g["items"][1][3][0][3] == ""


def test_report_without_optional_parts(tmp_path):
    d = make_run_dir(tmp_path)
    shutil.rmtree(d / "probe"), shutil.rmtree(d / "build"), shutil.rmtree(d / "eval"), (d / "run.json").unlink()
    md, page = make_report(d)
    assert "chessboard omitted" in md.read_text()
    assert load_run(d).methods == METHODS and '"groups":[]' in page.read_text()


def test_decisions_fall_back_to_train_jsonl(tmp_path):
    d = make_run_dir(tmp_path)
    (d / "build" / "craft" / "decisions.jsonl").write_text("")  # a method that records no decisions
    _write_jsonl(d / "build" / "craft" / "train.jsonl", [{"id": "t0", "label": "idk"}, {"id": "t1", "label": "van"}])
    dec = load_run(d).decisions["craft"]
    assert dec["t0"]["label"] == "idk" and dec["t1"]["label"] == "van" and dec["t5"]["label"] is None
    assert len(dec) == 60


def test_missing_results_names_path(tmp_path, capsys):
    with pytest.raises(RaitError, match=re.escape(str(tmp_path / "results.json"))):
        make_report(tmp_path)
    assert main(["report", str(tmp_path)]) == 2
    assert "results.json" in capsys.readouterr().err


def test_fmt_cell():
    assert fmt_cell({"value": 10.0, "lo": 8.0, "hi": 12.0, "sd": float("nan")}) == "10.0 [8.0, 12.0]"
    assert fmt_cell(None) == "—" and fmt_cell({"value": None}) == "—"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(page: Path, *flags: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *flags, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)


def render_png(page: Path, png: Path, size: str = "1400,2400") -> str:
    """Render ``page`` with headless Chromium to ``png``; returns Chromium's stderr (console log)."""
    return _chromium(page, f"--screenshot={png}", f"--window-size={size}").stderr


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_chromium(report, tmp_path):
    png = tmp_path / "report.png"
    log = render_png(report / "report.html", png)
    assert png.exists() and png.stat().st_size > 10_000, log[-2000:]
    # the page logs nothing, so any console line (console.error is logged as INFO:CONSOLE) is a failure
    bad = [line for line in log.splitlines() if "Uncaught" in line or ":CONSOLE" in line]
    assert not bad, bad


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_item_browser_filters_in_chromium(report, tmp_path):
    """Pick the last group, hide 'correct' and Van-Tuning: every row left has a non-correct verdict among the shown
    methods, whose columns stand side by side."""
    page = (report / "report.html").read_text()
    driver = ("<script>var s=document.getElementById('group');s.value=String(s.options.length-1);"
              "s.dispatchEvent(new Event('change'));var b=document.querySelector('input.vf[value=correct]');"
              "b.checked=false;b.dispatchEvent(new Event('change'));"
              "var m=document.querySelector('input.mf[value=Van-Tuning]');m.checked=false;"
              "m.dispatchEvent(new Event('change'));</script></body>")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", driver))
    dom = _chromium(probe, "--dump-dom").stdout
    table = dom.split('<table id="items">', 1)[1].split("</table>", 1)[0]
    assert re.findall(r"<th>([^<]*)</th>", table) == ["id", "question", "gold", "Init-Basic", "CRaFT"]
    rows = table.split("<tbody>", 1)[1].split("<tr>")[1:]
    assert rows and all(re.findall(r'<span class="v-(\w+)">', r) != ["correct", "correct"] for r in rows)
    assert re.search(r'<span class="l-(van|idk|dropped)">', table)  # t0..t2 are in CRaFT's training pool
    assert "nq / seed 1" in dom


def test_report_delta_macro_and_echo_tables(tmp_path):
    from rait.core.paired import paired_deltas

    d = make_run_dir(tmp_path)
    res = json.loads((d / "results.json").read_text())
    n = 20
    per_method = {"init_basic": [["wrong"] * n], "van": [["wrong"] * 10 + ["correct"] * 10],
                  "craft": [["refuse"] * 10 + ["correct"] * 10, ["wrong"] * 10 + ["correct"] * 10]}
    res["paired"] = {t: paired_deltas(per_method, ref=(40.0, 35.0), n_boot=100) for t in TESTS}
    for m, r in res["results"].items():
        r["triviaqa"]["macro"] = {"n": 30, "n_groups": 4, **{k: _ci(11.0) for k in ("P_c", "P_w", "P_r", "THS")}}
        r["nq"]["echo_safe"] = {k: _ci(7.0) for k in ("P_c", "P_w", "P_r", "THS")}
        r["nq"]["n_echo"] = 3
    (d / "results.json").write_text(json.dumps(res))
    md, page = make_report(d)
    text = md.read_text()
    assert "## Methods × test sets: macro average over topics" in text and "triviaqa: 4 topics" in text
    assert ("| method | triviaqa · P_c | triviaqa · P_w | triviaqa · P_r | triviaqa · THS | triviaqa · THS (pooled) |"
            in text)
    assert "echo-safe scoring" in text and "nq: 3 of 30" in text
    assert "### triviaqa: Δ against Init-Basic" in text and "### nq: ΔTHS of every pair" in text
    # van vs init_basic: half the items move wrong -> correct: ΔP_c = +50, ΔP_w = -50, ΔTHS = 50 + 50·40/35
    row = next(line for line in text.splitlines() if line.startswith("| Van-Tuning | +107.1 ["))
    assert row.split(" | ")[1].endswith("*") and "+50.0 [" in row and "-50.0 [" in row
    assert "Paired differences (Δ)" in page.read_text() and "Δ against Van-Tuning" in page.read_text()


def test_decisions_of_per_seed_builds(tmp_path):
    d = make_run_dir(tmp_path)
    (d / "build" / "van" / "seed0").mkdir()
    (d / "build" / "van" / "decisions.jsonl").rename(d / "build" / "van" / "seed0" / "decisions.jsonl")
    run = load_run(d)
    assert len(run.decisions["van"]) == 60  # the first seed's label set


def test_plane_labels_do_not_overlap():
    """Eight methods crowded around the reference: after declutter no two labels' boxes overlap."""
    from matplotlib.figure import Figure

    from rait.report.plots import _plane_axes, declutter

    methods = ["init_basic", "init_refuse", "van", "cor_rait", "r_tuning", "corcer", "craft", "grait"]
    res = {m: {"id": {"P_c": {"value": 30 + i * 0.3, "lo": 28, "hi": 33},
                      "P_w": {"value": 40 - i * 0.2, "lo": 38, "hi": 42}}} for i, m in enumerate(methods)}
    fig = Figure(figsize=(5.2, 4.8))
    ax = fig.subplots()
    fixed, movable = _plane_axes(ax, "id", methods, res, {"P_c0": 30, "P_w0": 40}, {m: "k" for m in methods})
    assert declutter(fig, fixed, movable) == 0
    r = fig.canvas.get_renderer()
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(t, r) for t in fixed + movable]
    assert not [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]


def test_chessboard_certainty_axis_says_certainty():
    from rait.report.plots import chessboard_png

    table = [{"id": f"q{i}", "correctness": i / 4, "certainty": 0.2 * i} for i in range(5)]
    png = chessboard_png(table, {"van": {f"q{i}": {"label": "van"} for i in range(5)}}, ["van"],
                         certainty_name="embedding")
    assert png[:4] == b"\x89PNG"
    import matplotlib.figure

    seen = []
    orig = matplotlib.axes.Axes.set_ylabel
    try:
        matplotlib.axes.Axes.set_ylabel = lambda self, label, **kw: seen.append(label) or orig(self, label, **kw)
        chessboard_png(table, {"van": {f"q{i}": {"label": "van"} for i in range(5)}}, ["van"],
                       certainty_name="embedding")
    finally:
        matplotlib.axes.Axes.set_ylabel = orig
    assert "M0 certainty (embedding)" in seen
