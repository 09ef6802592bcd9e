"""Gradient store: shard/merge equality, resume after SIGKILL, config checks, chunked similarities."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rait.errors import RaitError
from rait.gradients import store
from rait.gradients.similarity import gram_to_file, l2_normalize

ROOT = Path(__file__).resolve().parents[2]


def make_table(n=14):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        cor = float(rng.random())
        if i % 2:
            rows.append({"id": f"m{i}", "question": f"What is {i}+{i}?", "choices": [str(i), str(2 * i), "x", "y"],
                         "gold": "B", "topic": "math", "kind": "mcqa", "correctness": cor})
        else:
            rows.append({"id": f"o{i}", "question": f"Who is person {i}?", "answers": [f"Name {i}"],
                         "kind": "oeqa", "correctness": cor})
    return rows


class Fake:
    """Deterministic stand-in featurizer: features depend only on the conversation text."""

    dim = 16

    def features(self, convs):
        out = []
        for c in convs:
            rng = np.random.default_rng(abs(hash(json.dumps(c))) % 2**32)
            out.append(rng.normal(size=self.dim))
        return np.array(out, dtype=np.float32)


def test_label_sets():
    t = [{"id": "a", "question": "q?", "answers": ["A1"], "correctness": 0.5},
         {"id": "b", "question": "2+2?", "choices": ["1", "4"], "gold": "B", "correctness": 0.4}]
    van, idk = store.label_conversations(t)
    assert [c[-1]["content"] for c in van] == ["A1", "I don't know."]
    assert [c[-1]["content"] for c in idk] == ["I don't know", "I don't know."]
    assert van[0][0] == {"role": "system", "content": ""}


def test_shards_merge_equal_single_run(tmp_path):
    table = make_table()
    cfg = {"model": "fake"}
    store.compute(table, tmp_path / "one", Fake, cfg, shard_size=4)
    a = store.merge(tmp_path / "one")
    for i in (1, 0, 2):
        store.compute(table, tmp_path / "three", Fake, cfg, shard=(i, 3), shard_size=4)
    b = store.merge(tmp_path / "three", van_van=True)
    assert a["ids"] == b["ids"] == [r["id"] for r in table]
    for f in ("van.npy", "idk.npy", "idk_idk.npy", "idk_van.npy"):
        assert np.array_equal(np.load(tmp_path / "one" / f), np.load(tmp_path / "three" / f)), f
    van = np.load(tmp_path / "one" / "van.npy")
    np.testing.assert_allclose(np.linalg.norm(van, axis=1), 1, atol=1e-5)
    assert np.load(tmp_path / "three" / "van_van.npy").shape == (14, 14)


def test_merge_refuses_missing_chunks_and_mixed_settings(tmp_path):
    table = make_table()
    store.compute(table, tmp_path, Fake, {"model": "fake"}, shard=(0, 2), shard_size=4)
    with pytest.raises(RaitError, match="not computed yet"):
        store.merge(tmp_path)
    with pytest.raises(RaitError, match="other settings"):
        store.compute(table, tmp_path, Fake, {"model": "other"}, shard=(1, 2), shard_size=4)


def test_gram_chunks(tmp_path):
    a = l2_normalize(np.random.default_rng(0).normal(size=(9, 5)))
    b = l2_normalize(np.random.default_rng(1).normal(size=(9, 5)))
    gram_to_file(a, b, tmp_path / "ab.npy", chunk=4)
    m = np.load(tmp_path / "ab.npy")
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, a @ b.T, atol=1e-6)


def _cli(table, model_dir, out, extra=()):
    return [sys.executable, "-m", "rait.cli", "grads", "--table", str(table), "--model", str(model_dir),
            "--out", str(out), "--dim", "32", "--shard-size", "2", "--batch-size", "4", "--dtype", "float32",
            *extra]


def test_resume_after_sigkill(tmp_path, tiny_model_dir):
    table = make_table(10)
    tp = tmp_path / "table.jsonl"
    tp.write_text("".join(json.dumps(r) + "\n" for r in table))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(tp, tiny_model_dir, out), env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "shards" / "00000.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in (out / "shards").glob("*.json"))
    assert done and not (out / "index.json").exists(), done  # killed mid-run
    r = subprocess.run(_cli(tp, tiny_model_dir, out), env=env, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"{5 - len(done)} chunk(s) computed" in r.stdout
    ref = tmp_path / "ref"
    r = subprocess.run(_cli(tp, tiny_model_dir, ref, ["--shard", "1/2"]), env=env, cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0 and "pending overall" in r.stdout, r.stderr
    r = subprocess.run(_cli(tp, tiny_model_dir, ref, ["--shard", "0/2"]), env=env, cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    for f in ("van.npy", "idk.npy", "idk_idk.npy", "idk_van.npy"):
        np.testing.assert_allclose(np.load(out / f), np.load(ref / f), atol=1e-6, err_msg=f)
    assert json.loads((out / "index.json").read_text())["ids"] == [r["id"] for r in table]
    assert not list(out.rglob("*.tmp*"))
