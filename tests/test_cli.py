"""The ``rait`` command: subcommand table, --help of every installed stage, --version, error exit codes."""

from __future__ import annotations

import importlib
import importlib.util

import pytest

import rait
from rait.cli import COMMANDS, build_parser, main
from rait.errors import RaitError


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def test_command_table_shape():
    assert {"eval", "probe", "rehearse", "grads", "build", "train", "ask"} <= set(COMMANDS)
    for name, (mod, helptext) in COMMANDS.items():
        assert mod.startswith("rait."), name
        assert helptext and "\n" not in helptext, name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_subcommand_help(name, capsys):
    mod = COMMANDS[name][0]
    if not _installed(mod):
        pytest.skip(f"{mod} is not part of this build")
    module = importlib.import_module(mod)
    assert callable(getattr(module, "add_parser", None)), f"{mod} lacks add_parser(subparsers)"
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: rait {name}"), out[:200]


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rait")
    for name, (_, helptext) in COMMANDS.items():
        assert name in out
        assert helptext.split(":")[0][:20] in out


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rait") and "eval" in out and "probe" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"rait {rait.__version__}"


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["frobnicate"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_only_the_used_subcommand_is_imported():
    p = build_parser(only=None)
    sub = next(a for a in p._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    # listed-only subcommands have no func: selecting one without importing its module does nothing
    assert getattr(p.parse_args(["eval"]), "func", None) is None


def test_rait_error_becomes_exit_2(tmp_path, tiny_model_dir, capsys):
    missing = tmp_path / "nonexistent.jsonl"
    rc = main(["eval", "--model", str(tiny_model_dir), "--dtype", "float32", "--data", f"jsonl:{missing}",
               "--out", str(tmp_path / "out"), "--n-boot", "0"])
    assert rc == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rait eval: error: ") and str(missing) in last and "file not found" in last
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_data_fails_before_loading_the_model(tmp_path, monkeypatch, capsys):
    import rait.generation

    def no_model(*a, **k):
        raise AssertionError("model loaded before the data was validated")

    monkeypatch.setattr(rait.generation, "get_backend", no_model)
    rc = main(["eval", "--data", f"jsonl:{tmp_path / 'nonexistent.jsonl'}", "--out", str(tmp_path / "out")])
    assert rc == 2 and "file not found" in capsys.readouterr().err


def test_config_error_becomes_exit_2(tmp_path, capsys):
    rc = main(["probe", "--k", "0", "--out", str(tmp_path / "p")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("rait probe: error: ") and "k must be >= 1" in err
    assert not (tmp_path / "p").exists()


def test_config_error_message(tmp_path, capsys):
    rc = main(["eval", "--prompt", "bogus", "--out", str(tmp_path / "e")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("rait eval: error: ") and "bogus" in err and "expected one of" in err


def test_command_return_code_and_interrupt(monkeypatch, capsys):
    import rait.stages.evaluate as ev

    monkeypatch.setattr(ev, "_main", lambda args: 7)
    assert main(["eval"]) == 7

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "_main", interrupted)
    assert main(["eval"]) == 130
    assert "interrupted" in capsys.readouterr().err

    def boom(args):
        raise RaitError("custom failure")

    monkeypatch.setattr(ev, "_main", boom)
    assert main(["eval"]) == 2
    assert capsys.readouterr().err.strip() == "rait eval: error: custom failure"
