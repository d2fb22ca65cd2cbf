"""PyTorch's BERT forward (transformers BertModel, random weights, f32, eval, no grad) on one
thread, for the shapes of core/benches/encoder.rs; and the report that joins our criterion
timings (the module on Flex, the frozen forward at f32 and, where the CPU has AMX or AVX-512
BF16, bf16) into the ratio table target/bench-encoder/table.md.

Usage (scripts/bench-encoder.sh runs them, a round of ours before each round of PyTorch's):
    python encoder_peer.py --round N TARGET_DIR      PyTorch's times, target/bench-encoder/peer-rN.json
    python encoder_peer.py --report TARGET_DIR COMMIT
The frozen f32 ratio (the goal's) is the median of the rounds' ratios, with their range; the
module's and bf16's ratios (round 1 only) are against PyTorch's median time.
"""
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

SHAPES = [("minilm_l6_h384", 6, 384, 12, 1536), ("bert_base_l12_h768", 12, 768, 12, 3072)]
SEQS = [128, 288]
BATCHES = [1, 8]


def median_time(fn, min_seconds=3.0, min_reps=10):
    fn()
    times = []
    started = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - started < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def cpu_model():
    """The line scripts/cpu-name.sh gives every bench table: model name, family and model, flags."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
    script = os.path.join(root, "scripts", "cpu-name.sh")
    return subprocess.run([script], capture_output=True, text=True, check=True).stdout.strip()


def ours_seconds(target, group, seq, batch):
    """Our criterion median for one shape, or None where the group did not run (no bf16 kernel)."""
    est = os.path.join(target, "criterion", group, f"s{seq}-b{batch}", "new", "estimates.json")
    if not os.path.exists(est):
        return None
    with open(est) as f:
        return json.load(f)["median"]["point_estimate"] / 1e9


def torch_times():
    """PyTorch's median forward time per shape, keyed "name/sNNN-bN", and its sgemm rate."""
    torch.set_num_threads(1)
    n = 2048
    x = torch.randn(n, n)
    times = {"sgemm_flops_1t": 2 * n**3 / median_time(lambda: x @ x, min_seconds=1.0, min_reps=3)}
    for name, layers, hidden, heads, inter in SHAPES:
        config = transformers.BertConfig(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=inter, hidden_act="gelu", attn_implementation="eager",
        )
        model = transformers.BertModel(config, add_pooling_layer=False).eval()
        for seq in SEQS:
            for batch in BATCHES:
                ids = torch.randint(0, 30522, (batch, seq))
                mask = torch.ones(batch, seq, dtype=torch.long)
                with torch.no_grad():
                    times[f"{name}/s{seq}-b{batch}"] = median_time(lambda: model(input_ids=ids, attention_mask=mask))
                print(f"PyTorch {name} s{seq} b{batch}: {times[f'{name}/s{seq}-b{batch}'] * 1e3:.1f} ms", flush=True)
    return times


def median(values):
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def report(target, commit):
    rounds = []
    while os.path.exists(os.path.join(target, "bench-encoder", f"peer-r{len(rounds) + 1}.json")):
        with open(os.path.join(target, "bench-encoder", f"peer-r{len(rounds) + 1}.json")) as f:
            rounds.append(json.load(f))
    peak = median([r["sgemm_flops_1t"] for r in rounds])
    rows = [
        f"{cpu_model()}; commit {commit}; {time.strftime('%Y-%m-%d')}; one thread each (RAYON_NUM_THREADS=1 for burn's "
        f"Flex, torch.set_num_threads(1)); PyTorch {torch.__version__}, transformers "
        f"{transformers.__version__}; this CPU's one-thread sgemm (torch, 2048^3): {peak / 1e9:.1f} GFLOP/s; "
        f"load average {open('/proc/loadavg').read().split()[0]}. {len(rounds)} rounds of the frozen f32 forward "
        "and PyTorch's, alternating: their ratio is the median of the rounds' (range); PyTorch's time is its median.",
        "",
        "| shape | seq | batch | PyTorch f32 | module (Flex) / PyTorch | frozen f32 / PyTorch "
        "(goal <= 1.0) | frozen bf16 / PyTorch | PyTorch GFLOP/s | PyTorch / sgemm floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, layers, hidden, heads, inter in SHAPES:
        for seq in SEQS:
            for batch in BATCHES:
                key = f"{name}/s{seq}-b{batch}"
                theirs = median([r[key] for r in rounds])
                flex = ours_seconds(target, f"encoder-flex-{name}", seq, batch)
                bf16 = ours_seconds(target, f"encoder-frozen-bf16-{name}", seq, batch)
                ratio = lambda ours: "n/a" if ours is None else f"{ours / theirs:.2f} ({ours * 1e3:.1f} ms)"
                # Round 1's frozen f32 is the full bench's group; later rounds carry their number.
                frozen = [ours_seconds(target, f"encoder-frozen-f32-{name}" + ("" if i == 0 else f"-r{i + 1}"), seq, batch)
                          for i in range(len(rounds))]
                ratios = [o / r[key] for o, r in zip(frozen, rounds) if o is not None]
                frozen_cell = (
                    f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}; {median(frozen) * 1e3:.1f} ms)"
                    if len(ratios) == len(rounds) else "n/a"
                )
                # Matmul FLOPs: 4 h^2 + 2 h i per token per layer (x2 for multiply-add), plus
                # attention's 2 seq h per token per layer (x2).
                flops = 2 * batch * seq * layers * (4 * hidden * hidden + 2 * hidden * inter + 2 * seq * hidden)
                rows.append(
                    f"| {name} | {seq} | {batch} | {theirs * 1e3:.1f} ms | {ratio(flex)} | {frozen_cell} | "
                    f"{ratio(bf16)} | {flops / theirs / 1e9:.1f} | {flops / theirs / peak:.2f} |"
                )
    os.makedirs(os.path.join(target, "bench-encoder"), exist_ok=True)
    with open(os.path.join(target, "bench-encoder", "table.md"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print("\n".join(rows))


def main():
    if sys.argv[1] == "--round":
        n, target = int(sys.argv[2]), sys.argv[3]
        os.makedirs(os.path.join(target, "bench-encoder"), exist_ok=True)
        with open(os.path.join(target, "bench-encoder", f"peer-r{n}.json"), "w") as f:
            json.dump(torch_times(), f, indent=2)
    elif sys.argv[1] == "--report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
