//! The order a run reads its examples in: fixed by the seed, so a resumed run reads what the
//! uninterrupted one would have.

use std::collections::HashMap;

use realm_core::rng::SplitMix64;

/// How many batches' worth of shuffled examples [`Order::regrouped`] sorts by length at once:
/// batches drawn from such a window pad little, and meet new partners every epoch.
const REGROUP_WINDOW: usize = 32;

/// Training batches per epoch, drawn from the seed. The data cursor is the step, so a resumed
/// run reads exactly what the uninterrupted one would have.
pub struct Order {
    lengths: Vec<usize>,
    batch: usize,
    seed: u64,
    /// [`Order::new`]'s batches, shortest first; empty for [`Order::regrouped`].
    fixed: Vec<Vec<usize>>,
    /// Each epoch's batches, in the order it reads them.
    epochs: HashMap<usize, Vec<Vec<usize>>>,
}

impl Order {
    /// Examples sorted by length are cut into batches once (little padding inside a batch),
    /// and each epoch shuffles the batches: an example always shares its batch with the same
    /// others (what a reader's or a retriever's per-example loss does not mind).
    pub fn new(lengths: &[usize], batch: usize, seed: u64) -> Self {
        let mut sorted: Vec<usize> = (0..lengths.len()).collect();
        sorted.sort_by_key(|&i| (lengths[i], i));
        let fixed = sorted.chunks(batch).map(<[usize]>::to_vec).collect();
        Self {
            lengths: lengths.to_vec(),
            batch,
            seed,
            fixed,
            epochs: HashMap::new(),
        }
    }

    /// New batches every epoch, for losses whose negatives are the rest of the batch (ICT's
    /// in-batch softmax, as ORQA samples random batches): the examples are shuffled, sorted by
    /// length within windows of [`REGROUP_WINDOW`] batches, cut into batches, and the batches
    /// shuffled.
    pub fn regrouped(lengths: &[usize], batch: usize, seed: u64) -> Self {
        Self {
            lengths: lengths.to_vec(),
            batch,
            seed,
            fixed: Vec::new(),
            epochs: HashMap::new(),
        }
    }

    /// Batches in an epoch.
    fn per_epoch(&self) -> usize {
        self.lengths.len().div_ceil(self.batch)
    }

    /// The examples of the `position`-th batch of the run.
    pub fn batch(&mut self, position: usize) -> &[usize] {
        let (epoch, i) = (position / self.per_epoch(), position % self.per_epoch());
        if !self.epochs.contains_key(&epoch) {
            let batches = self.epoch(epoch);
            self.epochs.insert(epoch, batches);
        }
        &self.epochs[&epoch][i]
    }

    fn epoch(&self, epoch: usize) -> Vec<Vec<usize>> {
        let mut rng =
            SplitMix64::new(self.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let batches = if self.fixed.is_empty() {
            let mut examples: Vec<usize> = (0..self.lengths.len()).collect();
            shuffle(&mut examples, &mut rng);
            for window in examples.chunks_mut(self.batch * REGROUP_WINDOW) {
                window.sort_by_key(|&i| (self.lengths[i], i));
            }
            examples.chunks(self.batch).map(<[usize]>::to_vec).collect()
        } else {
            self.fixed.clone()
        };
        let mut order: Vec<usize> = (0..batches.len()).collect();
        shuffle(&mut order, &mut rng);
        order.into_iter().map(|b| batches[b].clone()).collect()
    }
}

/// Fisher-Yates with `rng`.
fn shuffle(items: &mut [usize], rng: &mut SplitMix64) {
    for j in (1..items.len()).rev() {
        items.swap(j, (rng.next_u64() % (j as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::Order;

    fn epoch(order: &mut Order, e: usize, per_epoch: usize) -> Vec<Vec<usize>> {
        (0..per_epoch)
            .map(|i| order.batch(e * per_epoch + i).to_vec())
            .collect()
    }

    #[test]
    fn every_epoch_reads_every_example_once_the_same_for_the_same_seed() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 7919) % 301).collect();
        for make in [Order::new, Order::regrouped] {
            let mut order = make(&lengths, 16, 7);
            let per_epoch = 1000_usize.div_ceil(16);
            for e in 0..3 {
                let mut seen: Vec<usize> = epoch(&mut order, e, per_epoch).concat();
                seen.sort_unstable();
                assert_eq!(seen, (0..1000).collect::<Vec<_>>());
            }
            // A resumed run (a fresh Order) reads what the first read, from any position.
            let mut again = make(&lengths, 16, 7);
            assert_eq!(
                again.batch(2 * per_epoch + 5),
                order.batch(2 * per_epoch + 5)
            );
            assert_ne!(
                epoch(&mut make(&lengths, 16, 8), 0, per_epoch),
                epoch(&mut order, 0, per_epoch)
            );
        }
    }

    #[test]
    fn regrouped_batches_meet_new_partners_and_pad_little() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 7919) % 301).collect();
        let per_epoch = 1000_usize.div_ceil(16);
        let batches_of =
            |make: fn(&[usize], usize, u64) -> Order, e: usize| -> HashSet<Vec<usize>> {
                epoch(&mut make(&lengths, 16, 7), e, per_epoch)
                    .into_iter()
                    .map(|mut b| {
                        b.sort_unstable();
                        b
                    })
                    .collect()
            };
        // The fixed order keeps its batches; the regrouped one forms new ones.
        assert_eq!(batches_of(Order::new, 0), batches_of(Order::new, 1));
        let (first, second) = (
            batches_of(Order::regrouped, 0),
            batches_of(Order::regrouped, 1),
        );
        assert!(
            first.intersection(&second).count() < 3,
            "batches repeated across epochs"
        );
        // Within a batch lengths stay close: the spread is far below the lengths' range (300).
        let spread: usize = first
            .iter()
            .map(|b| {
                let l: Vec<usize> = b.iter().map(|&i| lengths[i]).collect();
                l.iter().max().unwrap() - l.iter().min().unwrap()
            })
            .sum::<usize>()
            / first.len();
        assert!(spread < 40, "mean spread of lengths in a batch {spread}");
    }
}
