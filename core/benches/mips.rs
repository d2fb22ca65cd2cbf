//! Maximum inner-product search on the CPU: exact f32, int8 and HNSW, on the data that
//! `core/benches/peers/make_data.py` writes (synthetic unit vectors, N = 100k and 1M, and
//! all-MiniLM-L6-v2 embeddings of the demo corpus), d = 128, k = 8.
//!
//! Everything, with faiss and hnswlib in the same run and the ratio table:
//!     scripts/bench-mips.sh
//! This bench alone (data already in target/bench-data), the exact and int8 scans:
//!     cargo bench --workspace --bench mips
//! and one round of the rows timed in rounds, the HNSW sweep and the exact one-query scans
//! (the script alternates rounds of ours and the peers'):
//!     REALM_BENCH_ROUND=1 cargo bench --workspace --bench mips
//! Timings go to target/criterion; recall to target/bench-mips/ours.json, and a round's
//! HNSW recall and build rates and bench ids to target/bench-mips/ours-round-r<ROUND>.json.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use realm_core::index::exact::{ExactIndex, MipsIndex};
use realm_core::index::hnsw::{HnswIndex, HnswMetric, HnswParams, recall_at_k};
use realm_core::index::int8::Int8Index;
use realm_core::index::rerank::Reranked;
use serde_json::{Value, json};

const K: usize = 8;
/// Candidates per wanted hit for the re-scored int8 rows (faiss IndexRefineFlat's k_factor).
const RERANK_FACTOR: usize = 2;
const DATASETS: &[&str] = &["minilm_demo", "synthetic_100k", "synthetic_1m"];
/// HNSW is built and swept only where a build takes seconds (see BENCHMARKS.md).
const HNSW_DATASETS: &[&str] = &["minilm_demo"];
/// Queries per second at matched recall are interpolated between sweep points, so the sweep
/// is denser near recall .95-.99 (ef 96 and 192), as the peer's is (mips_peer.py).
const EF_SWEEP: &[usize] = &[8, 16, 32, 64, 96, 128, 192, 256];

struct Data {
    dim: usize,
    docs: Vec<f32>,
    queries: Vec<f32>,
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/bench-mips.sh (it writes the bench data first)",
            path.display()
        )
    });
    bytemuck::pod_collect_to_vec(&bytes)
}

fn load(dir: &Path, name: &str) -> Data {
    let meta: Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{name}.json"))).unwrap_or_else(|e| {
            panic!("{name}.json: {e}; run scripts/bench-mips.sh (it writes the bench data first)")
        }),
    )
    .expect("bench data metadata");
    Data {
        dim: meta["dim"].as_u64().expect("dim") as usize,
        docs: read_f32(&dir.join(format!("{name}.docs.f32"))),
        queries: read_f32(&dir.join(format!("{name}.queries.f32"))),
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("REALM_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bench-data"));
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let out = root.join("target/bench-mips");
    std::fs::create_dir_all(&out).expect("target/bench-mips");
    let mut report = serde_json::Map::new();

    // A round: the rows whose two sides, measured minutes apart, moved by more than their
    // margins from run to run (the HNSW sweep, and one query scanning the rows from memory).
    if let Some(round) = std::env::var_os("REALM_BENCH_ROUND") {
        let round = round.to_string_lossy().into_owned();
        for &name in DATASETS {
            let data = load(&dir, name);
            let exact = ExactIndex::new(data.docs.clone(), data.dim).expect("finite data");
            let group_name = format!("exact_f32-{name}-r{round}");
            let mut group = c.benchmark_group(&group_name);
            let query = &data.queries[..data.dim];
            group.bench_function("t1-b1", |bench| {
                bench.iter(|| exact.search(query, K).expect("search"))
            });
            group.finish();
            let mut entry = json!({ "exact_f32_t1_b1": format!("{group_name}/t1-b1") });
            if HNSW_DATASETS.contains(&name) {
                let truth = exact.search(&data.queries, K).expect("exact search");
                entry["hnsw"] = hnsw_sweep(&mut c, name, &round, &data, &truth);
            }
            report.insert(name.to_string(), entry);
        }
        write_json(&out.join(format!("ours-round-r{round}.json")), report);
        c.final_summary();
        return;
    }

    for &name in DATASETS {
        let data = load(&dir, name);
        let dim = data.dim;
        let exact = ExactIndex::new(data.docs.clone(), dim).expect("finite data");
        let truth = exact.search(&data.queries, K).expect("exact search");

        let mut group = c.benchmark_group(format!("exact_f32-{name}"));
        for (threads, batches) in [(1, &[1usize, 8, 64, 512][..]), (2, &[1, 64][..])] {
            let mut index = ExactIndex::new(data.docs.clone(), dim).expect("finite data");
            index.threads = threads;
            for &b in batches {
                let queries = &data.queries[..b * dim];
                group.bench_function(format!("t{threads}-b{b}"), |bench| {
                    bench.iter(|| index.search(queries, K).expect("search"))
                });
            }
        }
        group.finish();

        let mut group = c.benchmark_group(format!("int8-{name}"));
        let mut int8 = Int8Index::from_f32(&data.docs, dim).expect("finite data");
        let int8_recall = recall_at_k(&truth, &int8.search(&data.queries, K).expect("search"));
        for (threads, batches) in [(1, &[1usize, 64][..]), (2, &[1, 64][..])] {
            int8.threads = threads;
            for &b in batches {
                let queries = &data.queries[..b * dim];
                group.bench_function(format!("t{threads}-b{b}"), |bench| {
                    bench.iter(|| int8.search(queries, K).expect("search"))
                });
            }
        }
        group.finish();

        // int8 candidates (2k per query) re-scored against the f32 rows.
        let mut group = c.benchmark_group(format!("int8_rerank-{name}"));
        let mut int8 = Int8Index::from_f32(&data.docs, dim).expect("finite data");
        int8.threads = 1;
        let reranked =
            Reranked::new(int8, data.docs.as_slice(), RERANK_FACTOR).expect("matching rows");
        let rerank_recall =
            recall_at_k(&truth, &reranked.search(&data.queries, K).expect("search"));
        for &b in &[1usize, 64] {
            let queries = &data.queries[..b * dim];
            group.bench_function(format!("t1-b{b}"), |bench| {
                bench.iter(|| reranked.search(queries, K).expect("search"))
            });
        }
        group.finish();

        let entry = json!({
            "int8_recall_at_8": int8_recall,
            "int8_rerank_recall_at_8": rerank_recall,
            "rerank_factor": RERANK_FACTOR,
        });
        report.insert(name.to_string(), entry);
    }

    write_json(&out.join("ours.json"), report);
    c.final_summary();
}

fn write_json(path: &Path, report: serde_json::Map<String, Value>) {
    let text = serde_json::to_string_pretty(&Value::Object(report)).expect("json");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Builds one graph per metric, then times 64 queries in one call at each ef of the sweep,
/// on one thread and on two, and records recall@8 over all queries. The peer is timed the
/// same way (one `knn_query` of 64 queries): 64 calls from Python would add its per-call
/// cost (1.5-2.3 us measured, 15% of a query at recall .90) to hnswlib's side only.
fn hnsw_sweep(
    c: &mut Criterion,
    name: &str,
    round: &str,
    data: &Data,
    truth: &[Vec<realm_core::index::reference::Hit>],
) -> Value {
    let dim = data.dim;
    let rows = data.docs.len() / dim;
    let mut points = Vec::new();
    let group_name = format!("hnsw-{name}-r{round}");
    let mut group = c.benchmark_group(&group_name);
    // A round is one of several alternating with the peer's, so each is shorter than the
    // scans' measurements.
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    for metric in [HnswMetric::NegatedDot, HnswMetric::L2Augmented] {
        let params = HnswParams {
            metric,
            ef_construction: 100,
            ef_search: EF_SWEEP[0],
            seed: 7,
        };
        let started = Instant::now();
        let mut index = HnswIndex::build(data.docs.clone(), dim, params).expect("build");
        let build_s = started.elapsed().as_secs_f64();
        let tag = match metric {
            HnswMetric::NegatedDot => "negdot",
            HnswMetric::L2Augmented => "l2aug",
        };
        for &ef in EF_SWEEP {
            let hits = index.search_with_ef(&data.queries, K, ef).expect("search");
            let recall = recall_at_k(truth, &hits);
            let queries = &data.queries[..64 * dim];
            index.threads = 1;
            group.bench_function(format!("{tag}-ef{ef}-b64"), |bench| {
                bench.iter(|| index.search_with_ef(queries, K, ef).expect("search"))
            });
            // The secondary row: the same call shared by two threads.
            index.threads = 2;
            group.bench_function(format!("{tag}-ef{ef}-b64-t2"), |bench| {
                bench.iter(|| index.search_with_ef(queries, K, ef).expect("search"))
            });
            eprintln!("hnsw {name} {tag} ef={ef}: recall@8 {recall:.4}, build {build_s:.1} s");
            points.push(json!({
                "metric": tag, "ef_search": ef, "recall_at_8": recall,
                "build_seconds": build_s, "build_rows_per_second": rows as f64 / build_s,
                "build_threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
                "bench_id": format!("{group_name}/{tag}-ef{ef}-b64"),
                "bench_id_two_threads": format!("{group_name}/{tag}-ef{ef}-b64-t2"),
            }));
        }
    }
    group.finish();
    Value::Array(points)
}
