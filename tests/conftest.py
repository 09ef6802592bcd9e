import json
import os

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import torch

# Tiny test models run faster single-threaded (and CI shares 2 cores between processes).
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Path to a saved tiny Llama + ChatML tokenizer (built in code, offline)."""
    from tests.tiny import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture
def registries(monkeypatch):
    """What a test registers (methods, backends, formats, artifact kinds) is gone after it: they are process-wide."""
    from rait.data.formats import FORMATS
    from rait.generation import BACKENDS
    from rait.methods import REGISTRY
    from rait.run.providers import KINDS

    for reg in (REGISTRY, BACKENDS, FORMATS, KINDS):
        reg.names()  # load the built-in entries first
        monkeypatch.setattr(reg, "_items", dict(reg._items))


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; skips the test when it is absent."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture()
def tiny_run(tmp_path, tiny_model_dir):
    """A `rait run` YAML for the tiny model: 24-item pool, 6-item tests, six methods, one seed."""
    # Alias "e" is inside almost any output of the random tiny model ("known"); "qqzzxx" never is ("unknown").
    pool = [{"id": f"p{i}", "question": f"What is item {i}?", "answers": ["e" if i % 2 else "qqzzxx"]}
            for i in range(24)]
    test = [{"id": f"t{i}", "question": f"Tell me thing {i}?", "answers": ["e" if i % 2 else "qqzzxx"]}
            for i in range(6)]
    _write(tmp_path / "pool.jsonl", pool)
    _write(tmp_path / "id.jsonl", test)
    _write(tmp_path / "ood.jsonl", test)
    cfg = {
        "name": "tiny", "out_root": str(tmp_path / "runs"), "model": str(tiny_model_dir), "dtype": "float32",
        "methods": ["init_basic", "init_refuse", "van", "cor_rait", "craft", "grait"], "seeds": [0],
        "data": {"pool": f"jsonl:{tmp_path / 'pool.jsonl'}", "id": f"jsonl:{tmp_path / 'id.jsonl'}",
                 "ood": f"jsonl:{tmp_path / 'ood.jsonl'}", "n_pool": 24, "n_id": 6, "n_ood": 6},
        "probe": {"k": 3, "max_new_tokens": 6, "fewshot": 0, "certainty": "answer_entropy", "chunk_size": 8},
        "rehearse": {"n": 4, "min_items": 1, "fallback": "top_k",
                     "train": {"epochs": 1, "batch_size": 4, "save_steps": 0, "precision": "fp32"}},
        "build": {"n_total": 10},
        "train": {"epochs": 1, "batch_size": 4, "save_steps": 0, "precision": "fp32"},
        "grads": {"dim": 64, "batch_size": 4, "dtype": "float32"},
        "eval": {"max_new_tokens": 6, "n_boot": 50},
        "report": False,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
