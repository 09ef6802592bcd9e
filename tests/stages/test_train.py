"""``rait train`` end to end on the tiny model: outputs, GA invariance, resume after a kill, bf16, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rait.core.config import ConfigError
from rait.errors import DataError
from rait.stages.checkpoints import last_checkpoint
from rait.stages.train import TrainConfig, train

QA = [(f"What is {i} plus {i}?", str(2 * i)) for i in range(12)] + [
    (f"Who was born in year {i}?", "I don't know") for i in range(12)]


def write_rows(path: Path, weights=None) -> Path:
    with open(path, "w") as f:
        for i, (q, a) in enumerate(QA):
            w = 1.0 if weights is None else weights[i % len(weights)]
            f.write(json.dumps({"messages": [{"role": "system", "content": ""}, {"role": "user", "content": q},
                                             {"role": "assistant", "content": a}],
                                "id": str(i), "label": "idk" if "know" in a else "van", "weight": w}) + "\n")
    return path


def cfg_for(tmp_path, tiny_model_dir, name, **kw):
    base = dict(data=str(write_rows(tmp_path / "train.jsonl", [1.0, 2.0, 0.5])), model=str(tiny_model_dir),
                out=str(tmp_path / name), epochs=2, batch_size=4, grad_accum=2, lora_dropout=0.0,
                precision="fp32", logging_steps=100, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def weights(d) -> dict[str, torch.Tensor]:
    return load_file(str(Path(d) / "model.safetensors"))


def assert_same(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=atol, msg=k)


def test_train_outputs(tmp_path, tiny_model_dir):
    cfg = cfg_for(tmp_path, tiny_model_dir, "o", save="both", save_optimizer=True)
    final = train(cfg)
    assert final == Path(cfg.out)
    out = Path(cfg.out)
    for f in ("model.safetensors", "config.json", "tokenizer.json", "manifest.json", "adapter/adapter_config.json"):
        assert (out / f).exists(), f
    assert not (out / "checkpoints").exists()
    man = json.loads((out / "manifest.json").read_text())
    assert man["inputs"]["data"]["rows"] == 24 and len(man["inputs"]["data"]["sha256"]) == 64
    assert man["outputs"]["steps"] == 6 and man["outputs"]["effective_batch"] == 8 and man["config"]["lora_r"] == 8
    assert "torch" in man["versions"]
    opt = load_file(str(out / "optimizer.safetensors"))
    assert any(k.endswith("lora_A.default.weight.exp_avg") for k in opt)
    assert all((v >= 0).all() for k, v in opt.items() if k.endswith("exp_avg_sq"))
    base = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    tuned = weights(out)
    assert any(not torch.allclose(base[k], tuned[k]) for k in base if k in tuned)


def test_adapter_only_and_full(tmp_path, tiny_model_dir):
    final = train(cfg_for(tmp_path, tiny_model_dir, "a", save="adapter", max_steps=1))
    assert final.name == "adapter" and (final / "adapter_model.safetensors").exists()
    full = train(cfg_for(tmp_path, tiny_model_dir, "f", method="full", max_steps=2, lr=1e-4))
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(full) is not None


def test_ga_invariance_end_to_end(tmp_path, tiny_model_dir):
    a = train(cfg_for(tmp_path, tiny_model_dir, "ga1", batch_size=8, grad_accum=1))
    b = train(cfg_for(tmp_path, tiny_model_dir, "ga2", batch_size=4, grad_accum=2))
    c = train(cfg_for(tmp_path, tiny_model_dir, "w1", batch_size=8, grad_accum=1, use_weights=False))
    assert_same(weights(a), weights(b))
    with pytest.raises(AssertionError):
        assert_same(weights(a), weights(c))


class Kill(Exception):
    pass


def test_resume_after_kill(tmp_path, tiny_model_dir):
    from transformers import TrainerCallback

    class KillAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 5:  # after checkpoint-4; step 5 is lost
                raise Kill()

    ref = train(cfg_for(tmp_path, tiny_model_dir, "ref", save_steps=2))
    cfg = cfg_for(tmp_path, tiny_model_dir, "killed", save_steps=2)
    with pytest.raises(Kill):
        train(cfg, callbacks=[KillAt()])
    assert last_checkpoint(Path(cfg.out) / "checkpoints").name == "checkpoint-4"
    (Path(cfg.out) / "checkpoints" / "checkpoint-6").mkdir()  # an incomplete checkpoint is skipped
    import dataclasses

    with pytest.raises(ConfigError, match="resume=never"):  # other settings: no silent resume
        train(dataclasses.replace(cfg, lr=2e-3))
    final = train(cfg)
    man = json.loads((Path(cfg.out) / "manifest.json").read_text())
    assert man["outputs"]["resumed_from"].endswith("checkpoint-4") and man["outputs"]["steps"] == 6
    assert_same(weights(ref), weights(final))
    # the resumed run reports the loss over all 6 steps, as the uninterrupted one does
    ref_man = json.loads((Path(ref).parent / "manifest.json").read_text()) if Path(ref).name == "adapter" else \
        json.loads((Path(ref) / "manifest.json").read_text())
    assert man["outputs"]["train_loss"] == pytest.approx(ref_man["outputs"]["train_loss"], abs=1e-4)
    assert not list(Path(cfg.out).rglob(".*.tmp*"))  # atomic writes leave no temp files


def test_bf16_autocast_trains(tmp_path, tiny_model_dir):
    cfg = cfg_for(tmp_path, tiny_model_dir, "bf", precision="bf16", epochs=6, lr=3e-3, logging_steps=1)
    train(cfg)
    man = json.loads((Path(cfg.out) / "manifest.json").read_text())
    assert man["outputs"]["precision"] == "bf16" and man["outputs"]["train_loss"] == man["outputs"]["train_loss"]
    ckpt = weights(cfg.out)
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in ckpt.values())


def test_loss_decreases(tmp_path, tiny_model_dir):
    from transformers import TrainerCallback

    losses = []

    class Rec(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    train(cfg_for(tmp_path, tiny_model_dir, "dec", epochs=8, logging_steps=1, lr=3e-3, method="full",
                  use_weights=False), callbacks=[Rec()])
    assert sum(losses[-3:]) < sum(losses[:3]) * 0.8


def test_bad_inputs(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{"oops": 1}\n')
    with pytest.raises(DataError, match="bad.jsonl:1: field 'messages' is list"):
        train(cfg_for(tmp_path, tiny_model_dir, "x", data=str(bad)))
    bad.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
                   '{"oops": 1}\n')
    with pytest.raises(DataError, match="bad.jsonl:2: missing field 'messages'"):
        train(cfg_for(tmp_path, tiny_model_dir, "x", data=str(bad)))
    bad.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], '
                   '"weight": -1}\n')
    with pytest.raises(DataError, match="weight"):
        train(cfg_for(tmp_path, tiny_model_dir, "x", data=str(bad)))
    with pytest.raises(ConfigError):
        TrainConfig(method="qlora")


def test_cli_parses(tmp_path, tiny_model_dir, monkeypatch):
    import rait.stages.train as rt
    from rait.cli import main

    seen = {}
    monkeypatch.setattr(rt, "train", lambda cfg: seen.setdefault("cfg", cfg) and Path(cfg.out))
    y = tmp_path / "c.yaml"
    y.write_text("lora_r: 4\nepochs: 1\n")
    assert main(["train", "--data", "d.jsonl", "--out", str(tmp_path / "o"), "--config", str(y),
                 "--set", "lr=0.001", "--model", str(tiny_model_dir)]) == 0
    cfg = seen["cfg"]
    assert (cfg.lora_r, cfg.epochs, cfg.lr, cfg.data) == (4, 1.0, 0.001, "d.jsonl")
    assert main(["train", "--data", "d", "--out", "o", "--set", "nope=1"]) == 2


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_acceptance_default_model_learns_to_refuse(tmp_path):
    """LoRA on 300 questions answered "I don't know" -> the default model refuses >= 80 % of them."""
    from rait.core.models import load_model
    from rait.core.prompts import build_messages
    from rait.data.schema import QAItem

    try:
        from rait.data import load

        items = [i for i in load("builtin:facts") if i.kind == "oeqa"][:300]
    except Exception:  # built-in data not available: synthetic questions
        items = []
    if len(items) < 300:
        items = [QAItem(id=f"s{i}", question=f"What is the registration number of ship {i * 7919 % 100000}?",
                        answers=["x"]) for i in range(300)]
    data = tmp_path / "idk.jsonl"
    with open(data, "w") as f:
        for it in items:
            f.write(json.dumps({"messages": build_messages(it, "refuse", system_prompt="", answer="I don't know"),
                                "id": it.id, "label": "idk", "weight": 1.0}) + "\n")
    final = train(TrainConfig(data=str(data), model="default", out=str(tmp_path / "m"), save_steps=0,
                                epochs=1, logging_steps=5))  # 19 steps of 16; ~5 min on 2 free cores
    model, tok = load_model(str(final), dtype="auto")
    refused = 0
    for k in range(0, len(items), 32):
        chunk = items[k:k + 32]
        texts = [tok.apply_chat_template(build_messages(it, "refuse", system_prompt=""), tokenize=False,
                                         add_generation_prompt=True) for it in chunk]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=8, do_sample=False)
        outs = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        refused += sum("don't know" in o.lower() for o in outs)
    rate = refused / len(items)
    print(f"refusal rate on the 300 training questions: {rate:.3f}")
    assert rate >= 0.8


def test_progress_bar_counts_steps_from_the_resumed_step(tmp_path, tiny_model_dir):
    from rait.core.progress import TrainBar

    seen = []

    class Spy(TrainBar):
        def on_train_end(self, args, state, control, **kw):
            seen.append((self.bar.total, self.bar.n, dict(self.bar.postfix and [("p", self.bar.postfix)] or [])))
            super().on_train_end(args, state, control, **kw)

    from transformers import TrainerCallback

    spy = type("SpyCb", (Spy, TrainerCallback), {})("train", 2)
    cfg = cfg_for(tmp_path, tiny_model_dir, "bar")
    train(cfg, callbacks=[spy])
    total, n, post = seen[0]
    assert total == n == 6 and "loss=" in post["p"]
    assert len(spy.losses) == 2  # mean of the last logging_steps losses


def test_eval_on_saved_adapter_dir(tmp_path, tiny_model_dir, capsys):
    """`rait eval --model OUT/adapter`: the base comes from the adapter (the spec the user gave), merged on load."""
    from rait.cli import main
    from rait.core.models import BASE_FILE, is_adapter_dir, load_model

    cfg = cfg_for(tmp_path, tiny_model_dir, "both", save="both", epochs=1)
    train(cfg)
    adapter = Path(cfg.out) / "adapter"
    assert is_adapter_dir(adapter)
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)
    assert json.loads((adapter / BASE_FILE).read_text())["spec"] == str(tiny_model_dir)
    merged, tok = load_model(cfg.out, dtype="float32", device="cpu")
    via_adapter, _ = load_model(str(adapter), dtype="float32", device="cpu")
    ids = tok("What is the capital of France?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, via_adapter(ids).logits, atol=1e-4)
    data = tmp_path / "qa.jsonl"
    rows = [{"id": f"q{i}", "question": f"Q{i}?", "answers": ["e"]} for i in range(3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc = main(["eval", "--model", str(adapter), "--data", f"jsonl:{data}", "--dtype", "float32", "--out",
               str(tmp_path / "ev"), "--max-new-tokens", "3", "--n-boot", "0", "-q"])
    assert rc == 0 and json.loads((tmp_path / "ev" / "metrics.json").read_text())["n"] == 3


def test_bf16_fast_kernels_during_training_and_fp32_merge_after(tmp_path, tiny_model_dir):
    """Inside bf16 training the frozen base weights are bf16 and packed batches use the sample-by-sample kernel
    (padded short rows: eager attention); the saved merged model is the fp32 base plus the adapter (the bf16 copies
    are gone before the merge)."""
    from transformers import TrainerCallback

    from rait.core.models import load_model

    seen = []

    class Spy(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            base = model.get_base_model()
            seen.append((base.model.layers[0].mlp.up_proj.base_layer.weight.dtype, base.config._attn_implementation))

    cfg = cfg_for(tmp_path, tiny_model_dir, "bfk", precision="bf16", epochs=1, lr=3e-3, save="both")
    train(cfg, callbacks=[Spy()])
    assert seen and all(s == (torch.bfloat16, "rait_packed") for s in seen)
    seen.clear()
    train(cfg_for(tmp_path, tiny_model_dir, "bfk_padded", precision="bf16", epochs=1, padding_free=False),
          callbacks=[Spy()])
    assert seen and all(s == (torch.bfloat16, "eager") for s in seen)
    merged_again, _ = load_model(str(Path(cfg.out) / "adapter"), dtype="float32")
    assert_same(weights(cfg.out), {k: v for k, v in merged_again.state_dict().items() if k in weights(cfg.out)},
                atol=1e-7)
