"""`rait build`: table reading, rehearsed merge, column checks, outputs, determinism, --list / --explain."""

import hashlib
import json

import pytest

from rait.cli import main
from rait.core.artifacts import read_table
from rait.core.config import ConfigError
from rait.errors import DataError
from rait.stages.build import run_build
from tests.methods import rehearsed_table, table, write_jsonl


@pytest.fixture
def oeqa_files(tmp_path):
    return (write_jsonl(tmp_path / "table.jsonl", table("oeqa")),
            write_jsonl(tmp_path / "rehearsed.jsonl", rehearsed_table("oeqa")))


def test_craft_build_writes_outputs(tmp_path, oeqa_files):
    t, r = oeqa_files
    s = run_build("craft", t, tmp_path / "out", {"n_van": 4, "n_idk": 3}, rehearsed_path=r)
    out = tmp_path / "out"
    rows = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert sorted(x["id"] for x in rows if x["label"] == "idk") == ["o07", "o08", "o10"]  # golden (default)
    assert all(list(x) == sorted(x) for x in rows)  # sorted keys
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(s)) and "decisions" not in summary
    assert summary["counts"] == {"van": 4, "idk": 3} and summary["dropped"]["flow_positive"] == 3
    decisions = [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines()]
    assert len(decisions) == 22 and decisions[9]["id"] == "o09"
    m = json.loads((out / "manifest.json").read_text())
    assert m["outputs"]["method"] == "craft" and m["config"]["n_van"] == 4 and m["versions"]["rait"]
    assert m["inputs"]["table"]["sha256"] == hashlib.sha256(t.read_bytes()).hexdigest()
    assert m["inputs"]["rehearsed_table"]["sha256"] == hashlib.sha256(r.read_bytes()).hexdigest()


def test_two_builds_byte_identical(tmp_path, oeqa_files):
    t, r = oeqa_files
    for d in ("a", "b"):
        run_build("craft", t, tmp_path / d, ["n_total=10"], rehearsed_path=r)
    for f in ("train.jsonl", "summary.json", "decisions.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    a, b = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("a", "b"))
    for m in (a, b):
        del m["timings"], m["created"]  # when it ran and how long it took
    assert a == b


def test_rehearsed_merge_columns(tmp_path, oeqa_files):
    from rait.stages.build import merge_rehearsed

    t, r = oeqa_files
    merged = merge_rehearsed(read_table(t).rows, read_table(r).rows, t, r)
    assert merged[9]["correctness_rehearsed"] == 0.2 and merged[9]["flow"] == pytest.approx(0.2)
    assert merged[9]["certainty_rehearsed"] == 0.10


def test_rehearsed_ids_mismatch(tmp_path, oeqa_files):
    t, _ = oeqa_files
    reh = rehearsed_table("oeqa")
    bad = write_jsonl(tmp_path / "bad.jsonl", reh[:-1] + [dict(reh[-1], id="zz9")])
    with pytest.raises(DataError) as e:
        run_build("craft", t, tmp_path / "out", rehearsed_path=bad)
    msg = str(e.value)
    assert "bad.jsonl" in msg and "'o21'" in msg and "'zz9'" in msg and "missing" in msg


def test_malformed_line(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps(table("oeqa")[0]) + "\n\n{not json\n")
    with pytest.raises(DataError, match=r"t\.jsonl:3: malformed JSON"):
        run_build("van", p, tmp_path / "out")
    p.write_text("[1, 2]\n")
    with pytest.raises(DataError, match=r"t\.jsonl:1: expected a JSON object"):
        read_table(p)
    rows = table("oeqa")[:2]
    write_jsonl(p, rows + [rows[0]])
    with pytest.raises(DataError, match=r"t\.jsonl:3: duplicate id 'o00'"):
        read_table(p)


def test_missing_columns(tmp_path, oeqa_files):
    t, _ = oeqa_files
    rows = table("oeqa")
    del rows[4]["certainty"]
    p = write_jsonl(tmp_path / "nocer.jsonl", rows)
    with pytest.raises(DataError, match=r"nocer\.jsonl:5: method 'corcer' needs column 'certainty'"):
        run_build("corcer", p, tmp_path / "out")
    with pytest.raises(DataError, match=r"table\.jsonl: method 'craft' needs column 'correctness_rehearsed'.*"
                                        r"--rehearsed-table"):
        run_build("craft", t, tmp_path / "out")


def test_config_yaml_and_overrides(tmp_path, oeqa_files):
    t, _ = oeqa_files
    cfg = tmp_path / "c.yaml"
    cfg.write_text("corcer:\n  n_van: 2\n  n_idk: 1\n")
    s = run_build("corcer", t, tmp_path / "o1", ["n_idk=2"], config_path=cfg)
    assert s["quotas"] == {"van": 2, "idk": 2}
    with pytest.raises(ConfigError, match="unknown key"):
        run_build("corcer", t, tmp_path / "o2", {"bogus": 1})
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        run_build("nope", t, tmp_path / "o3")


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_list(capsys):
    assert main(["build", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("van", "cor_rait", "r_tuning", "corcer", "craft"):
        assert any(line.startswith(name + " ") for line in out.splitlines())
    assert main(["build", "--list", "--method", "craft"]) == 0
    assert "idk_keep_flow" in capsys.readouterr().out


def test_cli_build_and_explain(tmp_path, oeqa_files, capsys):
    t, r = oeqa_files
    out = tmp_path / "out"
    args = ["build", "--method", "craft", "--table", str(t), "--rehearsed-table", str(r), "--set", "n_van=4",
            "n_idk=3"]
    assert main(args + ["--out", str(out)]) == 0
    assert "wrote 7 rows" in capsys.readouterr().out
    assert main(args + ["--explain", "o09"]) == 0  # in memory, nothing written
    text = capsys.readouterr().out
    assert text.startswith("o09: dropped: flow_positive") and "correctness=0.0" in text and "flow=0.2" in text
    assert "threshold idk: correctness <= 0.49" in text
    assert main(args + ["--explain", "o08"]) == 0
    assert "selected as idk: rank 1 by lowest certainty <= quota 3" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "o2"), "--explain", "o05"]) == 0
    assert "over_quota" in capsys.readouterr().out


def test_cli_errors_exit_2(tmp_path, oeqa_files, capsys):
    t, _ = oeqa_files
    assert main(["build", "--method", "craft", "--table", str(t), "--out", str(tmp_path / "o")]) == 2
    assert "--rehearsed-table" in capsys.readouterr().err
    assert main(["build", "--method", "van", "--table", str(t), "--explain", "nope"]) == 2
    assert "not in the knowledge table" in capsys.readouterr().err
    assert main(["build", "--table", str(t), "--out", str(tmp_path / "o")]) == 2
    assert "--method is required" in capsys.readouterr().err
