//! The matrix products behind the frozen encoder (`linalg`), alone: the `gemm` crate's f32
//! kernel and the bf16 ones (AMX, AVX-512 BF16) where the CPU has them, on BERT's linear-layer shapes. Reports
//! GFLOP/s through criterion's throughput (elements = multiply-adds).
//!
//!     RAYON_NUM_THREADS=1 cargo bench -p realm-core --bench linalg

use std::time::Duration;

use criterion::{Criterion, Throughput};
use realm_core::linalg::bf16::{Kernel, PackedB};
use realm_core::linalg::product_f32;
use realm_core::rng::SplitMix64;

/// (m, k, n): MiniLM's q/k/v (fused), FFN in and out at 288 tokens, and at 8 x 288.
const SHAPES: &[(usize, usize, usize)] = &[
    (288, 384, 1152),
    (288, 384, 1536),
    (288, 1536, 384),
    (2304, 384, 1536),
    (2304, 1536, 384),
];

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut rng = SplitMix64::new(7);
    for &(m, k, n) in SHAPES {
        let a = rng.uniform_vec(m * k, 1.0);
        let b = rng.uniform_vec(k * n, 1.0);
        let mut out = vec![0f32; m * n];
        let mut group = c.benchmark_group(format!("linalg-m{m}-k{k}-n{n}"));
        // Two flops per multiply-add: criterion's "elements" are multiply-adds.
        group.throughput(Throughput::Elements((m * k * n) as u64));
        group.bench_function("gemm-crate-f32", |bench| {
            bench.iter(|| product_f32(&a, &b, m, k, n, &mut out))
        });
        let packed = PackedB::new(&b, k, n);
        for (kernel, name) in [(Kernel::Amx, "amx-bf16"), (Kernel::Avx512, "avx512-bf16")] {
            if kernel.available() {
                group.bench_function(name, |bench| {
                    bench.iter(|| packed.product_on(kernel, &a, k, m, &mut out, n))
                });
            }
        }
        group.finish();
    }
    c.final_summary();
}
