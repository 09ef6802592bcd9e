"""Loaders on small fixtures written to tmp_path: every format, its real quirks, every bad-input case."""

from __future__ import annotations

import json
import logging

import pytest

import rait.data.loaders as loaders
from rait.data import FORMATS, LoadReport, QAItem, load, load_with_report, parse_spec
from rait.errors import DataError


def write_jsonl(path, rows):
    """Rows are dicts (dumped) or raw strings (written as-is)."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def raises(spec, *parts, **kw):
    """Load ``spec`` expecting a DataError whose message contains every part; return the error."""
    with pytest.raises(DataError) as ei:
        load(spec, **kw)
    for p in parts:
        assert p in str(ei.value), (p, str(ei.value))
    return ei.value


# ------------------------------------------------------------------------------------------------ TriviaQA / NQ
def test_triviaqa_unquotes_doubled_quotes(tmp_path):
    p = write_jsonl(tmp_path / "tqa.jsonl", [
        {"id": "t1", "question": '"Who was the target of the failed ""Bomb Plot"" of 1944?"',
         "answers": ["Hitler", "Adolf Hitler"]},
        {"id": "t2", "question": '"Rodney you plonka" is a catchphrase from which sitcom?',
         "answers": ['"""Only Fools"" and Horses"', "OFAH"]},
        {"id": "t3", "question": 'Quote: "If you build it, he will come"', "answers": ["Field of Dreams"]},
    ])
    items = load(f"triviaqa:{p}")
    assert [i.id for i in items] == ["t1", "t2", "t3"]
    assert items[0].question == 'Who was the target of the failed "Bomb Plot" of 1944?'
    assert items[0].answers == ["Hitler", "Adolf Hitler"]
    assert items[1].question == '"Rodney you plonka" is a catchphrase from which sitcom?'  # not CSV-quoted: unchanged
    assert items[1].answers == ['"Only Fools" and Horses', "OFAH"]
    assert items[2].question == 'Quote: "If you build it, he will come"'
    assert all(i.source == "triviaqa" and i.kind == "oeqa" for i in items)


def test_nq_nbsp_normalised(tmp_path):
    p = write_jsonl(tmp_path / "nq.jsonl", [
        {"id": "nq_dev_9", "question": "max data rate of 802.11a", "answers": ["54\u00a0Mbit/s"]},
        {"id": "nq_dev_107", "question": "when does season 5 resume",
         "answers": ["January\u00a031, 2018", "January 31, 2018"]},
    ])
    items = load(f"nq:{p}")
    assert items[0].answers == ["54 Mbit/s"]
    assert items[1].answers == ["January 31, 2018"]  # duplicate after normalisation dropped
    assert items[0].source == "nq"


# ------------------------------------------------------------------------------------------------------------ MMLU
MMLU_HEADER = "id,lang,question,A,B,C,D,target\n"


def make_mmlu(root):
    """Two subjects in val/, one in test/; quoted commas, newlines and doubled quotes."""
    (root / "val").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "val" / "anatomy_val.csv").write_text(
        MMLU_HEADER
        + "anatomy/val/0,en,Plain question?,a,b,c,d,B\n"
        + 'anatomy/val/1,en,"Statement 1 | x, y.\nStatement 2 | the ""best"" one.","True, True","False, False",'
          '"He said ""no""",d,C\n'
        + "anatomy/val/2,en,Third?,1,2,3,4,D\n", encoding="utf-8")
    (root / "val" / "abstract_algebra_val.csv").write_text(
        MMLU_HEADER + "abstract_algebra/val/0,en,Order of Z_6?,2,3,6,12,C\n", encoding="utf-8")
    (root / "test" / "anatomy_test.csv").write_text(
        MMLU_HEADER + "anatomy/test/0,en,Test q?,a,b,c,d,A\n", encoding="utf-8")
    return root


def test_mmlu_quoted_csv_and_subjects(tmp_path):
    root = make_mmlu(tmp_path / "mmlu")
    items = load(f"mmlu:{root}/val")
    assert [i.id for i in items] == ["abstract_algebra/val/0", "anatomy/val/0", "anatomy/val/1", "anatomy/val/2"]
    q = items[2]
    assert q.question == 'Statement 1 | x, y.\nStatement 2 | the "best" one.'
    assert q.choices == ["True, True", "False, False", 'He said "no"', "d"]
    assert q.gold == "C" and q.gold_text == 'He said "no"'
    assert q.topic == "anatomy" and q.source == "mmlu" and q.kind == "mcqa"
    assert items[0].topic == "abstract_algebra"


def test_mmlu_split_grammar(tmp_path):
    root = make_mmlu(tmp_path / "mmlu")
    assert [i.id for i in load(f"mmlu:{root}")] == ["anatomy/test/0"]  # default split: test
    assert len(load(f"mmlu:{root}?split=val")) == 4
    assert len(load(f"mmlu:{root}", split="val")) == 4
    ids = [i.id for i in load(f"mmlu:{root}/val/anatomy_val.csv")]
    assert ids == ["anatomy/val/0", "anatomy/val/1", "anatomy/val/2"]
    raises(f"mmlu:{root}?split=train", "no MMLU split 'train'")


def test_mmlu_error_line_is_record_start(tmp_path):
    d = tmp_path / "val"
    d.mkdir()
    f = d / "anatomy_val.csv"
    f.write_text(MMLU_HEADER
                 + 'anatomy/val/0,en,"multi\nline\nquestion",a,b,c,d,A\n'   # lines 2-4
                 + 'anatomy/val/1,en,"q with ""quotes""\nand a newline",a,b,c,d,E\n',  # starts at line 5
                 encoding="utf-8")
    raises(f"mmlu:{d}", f"{f}:5:", "answer key 'E' is not among the choices A/B/C/D")
    items, rep = load_with_report(f"mmlu:{d}", on_error="skip")
    assert [i.id for i in items] == ["anatomy/val/0"] and rep.n_skipped == 1


def test_mmlu_bad_header_and_column_count(tmp_path):
    d = tmp_path / "val"
    d.mkdir()
    (d / "x_val.csv").write_text("foo,bar\n1,2\n", encoding="utf-8")
    raises(f"mmlu:{d}", "x_val.csv:1:", "expected id,lang,question,A,B,C,D,target")
    (d / "x_val.csv").write_text(MMLU_HEADER + "x/val/0,en,q?,a,b,c,A\n", encoding="utf-8")
    raises(f"mmlu:{d}", "x_val.csv:2:", "expected 8 columns")


# ------------------------------------------------------------------------------------------------------------- ARC
def arc_row(id_, labels, key, texts=None):
    texts = texts or [f"opt{i}" for i in range(len(labels))]
    choices = [{"text": t, "label": lab} for t, lab in zip(texts, labels)]
    return {"id": id_, "question": {"stem": f"stem {id_}?", "choices": choices}, "answerKey": key}


def test_arc_numeric_labels_and_3_5_choices(tmp_path):
    p = write_jsonl(tmp_path / "ARC-Challenge-Test.jsonl", [
        arc_row("a1", list("ABCD"), "C"),
        arc_row("a2", list("1234"), "2"),
        arc_row("a3", list("ABC"), "A"),
        arc_row("a4", list("ABCDE"), "E"),
        arc_row("a5", list("123"), "3"),
    ])
    items = load(f"arc:{p}")
    assert [(i.letters, i.gold) for i in items] == [("ABCD", "C"), ("ABCD", "B"), ("ABC", "A"), ("ABCDE", "E"),
                                                    ("ABC", "C")]
    assert items[1].gold_text == "opt1"
    assert all(i.topic == "STEM" and i.source == "arc" and i.question.startswith("stem") for i in items)


def test_arc_max_choices_cuts_to_abcd(tmp_path):
    p = write_jsonl(tmp_path / "arc.jsonl", [arc_row("a4", list("ABCDE"), "B"), arc_row("a5", list("ABCDE"), "E")])
    raises(f"arc:{p}?max_choices=4", "arc.jsonl:2:", "cut off by max_choices=4")
    items, rep = load_with_report(f"arc:{p}", on_error="skip", max_choices=4)
    assert [i.letters for i in items] == ["ABCD"] and rep.n_skipped == 1
    raises(f"arc:{p}?max_choices=x", "expected an integer")


def test_arc_answer_key_not_among_labels(tmp_path):
    p = write_jsonl(tmp_path / "arc.jsonl", [arc_row("a1", list("ABCD"), "A"), arc_row("a2", list("ABCD"), "5")])
    raises(f"arc:{p}", "arc.jsonl:2:", "answer key '5' is not among the choice labels")


def test_arc_missing_field(tmp_path):
    p = write_jsonl(tmp_path / "arc.jsonl", [{"id": "a1", "question": "flat string", "answerKey": "A"}])
    raises(f"arc:{p}", "arc.jsonl:1:", "missing field", "stem")


# ---------------------------------------------------------------------------------------------------- generic jsonl
def test_jsonl_default_mapping(tmp_path):
    p = write_jsonl(tmp_path / "mine.jsonl", [
        {"id": 1, "question": "Capital of France?", "answers": "Paris"},
        {"id": "m", "question": "2+2?", "choices": ["3", "4"], "gold": "B", "topic": "math"},
        {"id": "d", "question": "Pick", "choices": {"1": "x", "2": "y", "3": "z"}, "gold": "3"},
        {"id": "i", "question": "Pick", "choices": ["x", "y", "z"], "gold": 0},
    ])
    a, m, d, i = load(f"jsonl:{p}")
    assert (a.id, a.answers, a.kind, a.source) == ("1", ["Paris"], "oeqa", "mine")
    assert (m.gold, m.gold_text, m.topic) == ("B", "4", "math")
    assert (d.choices, d.gold) == (["x", "y", "z"], "C")
    assert i.gold == "A"


def test_jsonl_mapping_override(tmp_path):
    p = write_jsonl(tmp_path / "x.jsonl", [{"q": "Who?", "answer": {"aliases": ["Me", "I"]}, "src": "s"}])
    [item] = load(f"jsonl:{p}?question=q&answers=answer.aliases&id=@index&source=src")
    assert (item.id, item.question, item.answers, item.source) == ("s-0", "Who?", ["Me", "I"], "s")
    [item] = load(f"jsonl:{p}", question="q", answers="answer.aliases", id="@index")
    assert item.id == "x-0"
    raises(f"jsonl:{p}?question=q&answers=answer.aliases", "x.jsonl:1:", "missing field 'id'")


# --------------------------------------------------------------------------------------------- bad input (common)
@pytest.mark.parametrize("fmt", ["triviaqa", "nq", "jsonl"])
def test_bad_records_name_file_and_line(tmp_path, fmt):
    good = {"id": "g", "question": "ok?", "answers": ["a"]}
    cases = {
        "malformed": ('{"id": "x", "question": ', "malformed JSON"),
        "missing": ({"id": "x", "answers": ["a"]}, "missing field 'question'"),
        "no_answers_field": ({"id": "x", "question": "q?"}, "missing field 'answers'"),
        "empty_aliases": ({"id": "x", "question": "q?", "answers": []}, "empty alias list"),
        "blank_alias": ({"id": "x", "question": "q?", "answers": ["a", " "]}, "blank answer alias"),
        "empty_question": ({"id": "x", "question": "  ", "answers": ["a"]}, "empty question"),
        "not_object": ("[1, 2]", "expected a JSON object"),
    }
    for name, (row, msg) in cases.items():
        p = write_jsonl(tmp_path / f"{name}.jsonl", [good, "", row])  # blank line 2 is ignored; bad row on line 3
        raises(f"{fmt}:{p}", f"{name}.jsonl:3:", msg)


@pytest.mark.parametrize("fmt", ["triviaqa", "jsonl", "arc"])
def test_duplicate_id_names_both_lines(tmp_path, fmt):
    row = arc_row if fmt == "arc" else (lambda i, *_: {"id": i, "question": "q?", "answers": ["a"]})
    p = write_jsonl(tmp_path / "dup.jsonl", [row("a", list("ABCD"), "A"), row("b", list("ABCD"), "A"),
                                              row("a", list("ABCD"), "A")])
    raises(f"{fmt}:{p}", "dup.jsonl:3:", "duplicate id 'a'", "line 1")
    items, rep = load_with_report(f"{fmt}:{p}", on_error="skip")
    assert [i.id for i in items] == ["a", "b"] and rep.n_skipped == 1


def test_mcqa_gold_not_among_choices(tmp_path):
    p = write_jsonl(tmp_path / "mc.jsonl", [{"id": "m", "question": "q?", "choices": ["x", "y", "z"], "gold": "D"}])
    raises(f"jsonl:{p}", "mc.jsonl:1:", "answer key 'D' is not among the choices A/B/C")


def test_skip_mode_counts_and_warns(tmp_path, caplog):
    p = write_jsonl(tmp_path / "mixed.jsonl", [
        {"id": "1", "question": "a?", "answers": ["x"]},
        "not json",
        {"id": "2", "question": "", "answers": ["x"]},
        {"id": "3", "question": "c?", "answers": []},
        {"id": "1", "question": "dup?", "answers": ["x"]},
        {"id": "4", "question": "d?", "answers": ["y"]},
    ])
    with caplog.at_level(logging.WARNING, logger="rait.data.loaders"):
        items, rep = load_with_report(f"triviaqa:{p}", on_error="skip")
    assert [i.id for i in items] == ["1", "4"]
    assert isinstance(rep, LoadReport)
    assert (rep.n_read, rep.n_loaded, rep.n_skipped) == (6, 2, 4)
    assert [e.line for e in rep.skipped] == [2, 3, 4, 5]
    assert "mixed.jsonl:2: malformed JSON" in rep.reasons()[0]
    assert "skipped 4 of 6" in caplog.text and "mixed.jsonl:5: duplicate id '1'" in caplog.text
    with pytest.raises(DataError, match="mixed.jsonl:2:"):
        load(f"triviaqa:{p}")


def test_no_warning_when_nothing_skipped(tmp_path, caplog):
    p = write_jsonl(tmp_path / "ok.jsonl", [{"id": "1", "question": "a?", "answers": ["x"]}])
    with caplog.at_level(logging.WARNING):
        items, rep = load_with_report(f"nq:{p}", on_error="skip")
    assert rep.n_skipped == 0 and not caplog.records and "skipped 0 of 1" in rep.summary()


def test_limit_takes_first_valid_items(tmp_path):
    p = write_jsonl(tmp_path / "l.jsonl", [{"id": str(i), "question": f"q{i}?", "answers": ["a"]} for i in range(10)])
    assert [i.id for i in load(f"triviaqa:{p}", limit=3)] == ["0", "1", "2"]
    assert load(f"triviaqa:{p}", limit=0) == []
    assert len(load(f"triviaqa:{p}", limit=100)) == 10
    # stops reading once the limit is reached: a bad line after it is never seen
    q = write_jsonl(tmp_path / "m.jsonl", [{"id": "0", "question": "q?", "answers": ["a"]}, "broken"])
    assert [i.id for i in load(f"triviaqa:{q}", limit=1)] == ["0"]
    with pytest.raises(ValueError):
        load(f"triviaqa:{q}", limit=-1)


# ---------------------------------------------------------------------------------------------------- spec errors
def test_unknown_format_lists_formats(tmp_path):
    e = raises("csv:foo.csv", "unknown dataset format 'csv'")
    for f in FORMATS:
        assert f"{f}:" in str(e)
    raises("foo.jsonl", "expected FORMAT:LOCATION")


def test_missing_path(tmp_path):
    for fmt in ("triviaqa", "nq", "arc", "jsonl", "mmlu"):
        raises(f"{fmt}:{tmp_path}/nope.jsonl", "nope.jsonl", "not found")


def test_unknown_option_and_bad_on_error(tmp_path):
    p = write_jsonl(tmp_path / "t.jsonl", [{"id": "1", "question": "a?", "answers": ["x"]}])
    raises(f"triviaqa:{p}?split=val", "not accepted by format 'triviaqa'")
    raises(f"nq:{p}", "not accepted", max_choices=4)
    with pytest.raises(ValueError, match="on_error"):
        load(f"nq:{p}", on_error="ignore")


def test_parse_spec():
    assert parse_spec("jsonl:a/b.jsonl?question=q&id=@index") == ("jsonl", "a/b.jsonl",
                                                                   {"question": "q", "id": "@index"})
    assert parse_spec("builtin:facts/ood") == ("builtin", "facts/ood", {})


# ------------------------------------------------------------------------------------------------------- builtin
@pytest.fixture
def builtin_root(tmp_path, monkeypatch):
    root = tmp_path / "builtin"
    root.mkdir()
    rows = [QAItem(id=f"f{i}", question=f"Fact {i}?", answers=[f"ans{i}"], topic=t, source="facts").to_dict()
            for i, t in enumerate(["geo", "sci", "geo", "art", "sci"])]
    write_jsonl(root / "tinyfacts.jsonl", rows)
    (root / "tinyfacts_splits.json").write_text(json.dumps({"id": ["geo", "sci"], "ood": ["art"]}))
    monkeypatch.setattr(loaders, "builtin_dir", lambda: root)
    return root


def test_builtin_all_and_splits(builtin_root):
    assert [i.id for i in load("builtin:tinyfacts")] == ["f0", "f1", "f2", "f3", "f4"]
    assert [i.id for i in load("builtin:tinyfacts/id")] == ["f0", "f1", "f2", "f4"]
    ood = load("builtin:tinyfacts/ood")
    assert [(i.id, i.topic, i.answers, i.source) for i in ood] == [("f3", "art", ["ans3"], "facts")]
    assert [i.id for i in load("builtin:tinyfacts/id", limit=2)] == ["f0", "f1"]


def test_builtin_errors(builtin_root):
    raises("builtin:nope", "no built-in data set 'nope'", "tinyfacts")
    raises("builtin:tinyfacts/test", "tinyfacts_splits.json", "no split 'test'", "id", "ood")
    (builtin_root / "other.jsonl").write_text('{"id": "1", "question": "q?", "answers": ["a"]}\n')
    raises("builtin:other/id", "other_splits.json", "does not exist")


def test_builtin_dir_default_is_package_data():
    assert loaders.builtin_dir().parts[-2:] == ("data", "builtin")


# ------------------------------------------------------------------------------------------------------------ hf
def test_hf_load_from_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_list([{"qid": "h1", "q": "Who?", "aliases": ["Me"]},
                                             {"qid": "h2", "q": "What?", "aliases": ["It", "That"]}]),
        "test": datasets.Dataset.from_list([{"qid": "t1", "q": "", "aliases": ["x"]}]),
    })
    dd.save_to_disk(str(tmp_path / "dd"))
    spec = f"hf:{tmp_path / 'dd'}?split=train&id=qid&question=q&answers=aliases"
    items = load(spec)
    assert [(i.id, i.question, i.answers, i.source) for i in items] == [("h1", "Who?", ["Me"], "dd"),
                                                                        ("h2", "What?", ["It", "That"], "dd")]
    raises(f"hf:{tmp_path / 'dd'}?id=qid&question=q&answers=aliases", "no split given", "train", "test")
    raises(f"hf:{tmp_path / 'dd'}?split=test&id=qid&question=q&answers=aliases", ":1:", "empty question")
    # a single saved Dataset with MCQA rows and an int label
    rows = [{"id": "m1", "question": "2+2?", "choices": ["3", "4", "5", "6"], "label": 1}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "mc"))
    [m] = load(f"hf:{tmp_path / 'mc'}", gold="label")
    assert (m.gold, m.gold_text, m.kind) == ("B", "4", "mcqa")


def test_hf_missing_dataset_is_dataerror(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    raises("hf:no-such-user/no-such-dataset-xyz", "no-such-user/no-such-dataset-xyz", "cannot load")


def test_hf_data_files_split_and_revision(tmp_path, monkeypatch):
    """`hf:json?data_files=a,b&split=train`: a datasets builder over local files; `revision=` reaches load_dataset."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    for name, i in (("a.jsonl", 1), ("b.jsonl", 2)):
        (tmp_path / name).write_text(json.dumps({"id": f"q{i}", "question": f"Q{i}?", "answers": [f"A{i}"]}) + "\n")
    spec = f"hf:json?data_files={tmp_path / 'a.jsonl'},{tmp_path / 'b.jsonl'}&split=train"
    assert [(i.id, i.answers) for i in load(spec)] == [("q1", ["A1"]), ("q2", ["A2"])]
    seen = {}

    def fake(name, config=None, split=None, **kw):
        seen.update(kw, name=name, split=split)
        return datasets.Dataset.from_list([{"id": "x", "question": "Q?", "answers": ["A"]}])

    monkeypatch.setattr(datasets, "load_dataset", fake)
    load("hf:org/qa?split=validation&revision=v1.2")
    assert seen == {"name": "org/qa", "split": "validation", "revision": "v1.2"}
    raises("hf:org/qa?colour=red", "not accepted", "data_files", "revision")
