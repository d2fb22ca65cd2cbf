//! What every kernel test needs: an adapter (or a clear skip), a printed seed, and a
//! comparison that tolerates rounding only where scores are that close.

use realm_core::index::reference::Hit;
use realm_shaders::GpuContext;

pub fn context() -> Option<GpuContext> {
    match GpuContext::new_blocking() {
        Ok(ctx) => Some(ctx),
        Err(e) if std::env::var("REALM_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!(
                "REALM_REQUIRE_GPU=1 but {e}: install mesa-vulkan-drivers (scripts/setup.sh does)"
            )
        }
        Err(e) => {
            eprintln!("skipping GPU kernel test: {e}");
            None
        }
    }
}

pub use realm_core::rng::fresh_seed;

/// Scores must agree within `tol`; ids must agree wherever the reference's scores are
/// separated from their neighbours by more than `tol` (closer ones may swap under FMA).
pub fn assert_same(gpu: &[Vec<Hit>], cpu: &[Vec<Hit>], tol: f32) {
    assert_eq!(gpu.len(), cpu.len());
    for (q, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert_eq!(g.len(), c.len(), "query {q}: list lengths");
        for i in 0..c.len() {
            assert!(
                (g[i].score - c[i].score).abs() <= tol,
                "query {q} rank {i}: {:?} vs {:?}",
                g[i],
                c[i]
            );
            let separated = (i == 0 || c[i - 1].score - c[i].score > tol)
                && (i + 1 == c.len() || c[i].score - c[i + 1].score > tol);
            if separated {
                assert_eq!(g[i].id, c[i].id, "query {q} rank {i}");
            }
        }
    }
}
