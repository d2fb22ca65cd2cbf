//! The BERT encoder forward on the CPU, the REALM reader's and embedder's cost, for the
//! all-MiniLM-L6-v2 shape (L6 H384) and BERT-base (L12 H768, REALM's), at sequence 128 and
//! 288 (REALM's block length) and batch 1 and 8. Seeded random weights. Three of ours: the
//! module on burn's CPU backend (Flex, `encoder-flex-*`, what training runs), and the frozen
//! forward (`model::frozen_bert`) at f32 (`encoder-frozen-f32-*`) and, where the CPU has
//! AMX or AVX-512 BF16, bf16 (`encoder-frozen-bf16-*`).
//!
//! With PyTorch in the same run and the ratio table (one thread each):
//!     scripts/bench-encoder.sh
//! This bench alone:
//!     RAYON_NUM_THREADS=1 cargo bench --workspace --bench encoder
//! and a further round of the frozen f32 forward alone (the script alternates rounds of it
//! with PyTorch's; groups `encoder-frozen-f32-<shape>-r<ROUND>`):
//!     REALM_BENCH_ROUND=2 RAYON_NUM_THREADS=1 cargo bench --workspace --bench encoder

use std::time::Duration;

/// The `realm` binary's allocator (native/src/main.rs), so the bench times what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::Criterion;
use realm_core::checkpoint::weights::WeightLoader;
use realm_core::linalg::Precision;
use realm_core::model::config::BertConfig;
use realm_core::model::embedder::RealmEmbedder;
use realm_core::model::frozen_bert::FrozenBert;
use realm_core::rng::SplitMix64;
use realm_core::skeleton::seeded_weights;
use realm_core::text::BertInput;

/// (name, layers, hidden, heads, intermediate)
pub const SHAPES: &[(&str, usize, usize, usize, usize)] = &[
    ("minilm_l6_h384", 6, 384, 12, 1536),
    ("bert_base_l12_h768", 12, 768, 12, 3072),
];
pub const SEQS: &[usize] = &[128, 288];
pub const BATCHES: &[usize] = &[1, 8];

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let device = realm_core::device::cpu_device();
    let round = std::env::var("REALM_BENCH_ROUND").ok();
    for &(name, layers, hidden, heads, intermediate) in SHAPES {
        let config = BertConfig::new(30522, hidden, layers, heads, intermediate);
        let mut loader = WeightLoader::new(seeded_weights(&config, 5), &device);
        let model = RealmEmbedder::load(&config, &mut loader, &device).expect("seeded weights");
        let inputs: Vec<(String, BertInput)> = SEQS
            .iter()
            .flat_map(|&seq| BATCHES.iter().map(move |&batch| (seq, batch)))
            .map(|(seq, batch)| {
                let mut rng = SplitMix64::new(seq as u64 * 31 + batch as u64);
                let input = BertInput {
                    input_ids: (0..batch * seq)
                        .map(|_| (rng.next_u64() % 30522) as u32)
                        .collect(),
                    attention_mask: vec![1; batch * seq],
                    token_type_ids: vec![0; batch * seq],
                    batch,
                    seq,
                };
                (format!("s{seq}-b{batch}"), input)
            })
            .collect();
        if let Some(round) = &round {
            // A round: the goal's row only, the frozen f32 forward.
            let frozen = FrozenBert::new(&model.bert, config.layer_norm_eps, Precision::F32);
            let mut group = c.benchmark_group(format!("encoder-frozen-f32-{name}-r{round}"));
            for (id, input) in &inputs {
                group.bench_function(id.as_str(), |bench| bench.iter(|| frozen.forward(input)));
            }
            group.finish();
            continue;
        }
        let mut group = c.benchmark_group(format!("encoder-flex-{name}"));
        for (id, input) in &inputs {
            group.bench_function(id.as_str(), |bench| {
                bench.iter(|| {
                    // Reading the output back waits for the forward to finish.
                    model
                        .bert
                        .forward(input, &device)
                        .last_hidden_state
                        .into_data()
                })
            });
        }
        group.finish();
        for precision in [Precision::F32, Precision::Bf16] {
            if !precision.available() {
                eprintln!("encoder-frozen-{precision}: not on this CPU, skipped");
                continue;
            }
            let frozen = FrozenBert::new(&model.bert, config.layer_norm_eps, precision);
            let mut group = c.benchmark_group(format!("encoder-frozen-{precision}-{name}"));
            for (id, input) in &inputs {
                group.bench_function(id.as_str(), |bench| bench.iter(|| frozen.forward(input)));
            }
            group.finish();
        }
    }
    c.final_summary();
}
