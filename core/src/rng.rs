//! Seeded randomness that is the same on every platform: the SplitMix64 generator the
//! skeleton's weights and every randomised test draw from, and the printed test seed.

/// A seed for randomised tests: `REALM_SEED` when set (to replay a failure), otherwise the
/// clock. It is printed, so a failing run names the seed that replays it.
pub fn fresh_seed() -> u64 {
    let seed = std::env::var("REALM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("seed = {seed} (replay with REALM_SEED={seed})");
    seed
}

/// A small deterministic generator (SplitMix64) for weights that must be bit-identical on
/// every platform: native, wasm32, any CPU. It uses integer arithmetic only.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)`, exactly representable (24 random bits).
    pub fn next_symmetric(&mut self) -> f32 {
        let bits = (self.next_u64() >> 40) as u32; // 24 bits
        (bits as f32) / (1u32 << 23) as f32 - 1.0
    }

    /// `n` values uniform in `[-limit, limit)`.
    pub fn uniform_vec(&mut self, n: usize, limit: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_symmetric() * limit).collect()
    }
}
