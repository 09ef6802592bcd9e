"""rait.core.config: option/from_dict coercion, validation, YAML loading, overrides and argparse integration."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Optional

import pytest

from rait.core.config import (
    ConfigError,
    add_config_arguments,
    apply_overrides,
    check_choices,
    config_from_args,
    from_dict,
    help_lines,
    load_yaml,
    option,
    to_dict,
)
from rait.errors import RaitError


@dataclass
class Inner:
    lr: float = option(1e-4, "learning rate")
    rank: int = option(8, "LoRA rank")


@dataclass
class Cfg:
    batch_size: int = option(16, "prompts per batch")
    temperature: float = option(1.0, "sampling temperature")
    greedy: bool = option(False, "greedy decoding")
    stop: list[str] = option(["\n"], "stop strings")
    ids: list[int] = option([], "some integers")
    limit: int | None = option(None, "first N items")
    old_style: Optional[float] = option(None, "typing.Optional field")
    prompt: str = option("basic", "prompt style", choices=("basic", "refuse"))
    extra: dict = option({}, "free mapping")
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        check_choices(self)


def test_option_defaults_and_mutable_defaults_are_copied():
    a, b = Cfg(), Cfg()
    assert a.stop == ["\n"] and a.stop is not b.stop
    a.ids.append(1)
    assert b.ids == []
    assert a.inner == Inner() and a.inner is not b.inner


@pytest.mark.parametrize("raw, want", [(8, 8), ("8", 8), (8.0, 8), ("8.0", 8), ("1e1", 10)])
def test_int_coercion(raw, want):
    cfg = from_dict(Cfg, {"batch_size": raw})
    assert cfg.batch_size == want and type(cfg.batch_size) is int


@pytest.mark.parametrize("raw", ["abc", 8.5, True, [1], None])
def test_int_rejects(raw):
    with pytest.raises(ConfigError, match="Cfg.batch_size"):
        from_dict(Cfg, {"batch_size": raw})


def test_float_coercion():
    assert from_dict(Cfg, {"temperature": "0.5"}).temperature == 0.5
    assert from_dict(Cfg, {"temperature": 2}).temperature == 2.0
    assert type(from_dict(Cfg, {"temperature": 2}).temperature) is float
    with pytest.raises(ConfigError, match="expected a number"):
        from_dict(Cfg, {"temperature": "hot"})


@pytest.mark.parametrize("raw, want", [(True, True), ("true", True), ("Yes", True), ("1", True), ("on", True),
                                       (False, False), ("false", False), ("no", False), ("0", False), ("OFF", False)])
def test_bool_coercion(raw, want):
    assert from_dict(Cfg, {"greedy": raw}).greedy is want


@pytest.mark.parametrize("raw", ["maybe", 2, None])
def test_bool_rejects(raw):
    with pytest.raises(ConfigError, match="true/false"):
        from_dict(Cfg, {"greedy": raw})


def test_list_coercion():
    assert from_dict(Cfg, {"stop": ["a", "b"]}).stop == ["a", "b"]
    assert from_dict(Cfg, {"stop": "a, b,,c"}).stop == ["a", "b", "c"]  # comma-separated string
    assert from_dict(Cfg, {"ids": "[1, 2, 3]"}).ids == [1, 2, 3]  # YAML flow list
    assert from_dict(Cfg, {"ids": ["1", 2.0]}).ids == [1, 2]  # element type coerced
    with pytest.raises(ConfigError, match=r"Cfg.ids\[1\]"):
        from_dict(Cfg, {"ids": [1, "x"]})
    with pytest.raises(ConfigError, match="expected a list"):
        from_dict(Cfg, {"stop": 3})


@pytest.mark.parametrize("name", ["limit", "old_style"])
def test_optional_coercion(name):
    assert getattr(from_dict(Cfg, {name: None}), name) is None
    assert getattr(from_dict(Cfg, {name: "none"}), name) is None
    assert getattr(from_dict(Cfg, {name: "null"}), name) is None
    assert getattr(from_dict(Cfg, {name: "7"}), name) == 7
    with pytest.raises(ConfigError, match=f"Cfg.{name}: expected a number or null, got 'lots'"):
        from_dict(Cfg, {name: "lots"})


def test_dict_and_string_fields():
    assert from_dict(Cfg, {"extra": "{a: 1}"}).extra == {"a": 1}
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_dict(Cfg, {"extra": [1]})
    assert from_dict(Cfg, {"prompt": "refuse"}).prompt == "refuse"
    with pytest.raises(ConfigError, match="expected a string"):
        from_dict(Cfg, {"prompt": ["basic"]})


def test_nested_dataclass():
    cfg = from_dict(Cfg, {"inner": {"lr": "1e-3", "rank": "4"}})
    assert cfg.inner == Inner(lr=1e-3, rank=4)
    assert from_dict(Cfg, {"inner": Inner(rank=2)}).inner.rank == 2
    with pytest.raises(ConfigError, match="expected a mapping for section Inner"):
        from_dict(Cfg, {"inner": 3})
    with pytest.raises(ConfigError, match=r"Cfg\.inner: unknown key 'alpha'"):
        from_dict(Cfg, {"inner": {"alpha": 1}})
    assert to_dict(cfg)["inner"] == {"lr": 1e-3, "rank": 4}


def test_unknown_key_names_where_and_known_keys():
    with pytest.raises(ConfigError) as e:
        from_dict(Cfg, {"batchsize": 3}, where="conf.yaml")
    msg = str(e.value)
    assert msg.startswith("conf.yaml: unknown key 'batchsize' (did you mean 'batch_size'?)")
    assert isinstance(e.value, RaitError) and isinstance(e.value, ValueError)


def test_choices_validation():
    with pytest.raises(ConfigError, match=r"prompt='refuse2'.*expected one of \['basic', 'refuse'\]"):
        from_dict(Cfg, {"prompt": "refuse2"}, where="x.yaml")
    with pytest.raises(ConfigError, match="^x.yaml: "):
        from_dict(Cfg, {"prompt": "refuse2"}, where="x.yaml")
    with pytest.raises(ConfigError):
        Cfg(prompt="nope")


def test_load_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("batch_size: 4\nstop: ['.', '!']\ninner:\n  rank: 2\n")
    cfg = load_yaml(Cfg, p)
    assert (cfg.batch_size, cfg.stop, cfg.inner.rank, cfg.inner.lr) == (4, [".", "!"], 2, 1e-4)
    cfg = load_yaml(Cfg, p, overrides=["inner.rank=16", "batch_size=2"])
    assert (cfg.batch_size, cfg.inner.rank) == (2, 16)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml(Cfg, empty) == Cfg()


def test_load_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("batch_size: 4\nstop: [a, b\ngreedy: true\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml line \d+: invalid YAML") as e:
        load_yaml(Cfg, bad)
    line = int(str(e.value).split(" line ")[1].split(":")[0])
    assert 2 <= line <= 4
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(Cfg, tmp_path / "missing.yaml")
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_yaml(Cfg, top)
    unk = tmp_path / "unk.yaml"
    unk.write_text("batch_size: 1\nbogus: 2\n")
    with pytest.raises(ConfigError, match=f"{unk}: unknown key"):
        load_yaml(Cfg, unk)


def test_load_yaml_line_number_is_exact(tmp_path):
    bad = tmp_path / "tab.yaml"
    bad.write_text("batch_size: 4\ngreedy: true\n\tprompt: basic\n")  # a tab cannot start a YAML token
    with pytest.raises(ConfigError, match=r"line 3: invalid YAML"):
        load_yaml(Cfg, bad)


def test_apply_overrides():
    cfg = Cfg()
    new = apply_overrides(cfg, ["batch_size=8", "inner.lr=0.5", "--greedy=true", "stop=[a, b]", "limit=null",
                                "prompt=refuse"])
    assert (new.batch_size, new.inner.lr, new.greedy, new.stop, new.limit, new.prompt) == (
        8, 0.5, True, ["a", "b"], None, "refuse")
    assert cfg.batch_size == 16  # the original is untouched
    assert apply_overrides(cfg, ["stop="]).stop == []
    assert apply_overrides(cfg, ["extra={k: v}"]).extra == {"k": "v"}


@pytest.mark.parametrize("ov, msg", [
    ("batch_size", "expected key=value"),
    ("nope=1", "unknown key 'nope'"),
    ("inner.nope=1", "unknown key 'inner.nope'"),
    ("batch_size.x=1", "'batch_size' is not a config section"),
    ("prompt=other", "expected one of"),
    ("batch_size=abc", "expected an integer"),
])
def test_apply_overrides_errors(ov, msg):
    with pytest.raises(ConfigError, match=msg.replace(".", r"\.").replace("'", "'")):
        apply_overrides(Cfg(), [ov])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_config_arguments(p, Cfg)
    return p


def test_add_config_arguments_flags():
    p = _parser()
    text = p.format_help()
    assert "--config" in text and "--set" in text and "--batch-size" in text and "--batch_size" in text
    assert "{basic,refuse}" in text and "(default: 16)" in text
    assert "--inner.rank" in text  # nested sections: --section.field
    ns = p.parse_args([])
    assert not any(k.startswith("cfg__") for k in vars(ns))  # defaults are suppressed
    assert config_from_args(Cfg, ns) == Cfg()
    ns = p.parse_args(["--batch_size", "3", "--stop", "a,b", "--limit", "5"])
    cfg = config_from_args(Cfg, ns)
    assert (cfg.batch_size, cfg.stop, cfg.limit) == (3, ["a", "b"], 5)


def test_config_from_args_precedence(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("batch_size: 4\ntemperature: 0.5\ngreedy: true\ninner:\n  rank: 2\n")
    p = _parser()
    cfg = config_from_args(Cfg, p.parse_args(["--config", str(y)]))
    assert (cfg.batch_size, cfg.temperature, cfg.greedy, cfg.inner.rank) == (4, 0.5, True, 2)
    # flags beat YAML; --set beats both
    ns = p.parse_args(["--config", str(y), "--batch-size", "8", "--temperature", "0.7",
                       "--set", "batch_size=12", "inner.rank=32"])
    cfg = config_from_args(Cfg, ns)
    assert (cfg.batch_size, cfg.temperature, cfg.greedy, cfg.inner.rank) == (12, 0.7, True, 32)


def test_config_from_args_errors(tmp_path):
    p = _parser()
    with pytest.raises(ConfigError, match="config file not found"):
        config_from_args(Cfg, p.parse_args(["--config", str(tmp_path / "no.yaml")]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: 1\nb: [\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml line \d+: invalid YAML"):
        config_from_args(Cfg, p.parse_args(["--config", str(bad)]))
    unk = tmp_path / "unk.yaml"
    unk.write_text("bogus: 1\n")
    with pytest.raises(ConfigError, match=f"{unk}: unknown key"):
        config_from_args(Cfg, p.parse_args(["--config", str(unk)]))
    with pytest.raises(ConfigError, match="expected an integer"):
        config_from_args(Cfg, p.parse_args(["--batch-size", "many"]))


def test_help_lines():
    lines = help_lines(Cfg)
    assert "batch_size (default 16): prompts per batch" in lines
    assert "prompt (default 'basic') one of ['basic', 'refuse']: prompt style" in lines
    assert "stop (default ['\\n']): stop strings" in lines
    assert "inner.lr (default 0.0001): learning rate" in lines
    assert "inner.rank (default 8): LoRA rank" in lines
    assert not any(line.startswith("inner (") for line in lines)
    assert len(lines) == len(to_dict(Cfg())) - 1 + 2
