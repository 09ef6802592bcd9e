"""docs/extending.md stays true: its marked examples run, and `rait run --dry-run` plans what they need."""

import json
import re
from pathlib import Path

import pytest
import yaml

from rait.cli import main
from rait.core.config import ConfigError, load_yaml
from rait.run.pipeline import Plan, RunConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


pytestmark = pytest.mark.usefixtures("registries")

GRADS_METHOD = '''
from dataclasses import dataclass
from rait.core.config import option
from rait.methods import register
from rait.methods._common import CommonConfig, Decisions, finish, task_kind

@dataclass
class GConfig(CommonConfig):
    grads_dir: str = option("", "gradient store")

@register("toy_grads", "needs the gradient store", GConfig, needs=("table", "grads"))
def build(table, cfg):
    return finish(table, [], {"method": "toy_grads", "kind": task_kind(table)}, Decisions(table), 0)
'''


def example(name: str) -> str:
    """The code block that follows ``<!-- example: NAME -->`` in docs/extending.md."""
    m = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"example {name} not found in {DOC}"
    return m.group(1)


def run_config(tmp_path, plugin_code: str, methods: list[str]) -> Path:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(plugin_code)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"name": "x", "out_root": str(tmp_path / "runs"), "plugins": [str(plugin)],
                                   "methods": ["init_basic", *methods]}))
    return cfg


def planned(cfg: Path, capsys) -> list[str]:
    assert main(["run", str(cfg), "--dry-run"]) == 0
    return [line.split()[2].rstrip(":") for line in capsys.readouterr().out.splitlines() if line.startswith("[run ]")]


def test_method_needing_rehearsed_table_is_one_file(tmp_path, capsys):
    stages = planned(run_config(tmp_path, example("method_rehearsed"), ["toy_flow"]), capsys)
    assert stages[:3] == ["data", "eval:init_basic:0:id", "eval:init_basic:0:ood"] and "grads" not in stages
    order = [stages.index(s) for s in ("probe_m0", "rehearse", "probe_mr", "build:toy_flow")]
    assert order == sorted(order)  # each artifact right before its first user
    assert {"build:toy_flow", "train:toy_flow:0", "eval:toy_flow:0:id", "eval:toy_flow:0:ood"} <= set(stages)


def test_toy_method_builds_from_the_rehearsed_table(tmp_path):
    from rait.methods import load_plugin
    from rait.stages.build import run_build
    from tests.methods import OEQA, rehearsed_table, table, write_jsonl

    (tmp_path / "my_flow.py").write_text(example("method_rehearsed"))
    load_plugin(tmp_path / "my_flow.py")
    t = write_jsonl(tmp_path / "t.jsonl", table("oeqa"))
    r = write_jsonl(tmp_path / "r.jsonl", rehearsed_table("oeqa"))
    s = run_build("toy_flow", t, tmp_path / "out", rehearsed_path=r)
    flows = [c_r - c for _, c, _, c_r in OEQA]
    assert s["counts"] == {"van": sum(f > 0 for f in flows), "idk": sum(f < 0 for f in flows)}
    assert s["dropped"] == {"no_flow": sum(f == 0 for f in flows)}


def test_method_needing_gradient_store(tmp_path, capsys):
    stages = planned(run_config(tmp_path, GRADS_METHOD, ["toy_grads"]), capsys)
    assert [s for s in stages if not s.startswith("eval:init")][:4] == ["data", "probe_m0", "rehearse", "grads"]
    assert "probe_mr" not in stages
    plan = Plan(load_yaml(RunConfig, tmp_path / "run.yaml"))
    assert plan.stages["build:toy_grads"].cfg["config"].grads_dir == str(plan.root / "grads")
    assert plan.stages["build:toy_grads"].deps == ["probe_m0", "grads"]


def test_training_free_method_gets_eval_stages_only(tmp_path, capsys):
    stages = planned(run_config(tmp_path, example("method_training_free"), ["keep_all"]), capsys)
    assert "eval:keep_all:0:id" in stages and not any(s.startswith(("build:", "train:")) for s in stages)
    assert "probe_m0" in stages  # it needs the table


def test_method_config_without_the_artifact_field_is_an_error(tmp_path):
    code = GRADS_METHOD.replace('    grads_dir: str = option("", "gradient store")\n', "    pass\n")
    with pytest.raises(ConfigError, match="grads_dir"):
        load_yaml(RunConfig, run_config(tmp_path, code, ["toy_grads"]))


def _exec(name: str, tmp_path) -> None:
    from rait.methods import load_plugin

    (tmp_path / f"{name}.py").write_text(example(name))
    load_plugin(tmp_path / f"{name}.py")


def test_backend_example(tmp_path, tiny_model_dir):
    from rait.generation import get_backend
    from rait.stages.evaluate import EvalConfig, evaluate

    _exec("backend", tmp_path)
    be = get_backend("constant", str(tiny_model_dir))
    assert be.generate(["q"], 2, None)[0][1].text == "I don't know"
    data = tmp_path / "t.jsonl"
    data.write_text('{"id": "a", "question": "Who?", "answers": ["Ann"]}\n')
    m = evaluate(EvalConfig(model=str(tiny_model_dir), data=f"jsonl:{data}", out=str(tmp_path / "e"),
                            backend="constant", n_boot=0), progress=False)
    assert m["P_r"]["value"] == 100.0
    with pytest.raises(ConfigError, match="did you mean 'constant'"):
        EvalConfig(backend="constnt")


def test_data_format_example(tmp_path):
    from rait.data import load

    _exec("data_format", tmp_path)
    csv = tmp_path / "quiz.csv"
    csv.write_text("question,answer\nCapital of France?,Paris\nCapital of Peru?,Lima\n")
    items = load(f"qa_csv:{csv}")
    assert [(i.id, i.answers) for i in items] == [("quiz-2", ["Paris"]), ("quiz-3", ["Lima"])]
    from rait.errors import DataError

    with pytest.raises(DataError, match="did you mean 'qa_csv'"):
        load(f"qa_cvs:{csv}")


def test_artifact_kind_example(tmp_path, capsys):
    _exec("artifact_kind", tmp_path)
    method = GRADS_METHOD.replace('grads_dir: str = option("", "gradient store")',
                                  'lengths_path: str = option("", "question lengths")')
    method = method.replace('needs=("table", "grads")', 'needs=("table", "question_lengths")')
    stages = planned(run_config(tmp_path, method, ["toy_grads"]), capsys)
    assert [s for s in stages if not s.startswith("eval:init")][:3] == ["data", "probe_m0", "lengths"]
    assert "rehearse" not in stages
    plan = Plan(load_yaml(RunConfig, tmp_path / "run.yaml"))
    assert plan.stages["build:toy_grads"].cfg["config"].lengths_path == str(plan.root / "lengths" / "lengths.json")
    # the stage itself: write a table where probe_m0 would, run the stage function
    from tests.methods import table, write_jsonl

    (plan.root / "probe" / "m0").mkdir(parents=True)
    write_jsonl(plan.root / "probe" / "m0" / "table.jsonl", table("oeqa"))
    plan.stages["lengths"].fn()
    lengths = json.loads((plan.root / "lengths" / "lengths.json").read_text())
    assert lengths["o00"] == len("Question o00?")
