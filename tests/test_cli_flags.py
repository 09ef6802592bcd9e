"""Every stage subcommand takes one flag per field of its config dataclass (generated the same way), rait train
also the transformers names, and a misspelt flag is named with the closest one."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from rait.cli import build_parser, main
from rait.core.config import config_from_args

STAGES = {"probe": ("rait.stages.probe", "ProbeConfig"), "eval": ("rait.stages.evaluate", "EvalConfig"),
          "train": ("rait.stages.train", "TrainConfig"), "rehearse": ("rait.stages.rehearse", "RehearseConfig"),
          "grads": ("rait.gradients.cli", "GradsConfig")}


def _cls(name: str) -> type:
    import importlib

    mod, cls = STAGES[name]
    return getattr(importlib.import_module(mod), cls)


def _fields(cls: type, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _fields(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def _sub(name: str):
    p = build_parser(only=name)
    sub = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction")
    return p, sub.choices[name]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_one_flag_per_config_field(name):
    _, sp = _sub(name)
    flags = set(sp._option_string_actions)
    assert {"--config", "--set"} <= flags
    missing = [f for f in _fields(_cls(name)) if f"--{f}" not in flags or f"--{f.replace('_', '-')}" not in flags]
    assert not missing, f"rait {name} lacks flags for {missing}"


@pytest.mark.parametrize("argv", [["--learning_rate", "1e-4"], ["--lr", "1e-4"]])
def test_train_accepts_transformers_names(argv):
    p, _ = _sub("train")
    args = p.parse_args(["train", *argv, "--num_train_epochs", "2", "--per_device_train_batch_size", "4",
                         "--output_dir", "o", "--data", "d.jsonl"])
    cfg = config_from_args(_cls("train"), args)
    assert (cfg.lr, cfg.epochs, cfg.batch_size, cfg.out) == (1e-4, 2.0, 4, "o")


def test_nested_and_bool_flags():
    p, _ = _sub("rehearse")
    cfg = config_from_args(_cls("rehearse"), p.parse_args(["rehearse", "--train.lr", "0.01", "--save-optimizer"]))
    assert cfg.train.lr == 0.01 and cfg.save_optimizer is True and cfg.train.warmup_ratio == 0.0


def test_misspelt_flag_names_the_closest(capsys):
    assert main(["probe", "--temprature", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "unknown option --temprature" in err and "--temperature" in err


def test_build_takes_the_common_method_fields(tmp_path, capsys):
    from tests.methods import table, write_jsonl

    t = write_jsonl(tmp_path / "t.jsonl", table("oeqa"))
    assert main(["build", "--method", "grait", "--table", str(t), "--out", str(tmp_path / "o"), "--n-total", "6",
                 "--set", "grads_dir=" + str(tmp_path / "none")]) == 2  # no store: a clear error, not "None rows"
    assert "gradient index not found" in capsys.readouterr().err
    assert main(["build", "--method", "cor_rait", "--table", str(t), "--out", str(tmp_path / "o"),
                 "--n-total", "5"]) == 0
    assert "wrote 5 rows (van=4, idk=1)" in capsys.readouterr().out


def test_grait_build_reports_rows_and_explains(tmp_path, capsys):
    from tests.methods import table, write_jsonl
    from tests.methods.golden_cases import grads_store

    rows = table("oeqa")
    t = write_jsonl(tmp_path / "t.jsonl", rows)
    store = grads_store(rows, tmp_path / "grads")
    base = ["build", "--method", "grait", "--table", str(t), "--n-total", "10", "--set", f"grads_dir={store}"]
    assert main([*base, "--out", str(tmp_path / "o")]) == 0
    assert "wrote 10 rows (van=8, idk=2)" in capsys.readouterr().out
    assert main([*base, "--explain", "o08"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("o08: ") and "method grait (oeqa" in out and "None" not in out.splitlines()[1]
