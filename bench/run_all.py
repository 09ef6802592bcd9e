"""Run the speed benchmarks (probe, grads, train) one after another and write the speed section of
``docs/benchmarks.md`` from their JSON results, with the machine description and date. Every figure in the
table comes from the JSON files this run wrote.

Usage::

    python bench/run_all.py                 # all three, default sizes (~15-25 min on a 2-core CPU)
    python bench/run_all.py --only probe    # one of probe, grads, train
    python bench/run_all.py --render-only   # re-render docs from bench/results/*.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from _common import machine  # noqa: E402
from _doc import DOC, markers, write_section  # noqa: E402

BENCHES = {
    "probe": ["probe_speed.py", "--out", str(RESULTS / "probe_speed.json")],
    "grads": ["grads_speed.py", "--n", "64", "--dim", "512", "--out", str(RESULTS / "grads_speed.json")],
    "train": ["train_speed.py", "--json", str(RESULTS / "train_speed.json")],
}
START, END = markers("speed")


def model_params(r: dict) -> int:
    """Parameters of the benchmarked model: from the JSON, else counted on the default model (results written
    before the field existed)."""
    if r.get("model_params"):
        return int(r["model_params"])
    from rait.models import load_model

    return load_model("default", dtype="float32", device="cpu")[0].num_parameters()


def roofline(tokens_per_s: float, params: int, gflops: float | None) -> str:
    """Share of the measured bf16 matmul rate used by LoRA fwd + activation bwd (4 FLOP per parameter and token;
    frozen weights get no weight gradient)."""
    if not gflops:
        return ""
    return f"{tokens_per_s * 4 * params / 1e9 / gflops:.1%} of bf16 roofline (4·N FLOP/token)"


def measured_on() -> dict:
    """Machine and date of the measurements: machine.json of the last full run, else the probe result's own."""
    if (RESULTS / "machine.json").exists():
        return json.loads((RESULTS / "machine.json").read_text())
    probe = RESULTS / "probe_speed.json"
    if probe.exists() and "machine" in json.loads(probe.read_text()):
        m = json.loads(probe.read_text())["machine"]
        return {**m, "date": f"{m['date']} (date of the probe run; the others ran after it)"}
    return {**machine(), "date": "unknown (no machine.json)"}


def render() -> str:
    """Markdown of the speed results found in bench/results/."""
    lines = [START, "## Speed (measured by `python bench/run_all.py`)", ""]
    m = measured_on()
    lines += [f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, GPU: {m['gpu'] or 'none'}; "
              f"measured {m['date']}.", "",
              "| stage | naive baseline | rait | ratio | notes |", "| --- | --- | --- | --- | --- |"]
    p = RESULTS / "probe_speed.json"
    gflops = json.loads(p.read_text()).get("bf16_matmul_gflops") if p.exists() else None
    if p.exists():
        r = json.loads(p.read_text())
        lines.append(
            f"| probe sampling ({r['n_questions']} TriviaQA q × k={r['k']}, ≤{r['max_new_tokens']} tok) | "
            f"{r['naive']['answers_per_s']} answers/s (HF generate, fp32) | {r['rait_hf']['answers_per_s']} answers/s "
            f"({r['rait_hf']['dtype']}) | **{r['speedup_answers_per_s']}×** | {r['rait_hf']['tokens_per_s']} tok/s, "
            f"{r['rait_hf']['roofline_fraction']:.1%} of bf16 matmul roofline ({r['bf16_matmul_gflops']} GFLOP/s); "
            f"greedy identical fp32: {r['greedy_identical_fp32']}/{r['n_questions']} |")
    g = RESULTS / "grads_speed.json"
    if g.exists():
        r = json.loads(g.read_text())
        lines.append(
            f"| per-sample LoRA gradients ({r['n']} items, {r['lora_params']:,} LoRA dims → {r['dim']}) | "
            f"{r['loop_samples_per_s']:.2f} samples/s (LESS-style batch-1 loop + dense projection) | "
            f"{r['batched_samples_per_s']:.2f} samples/s (batched hooks, batch {r['batch_size']}) | "
            f"**{r['speedup']:.1f}×** | features agree: min cosine {r['min_cosine']:.4f}; "
            + roofline(r["batched_samples_per_s"] * r["tokens_per_row_mean"], model_params(r), gflops) + " |")
    t = RESULTS / "train_speed.json"
    if t.exists():
        rs = {x["variant"]: x for x in json.loads(t.read_text())}
        if "hf" in rs and "weighted" in rs:
            ov = (rs["plain"]["samples_per_s"] / rs["weighted"]["samples_per_s"] - 1) * 100 if "plain" in rs else None
            lines.append(
                f"| SFT step (LoRA, short QA rows) | {rs['hf']['samples_per_s']:.2f} samples/s "
                "(stock HF Trainer loss) | "
                f"{rs['weighted']['samples_per_s']:.2f} samples/s (weighted loss, trimmed logits) | "
                f"**{rs['weighted']['samples_per_s'] / rs['hf']['samples_per_s']:.2f}×** | "
                + (f"weighted vs plain overhead {ov:+.1f} %; " if ov is not None else "")
                + roofline(rs["weighted"]["tokens_per_s"], model_params(rs["weighted"]), gflops) + " |")
    lines += ["", END]
    return "\n".join(lines)


def write_doc() -> None:
    """Insert or replace the speed section of docs/benchmarks.md."""
    write_section("speed", render())
    print(f"wrote {DOC}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(BENCHES), action="append")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.render_only:
        (RESULTS / "machine.json").write_text(json.dumps(machine(), indent=2) + "\n")
        for name in args.only or list(BENCHES):
            cmd = [sys.executable, str(HERE / BENCHES[name][0]), *BENCHES[name][1:]]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)
    write_doc()
    return 0


if __name__ == "__main__":
    sys.exit(main())
