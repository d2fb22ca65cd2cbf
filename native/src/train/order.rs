//! The order a run reads its examples in: fixed by the seed, so a resumed run reads what the
//! uninterrupted one would have.

use std::collections::HashMap;

use realm_core::rng::SplitMix64;

/// Training batches in a fixed order per epoch, drawn from the seed: examples sorted by
/// length are cut into batches (little padding inside a batch), and each epoch shuffles the
/// batches. The data cursor is the step, so a resumed run reads exactly what the
/// uninterrupted one would have.
pub struct Order {
    /// Example indices of every batch, shortest batch first.
    batches: Vec<Vec<usize>>,
    seed: u64,
    epochs: HashMap<usize, Vec<usize>>,
}

impl Order {
    pub fn new(lengths: &[usize], batch: usize, seed: u64) -> Self {
        let mut sorted: Vec<usize> = (0..lengths.len()).collect();
        sorted.sort_by_key(|&i| (lengths[i], i));
        let batches = sorted.chunks(batch).map(<[usize]>::to_vec).collect();
        Self {
            batches,
            seed,
            epochs: HashMap::new(),
        }
    }

    /// The examples of the `position`-th batch of the run.
    pub fn batch(&mut self, position: usize) -> &[usize] {
        let n = self.batches.len();
        let (epoch, i) = (position / n, position % n);
        let seed = self.seed;
        let perm = self.epochs.entry(epoch).or_insert_with(|| {
            let mut rng =
                SplitMix64::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut p: Vec<usize> = (0..n).collect();
            for j in (1..n).rev() {
                p.swap(j, (rng.next_u64() % (j as u64 + 1)) as usize);
            }
            p
        });
        &self.batches[perm[i]]
    }
}
