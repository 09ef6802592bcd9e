"""The bad-invocation table (issue 16): bad command lines and bad files end with a non-zero exit and one paragraph
that names the offending value and the fix, never a traceback; inputs that can be checked before a model loads
are checked first (those cases pass a model spec that would fail differently)."""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from rait.cli import main

NO_MODEL = "/nonexistent/model/dir"  # loading it fails: a case using it proves the error came before the model


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _qa(tmp, answers, name="qa.jsonl"):
    return _jsonl(tmp / name, [{"id": "a", "question": "Who?", "answers": answers}])


def _table(tmp, **over):
    row = {"id": "q1", "question": "Q?", "answers": ["a"], "kind": "oeqa", "correctness": 1.0, "certainty": 1.0,
           **over}
    return _jsonl(tmp / "table.jsonl", [row])


def _good_qa(tmp):
    return _jsonl(tmp / "good.jsonl", [{"id": f"g{i}", "question": f"Q{i}?", "answers": ["e"]} for i in range(3)])


def _train_rows(tmp, rows):
    return _jsonl(tmp / "train.jsonl", rows)


def _file(tmp):
    f = tmp / "a_file"
    f.write_text("x")
    return f


@dataclass
class Case:
    """argv builder (tmp, model dir) -> argv; regexes the message must match; optional setup (monkeypatch)."""

    id: str
    argv: Callable[[Path, Path], list]
    value: str  # regex naming the offending value
    fix: str  # regex naming the fix
    setup: Callable | None = None
    marks: list = field(default_factory=list)
    ok: bool = False  # the right behaviour is exit 0 (a report with "undefined", not a crash)


def _unreadable(mp, tmp):
    real = os.access
    mp.setattr(os, "access", lambda p, mode, *a, **k: False if str(p).endswith("secret.jsonl") else real(p, mode, *a, **k))


def _enospc(mp, tmp):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    mp.setattr(os, "fsync", full)


def _latin1(tmp):
    d = tmp / "mmlu"
    d.mkdir()
    (d / "history_test.csv").write_bytes("id,lang,question,A,B,C,D,target\n1,en,Caf\xe9 owner?,a,b,c,d,A\n"
                                         .encode("latin-1"))
    return d / "history_test.csv"


def _header_only(tmp):
    f = tmp / "law_test.csv"
    f.write_text("id,lang,question,A,B,C,D,target\n")
    return f


def _run_yaml(tmp, model, **over):
    cfg = {"name": "r", "out_root": str(tmp / "runs"), "model": str(model), "methods": ["init_basic"], **over}
    p = tmp / "run.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _zero_pc0_run(tmp, model):
    rows = [{"id": f"t{i}", "question": f"Thing {i}?", "answers": ["qqzzxx"]} for i in range(4)]
    _jsonl(tmp / "t.jsonl", rows)
    spec = f"jsonl:{tmp / 't.jsonl'}"
    return _run_yaml(tmp, model, dtype="float32", methods=["init_basic", "init_refuse"],
                     data={"pool": spec, "id": spec, "ood": None, "n_pool": 0, "n_id": 4},
                     eval={"max_new_tokens": 4, "n_boot": 20}, report=True)


NAN_ROW = '{"id": "a", "question": "Who?", "answers": [NaN]}'
T = "train"

CASES = [
    # ---- data files and values (found before a model loads: --model NO_MODEL)
    Case("data-is-dir", lambda t, m: ["eval", "--data", f"jsonl:{t}", "--model", NO_MODEL], r"is a directory",
         r"expected a file"),
    Case("data-missing", lambda t, m: ["eval", "--data", f"jsonl:{t / 'nope.jsonl'}", "--model", NO_MODEL],
         r"nope\.jsonl", r"file not found"),
    Case("data-unreadable", lambda t, m: ["eval", "--data", f"jsonl:{_qa(t, ['x'], 'secret.jsonl')}", "--model",
                                         NO_MODEL], r"secret\.jsonl: permission denied", r"chmod \+r",
         setup=_unreadable),
    Case("mmlu-latin1", lambda t, m: ["eval", "--data", f"mmlu:{_latin1(t)}", "--model", NO_MODEL],
         r"history_test\.csv:2: not UTF-8 text \(byte 0xe9\)", r"re-save the file as UTF-8.*iconv"),
    Case("mmlu-header-only", lambda t, m: ["probe", "--data", f"mmlu:{_header_only(t)}", "--model", NO_MODEL,
                                          "--out", str(t / "p")], r"law_test\.csv.*no records", r"check the path"),
    Case("mmlu-bad-header", lambda t, m: ["eval", "--data", f"mmlu:{_jsonl(t / 'x_test.csv', ['a,b,c'])}",
                                         "--model", NO_MODEL], r"x_test\.csv:1: unexpected CSV header",
         r"expected id,lang,question"),
    Case("empty-file", lambda t, m: ["eval", "--data", f"jsonl:{_jsonl(t / 'empty.jsonl', [])}", "--model",
                                    NO_MODEL], r"empty\.jsonl.*no records: the file is empty", r"check the path"),
    Case("alias-null", lambda t, m: ["eval", "--data", f"jsonl:{_qa(t, [None])}", "--model", NO_MODEL],
         r"qa\.jsonl:1: answer alias at position 0 is null", r"expected a string"),
    Case("alias-nan", lambda t, m: ["eval", "--data", "jsonl:" + str(_jsonl(t / "n.jsonl", [NAN_ROW])),
                                   "--model", NO_MODEL], r"n\.jsonl:1: answer alias at position 0 is nan",
         r"expected a string"),
    Case("alias-object", lambda t, m: ["eval", "--data", f"triviaqa:{_qa(t, [{'a': 1}])}", "--model", NO_MODEL],
         r"qa\.jsonl:1: answer alias at position 0 is dict \{'a': 1\}", r"expected a string"),
    Case("alias-blank", lambda t, m: ["eval", "--data", f"jsonl:{_qa(t, ['  '])}", "--model", NO_MODEL],
         r"qa\.jsonl:1: blank answer alias", r"would match every output"),
    Case("malformed-json", lambda t, m: ["probe", "--data", f"jsonl:{_jsonl(t / 'm.jsonl', ['{oops'])}",
                                        "--model", NO_MODEL, "--out", str(t / "p")], r"m\.jsonl:1: malformed JSON",
         r"expected one JSON object per line"),
    Case("missing-answers", lambda t, m: ["eval", "--data", f"triviaqa:{_jsonl(t / 'q.jsonl', [{'id': 'a', 'question': 'q'}])}",
                                         "--model", NO_MODEL], r"q\.jsonl:1: missing field 'answers'",
         r"expected \{\"id\", \"question\", \"answers\""),
    Case("duplicate-id", lambda t, m: ["eval", "--data", f"jsonl:{_jsonl(t / 'd.jsonl', [{'id': 'a', 'question': 'q', 'answers': ['x']}] * 2)}",
                                      "--model", NO_MODEL], r"d\.jsonl:2: duplicate id 'a'", r"first seen at line 1"),
    Case("unknown-format", lambda t, m: ["eval", "--data", "csvv:x.csv", "--model", NO_MODEL],
         r"unknown dataset format 'csvv'", r"expected one of .*jsonl:"),
    Case("bad-option", lambda t, m: ["eval", "--data", f"jsonl:{_good_qa(t)}?colour=red", "--model", NO_MODEL],
         r"\['colour'\] not accepted", r"accepted: \["),
    Case("limit-negative", lambda t, m: ["eval", "--data", f"jsonl:{_good_qa(t)}", "--limit", "-3", "--model",
                                        NO_MODEL], r"limit -3", r"expected a non-negative number of items"),
    Case("limit-negative-probe", lambda t, m: ["probe", "--data", f"jsonl:{_good_qa(t)}", "--limit", "-3",
                                              "--model", NO_MODEL, "--out", str(t / "p")], r"limit -3",
         r"--limit 200"),
    # ---- knowledge tables and training sets
    Case("table-correctness-high", lambda t, m: ["build", "--method", "van", "--table", str(_table(t, correctness="high")),
                                                "--out", str(t / "b")], r"table\.jsonl:1: field 'correctness' is 'high'",
         r"expected a number in \[0, 1\]"),
    Case("table-correctness-range", lambda t, m: ["rehearse", "--table", str(_table(t, correctness=7)), "--model",
                                                 NO_MODEL, "--out", str(t / "r")], r"'correctness' is 7",
         r"expected a number in \[0, 1\]"),
    Case("table-certainty-string-grads", lambda t, m: ["grads", "--table", str(_table(t, certainty="sure")),
                                                      "--model", NO_MODEL, "--out", str(t / "g")],
         r"'certainty' is 'sure'", r"expected a number"),
    Case("table-missing", lambda t, m: ["build", "--method", "van", "--table", str(t / "none.jsonl"), "--out",
                                       str(t / "b")], r"none\.jsonl", r"not found"),
    Case("messages-strings", lambda t, m: [T, "--data", str(_train_rows(t, [{"messages": ["hi", "Paris"]}])),
                                          "--model", NO_MODEL, "--out", str(t / "o")],
         r"train\.jsonl:1: message 1 is a str", r"expected 'messages': \[\{\"role\""),
    Case("messages-not-list", lambda t, m: [T, "--data", str(_train_rows(t, [{"messages": "hi"}])), "--model",
                                           NO_MODEL, "--out", str(t / "o")], r"field 'messages' is str 'hi'",
         r"expected 'messages'"),
    Case("messages-no-assistant", lambda t, m: [T, "--data", str(_train_rows(t, [{"messages": [{"role": "user", "content": "q"}]}])),
                                               "--model", NO_MODEL, "--out", str(t / "o")],
         r"last message is not the assistant", r"expected 'messages'"),
    Case("weight-negative", lambda t, m: [T, "--data", str(_train_rows(t, [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "weight": -1}])),
                                         "--model", NO_MODEL, "--out", str(t / "o")], r"'weight' must be .*-1",
         r"finite number >= 0"),
    Case("train-data-dir", lambda t, m: [T, "--data", str(t), "--model", NO_MODEL, "--out", str(t / "o")],
         r"is a directory", r"expected a file"),
    # ---- output paths: checked before the model loads and before any answer is generated
    Case("eval-out-is-file", lambda t, m: ["eval", "--data", f"jsonl:{_good_qa(t)}", "--model", NO_MODEL, "--out",
                                          str(_file(t))], r"a_file: output path is a file", r"choose another --out"),
    Case("probe-out-under-file", lambda t, m: ["probe", "--data", f"jsonl:{_good_qa(t)}", "--model", NO_MODEL,
                                              "--out", str(_file(t) / "sub")], r"a_file/sub",
         r"choose another path"),
    Case("train-out-is-file", lambda t, m: [T, "--data", str(_train_rows(t, [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}])),
                                           "--model", NO_MODEL, "--out", str(_file(t))], r"a_file: output path is a file",
         r"choose another --out"),
    Case("eval-disk-full", lambda t, m: ["eval", "--data", f"jsonl:{_good_qa(t)}", "--model", str(m), "--dtype",
                                        "float32", "--max-new-tokens", "2", "--n-boot", "0", "--out", str(t / "e")],
         r"e/items\.jsonl: no space left on device", r"free some space", setup=_enospc),
    # ---- models
    Case("model-bad-spec", lambda t, m: ["eval", "--data", f"jsonl:{_good_qa(t)}", "--model", "a/b/c", "--out",
                                        str(t / "e")], r"model spec 'a/b/c'", r"hub id such as 'gpt2'"),
    Case("model-dir-without-config", lambda t, m: ["eval", "--data", f"jsonl:{_good_qa(t)}", "--model", str(t),
                                                  "--out", str(t / "e")], r"not a model directory",
         r"pass the directory that holds them"),
    Case("model-hub-not-cached", lambda t, m: ["eval", "--data", f"jsonl:{_good_qa(t)}", "--model",
                                              "rait-test-absent-model", "--out", str(t / "e")],
         r"'rait-test-absent-model' is a hub id that is not in the local Hugging Face cache", r"hf download"),
    # ---- run configs
    Case("run-name-escapes", lambda t, m: ["run", str(_run_yaml(t, m, name="../../x")), "--dry-run"],
         r"run name '\.\./\.\./x' leaves out_root", r"use a plain name"),
    Case("run-config-missing", lambda t, m: ["run", str(t / "nope.yaml")], r"nope\.yaml", r"(not found|no such file)"),
    Case("probe-shard", lambda t, m: ["probe", "--data", f"jsonl:{_good_qa(t)}", "--shard", "3/2", "--model",
                                     NO_MODEL], r"shard '3/2'", r"need 0 <= i < n"),
    # ---- the typed run config, did-you-mean, transformers flag names, undefined THS (issue 12)
    Case("run-set-misspelt-key", lambda t, m: ["run", str(_run_yaml(t, m)), "--dry-run", "--set", "probe.temprature=0.5"],
         r"temprature", r"temperature"),
    Case("run-yaml-misspelt-key", lambda t, m: ["run", str(_run_yaml(t, m, build={"n_totl": 5}, methods=["init_basic", "van"])),
                                               "--dry-run"], r"n_totl", r"n_total"),
    Case("run-epochs-not-number", lambda t, m: ["run", str(_run_yaml(t, m, train={"epochs": "two"}, methods=["init_basic", "van"])),
                                               "--dry-run"], r"'two'", r"expected a number"),
    Case("train-learning-rate-bad", lambda t, m: [T, "--data", "x.jsonl", "--out", str(t / "o"), "--learning_rate", "fast"],
         r"'fast'", r"expected a number"),
    # P_c0 = 0 used to crash the report (ZeroDivisionError); THS is defined there (THS = P_c), P_w0 = 0 is not
    Case("report-zero-pc0", lambda t, m: ["run", str(_zero_pc0_run(t, m))], r"\| init_refuse \|", r"", ok=True),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_invocation(case, tmp_path, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if case.setup:
        case.setup(monkeypatch, tmp_path)
    argv = case.argv(tmp_path, tiny_model_dir)
    rc = main(argv + ["-q"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if case.ok:
        assert rc == 0 and __import__("re").search(case.value, out + err), out + err
        return
    assert rc != 0
    msg = err.strip()
    assert msg.startswith(f"rait {argv[0]}: error: "), msg  # -q: nothing else on stderr
    assert "\n\n" not in msg and len(msg.splitlines()) <= 3, msg  # one paragraph
    assert __import__("re").search(case.value, msg), f"{case.value!r} not in {msg!r}"
    assert __import__("re").search(case.fix, msg), f"{case.fix!r} not in {msg!r}"
    if case.setup is _enospc:
        assert not [p for p in (tmp_path / "e").rglob("*tmp*")], "a temp file was left behind"


def test_table_is_large_enough():
    assert len(CASES) >= 30
    assert {"limit-negative", "report-zero-pc0"} <= {c.id for c in CASES}


def test_unexpected_os_error_is_one_line_and_v_shows_traceback(tmp_path, capsys, monkeypatch):
    import rait.stages.evaluate as ev

    def boom(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked"))

    monkeypatch.setattr(ev, "_main", boom)
    assert main(["eval", "--data", "x"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"rait eval: error: {tmp_path / 'locked'}: permission denied; check its permissions or "
                           "choose another path (-v shows the traceback)")
    with pytest.raises(PermissionError):
        main(["eval", "--data", "x", "-v"])
