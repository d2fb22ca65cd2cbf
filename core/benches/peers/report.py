"""Joins our criterion timings (target/criterion), our recall/build numbers (ours.json) and the
peers' numbers (peer.json), and the rounds of the rows timed in rounds (ours-round-r*.json,
peer-round-r*.json: the HNSW sweep and the exact one-query scans), into the ratio table for
BENCHMARKS.md, and plots HNSW recall against queries per second.

Usage: python report.py TARGET_DIR CONDITIONS_JSON   (scripts/bench-mips.sh runs it)
"""
import json
import math
import os
import sys

K = 8


def ours_seconds(target, group, bench):
    path = os.path.join(target, "criterion", group, bench, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / 1e9


def fmt_time(s):
    return f"{s * 1e3:.3f} ms" if s < 10 else f"{s:.1f} s"


def qps_at(points, target):
    """Queries/s at `target` recall, interpolated between the sweep's points in
    (recall, log qps); None where the sweep never reaches it."""
    pts = sorted(points)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1 and r1 > r0:
            w = (target - r0) / (r1 - r0)
            return math.exp(math.log(q0) + w * (math.log(q1) - math.log(q0)))
    for r, q in pts:
        if r >= target:
            return q  # the lowest setting already reaches it
    return None


def median(values):
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def bench_rounds(target):
    """The rounds (bench-mips.sh alternates ours and the peers': the HNSW sweep and the exact
    one-query scans), as [(ours, peer)] of the two sides' JSON, in round order."""
    rounds = []
    r = 1
    while os.path.exists(os.path.join(target, "bench-mips", f"ours-round-r{r}.json")):
        with open(os.path.join(target, "bench-mips", f"ours-round-r{r}.json")) as f:
            ours = json.load(f)
        with open(os.path.join(target, "bench-mips", f"peer-round-r{r}.json")) as f:
            peer = json.load(f)
        rounds.append((ours, peer))
        r += 1
    return rounds


def hnswlib_version(rounds):
    return rounds[0][1]["versions"]["hnswlib"] if rounds else "(not run)"


def sweep_points(target, ours_round, peer_round, name, two_threads):
    """One round's curves: ({metric: [(recall, q/s)]} for ours, [(recall, q/s)] for hnswlib),
    with the ef and build rate of each of our points in `info` keyed by (metric, ef)."""
    id_key = "bench_id_two_threads" if two_threads else "bench_id"
    peer_key = "seconds_per_64_two_threads" if two_threads else "seconds_per_64"
    mine = {}
    for pt in ours_round[name]["hnsw"]:
        group, bench = pt[id_key].split("/")
        mine.setdefault(pt["metric"], []).append((pt["recall_at_8"], 64 / ours_seconds(target, group, bench), pt))
    theirs = [(pt["recall_at_8"], 64 / pt[peer_key], pt) for pt in peer_round[name]["hnswlib"]["sweep"]]
    return mine, theirs


def hnsw_tables(target, rounds):
    """The HNSW rows: each sweep point's median q/s over the rounds, then at recall .90 / .95
    / .99 the median over rounds of each round's ratio (ours / hnswlib, both interpolated in
    that round's sweep), with the rounds' range beside it."""
    lines = [
        "",
        f"HNSW: {len(rounds)} rounds, each our sweep then hnswlib's; 64 queries in one call per "
        "timing on both sides. Sweep rows: median q/s over the rounds. Matched-recall rows: the "
        "median of the rounds' ratios, and their range.",
        "",
        "| data | recall@8 | ours q/s (metric) | hnswlib q/s | ours / hnswlib (rounds' range) | goal |",
        "|---|---|---|---|---|---|",
    ]
    plots = []
    if not rounds:
        return lines, plots
    for name in [n for n in rounds[0][0] if "hnsw" in rounds[0][0][n]]:
        per_round = [sweep_points(target, o, p, name, False) for o, p in rounds]
        per_round_t2 = [sweep_points(target, o, p, name, True) for o, p in rounds]
        # The sweep: median q/s of each point over the rounds (recall from the first round).
        best = {}
        for metric, pts in per_round[0][0].items():
            for i, (r, _, pt) in enumerate(pts):
                q = median([rd[0][metric][i][1] for rd in per_round])
                best.setdefault(metric, []).append((r, q))
                lines.append(
                    f"| {name} sweep | {r:.3f} | {q:,.0f} ({metric}, ef {pt['ef_search']}, build "
                    f"{pt['build_rows_per_second']:,.0f} rows/s on {pt['build_threads']} threads) | | | |"
                )
        theirs = []
        for i, (r, _, _) in enumerate(per_round[0][1]):
            q = median([rd[1][i][1] for rd in per_round])
            theirs.append((r, q))
            lines.append(f"| {name} sweep | {r:.3f} | | {q:,.0f} | | |")
        lines += matched_recall_rows(name, per_round, ">= 1.0")
        lines += matched_recall_rows(f"{name}, 2 threads, B = 64", per_round_t2, ">= 1.0")
        builds = [p[name]["hnswlib"]["build_rows_per_second"] for _, p in rounds]
        lines.append(f"| {name} build | | | {median(builds):,.0f} rows/s on 2 threads (median) | | |")
        plots.append((name, best, theirs))
    return lines, plots


def matched_recall_rows(label, per_round, goal):
    """Rows comparing queries/s at recall 0.90 / 0.95 / 0.99, one per metric of ours: median
    q/s of each side over the rounds, and the median and range of the rounds' ratios."""
    rows = []
    for target_recall in (0.90, 0.95, 0.99):
        theirs = [qps_at([(r, q) for r, q, _ in rd[1]], target_recall) for rd in per_round]
        for metric in per_round[0][0]:
            mine = [qps_at([(r, q) for r, q, _ in rd[0][metric]], target_recall) for rd in per_round]
            if None in mine or None in theirs:
                rows.append(f"| {label} | {target_recall:.2f} | not reached ({metric}) | | | {goal} |")
                continue
            ratios = [m / t for m, t in zip(mine, theirs)]
            rows.append(
                f"| {label} | {target_recall:.2f} | {median(mine):,.0f} ({metric}) | {median(theirs):,.0f} | "
                f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | {goal} |"
            )
    return rows


def main():
    target, conditions_path = sys.argv[1], sys.argv[2]
    with open(os.path.join(target, "bench-mips", "ours.json")) as f:
        ours = json.load(f)
    with open(os.path.join(target, "bench-mips", "peer.json")) as f:
        peer = json.load(f)
    with open(conditions_path) as f:
        cond = json.load(f)
    rounds = bench_rounds(target)
    fl = peer["floor"]
    bw, peak = fl["read_bandwidth_bytes_per_s"], fl["sgemm_flops_1t"]
    lines = [
        f"Commit {cond['commit']}, {cond['date']}, {cond['cpu']}; load average before/after: "
        f"{cond['load_before']} / {cond['load_after']}. faiss {peer['versions']['faiss']}, "
        f"hnswlib {hnswlib_version(rounds)}. Floor measured in the same run: read bandwidth "
        f"{bw / 1e9:.1f} GB/s (numpy sum over 1 GiB, one thread), sgemm {peak / 1e9:.1f} GFLOP/s "
        f"(one thread). d = 128, k = 8; times are medians per call (B queries per call).",
        "",
        "| data | N | index | threads | B | ours | peer | peer name | ours / peer time | goal | floor | floor / ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, o in ours.items():
        p = peer[name]
        n, d = p["n"], p["dim"]
        for key, peer_s in p["faiss_flat_ip_seconds"].items():
            threads, b = key.split("-")
            bq = int(b[1:])
            s = ours_seconds(target, f"exact_f32-{name}", key)
            ratio = f"{s / peer_s:.2f}"
            if key == "t1-b1" and rounds:
                # Timed in rounds: medians of each side, and of the rounds' ratios (range).
                mine = [ours_seconds(target, *o_r[name]["exact_f32_t1_b1"].split("/")) for o_r, _ in rounds]
                theirs = [p_r[name]["faiss_flat_ip_t1_b1_seconds"] for _, p_r in rounds]
                ratios = [m / t for m, t in zip(mine, theirs)]
                s, peer_s = median(mine), median(theirs)
                ratio = f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}, {len(rounds)} rounds)"
            floor = max(n * d * 4 / bw, 2 * n * d * bq / peak)
            goal = "<= 1.2" if threads == "t1" else ""
            lines.append(
                f"| {name} | {n:,} | exact f32 | {threads[1:]} | {bq} | {fmt_time(s)} | {fmt_time(peer_s)} | "
                f"faiss IndexFlatIP | {ratio} | {goal} | {fmt_time(floor)} | {floor / s:.2f} |"
            )
        for key, peer_s in p["faiss_sq8_seconds"].items():
            threads, b = key.split("-")
            bq = int(b[1:])
            s = ours_seconds(target, f"int8-{name}", key)
            floor = max(n * d * 1 / bw, 2 * n * d * bq / peak)
            goal = {("t1", 1): "<= 0.67", ("t1", 64): "<= 0.10"}.get((threads, bq), "")
            lines.append(
                f"| {name} | {n:,} | int8 (recall@8 ours {o['int8_recall_at_8']:.3f}, faiss "
                f"{p['faiss_sq8_recall_at_8']:.3f}) | {threads[1:]} | {bq} | {fmt_time(s)} | {fmt_time(peer_s)} | "
                f"faiss SQ8 | {s / peer_s:.2f} | {goal} | {fmt_time(floor)} | {floor / s:.2f} |"
            )
        for key, peer_s in p["faiss_sq8_refine_seconds"].items():
            threads, b = key.split("-")
            bq = int(b[1:])
            s = ours_seconds(target, f"int8_rerank-{name}", key)
            floor = max(n * d * 1 / bw, 2 * n * d * bq / peak)
            label = (
                f"int8 + f32 re-score x{o['rerank_factor']} (recall@8 ours "
                f"{o['int8_rerank_recall_at_8']:.3f}, faiss {p['faiss_sq8_refine_recall_at_8']:.3f})"
            )
            # The goal's own peer (plain SQ8), then the matched-recall one (SQ8 re-scored).
            goal = {1: "<= 0.67", 64: "<= 0.10"}[bq]
            sq8_s = p["faiss_sq8_seconds"][key]
            for peer_name, ps, g in (("faiss SQ8", sq8_s, goal), ("faiss SQ8 + IndexRefineFlat", peer_s, "")):
                lines.append(
                    f"| {name} | {n:,} | {label} | {threads[1:]} | {bq} | {fmt_time(s)} | {fmt_time(ps)} | "
                    f"{peer_name} | {s / ps:.2f} | {g} | {fmt_time(floor)} | {floor / s:.2f} |"
                )
    hnsw_lines, plots = hnsw_tables(target, rounds)
    table = "\n".join(lines + hnsw_lines) + "\n"
    with open(os.path.join(target, "bench-mips", "table.md"), "w") as f:
        f.write(table)
    print(table)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        for name, best, theirs in plots:
            fig, ax = plt.subplots(figsize=(6, 4))
            for metric, pts in best.items():
                pts = sorted(pts)
                ax.plot([r for r, _ in pts], [q for _, q in pts], "o-", label=f"ours ({metric})")
            theirs = sorted(theirs)
            ax.plot([r for r, _ in theirs], [q for _, q in theirs], "s--", label="hnswlib")
            ax.set_xlabel("recall@8 against exact search")
            ax.set_ylabel("queries per second (one thread; median of the rounds)")
            ax.set_yscale("log")
            ax.set_title(f"HNSW on {name} (d = 128)")
            ax.grid(True, alpha=0.3)
            ax.legend()
            fig.tight_layout()
            fig.savefig(os.path.join(target, "bench-mips", f"hnsw-{name}.png"), dpi=110)
    except ImportError:
        print("matplotlib is missing: no plot", file=sys.stderr)


if __name__ == "__main__":
    main()
