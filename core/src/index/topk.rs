//! The bounded top-k that every CPU scan fills: a heap whose top is the worst hit kept, a
//! floor that rejects most offers with one comparison, and the merge of per-part lists.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::index::reference::{Hit, hit_order};

/// A heap entry ordered so that the heap's top is the worst hit kept so far.
struct Worst(Hit);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        hit_order(&self.0, &other.0)
    }
}

/// The best `k` hits offered so far, in a bounded heap whose top is the worst one kept.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
    /// The worst kept score once the heap is full: most offers stop at this comparison.
    floor: f32,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            // Grows past this only when k is larger than a screenful and that many rows come:
            // a k beyond the index (any usize) allocates nothing up front.
            heap: BinaryHeap::with_capacity(k.min(1024) + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    #[inline]
    pub fn offer(&mut self, id: u32, score: f32) {
        if score < self.floor {
            return;
        }
        let hit = Hit { id, score };
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
        } else if hit_order(&hit, &self.heap.peek().expect("k >= 1").0) == Ordering::Less {
            // The worst kept hit replaced in place: one sift down, where a pop and a push
            // would sift twice.
            *self.heap.peek_mut().expect("k >= 1") = Worst(hit);
        } else {
            return;
        }
        if self.heap.len() == self.k {
            self.floor = self.heap.peek().expect("k >= 1").0.score;
        }
    }

    /// Offers `scores[i]` as id `first + i` for every `i`: [`offer`](Self::offer) on each,
    /// but a run of 16 that holds no score at or above the floor (once k hits are kept, nearly
    /// all of them) costs one vector comparison instead of 16 scalar ones. NaN scores are
    /// offered as `offer` would take them.
    #[inline]
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must count as not below the floor
    pub fn offer_run(&mut self, first: u32, scores: &[f32]) {
        let mut chunks = scores.chunks_exact(16);
        let mut id = first;
        for chunk in &mut chunks {
            let floor = self.floor;
            // `!(s < floor)` rather than `s >= floor`: a NaN is not below the floor either.
            if chunk.iter().fold(false, |any, &s| any | !(s < floor)) {
                for (i, &s) in chunk.iter().enumerate() {
                    self.offer(id + i as u32, s);
                }
            }
            id += 16;
        }
        for (i, &s) in chunks.remainder().iter().enumerate() {
            self.offer(id + i as u32, s);
        }
    }

    /// A score below this cannot enter (negative infinity until k hits are kept).
    #[inline]
    pub fn floor(&self) -> f32 {
        self.floor
    }

    /// The kept hits in [`hit_order`].
    pub fn into_sorted(self) -> Vec<Hit> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|w| w.0)
            .collect()
    }
}

/// Merges per-part top-k lists (parts of one index, or one index and its additions) into
/// one top-k list per query.
pub fn merge_parts(parts: Vec<Vec<Vec<Hit>>>, n_queries: usize, k: usize) -> Vec<Vec<Hit>> {
    (0..n_queries)
        .map(|q| {
            let mut hits: Vec<Hit> = parts
                .iter()
                .flat_map(|part| part[q].iter().copied())
                .collect();
            hits.sort_by(hit_order);
            hits.truncate(k);
            hits
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{SplitMix64, fresh_seed};

    #[test]
    fn a_run_keeps_what_one_offer_at_a_time_keeps() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        for &n in &[0usize, 7, 16, 100, 1000] {
            for &k in &[1usize, 8, 40] {
                // Rounded scores tie often; a few NaNs and infinities on top.
                let mut scores: Vec<f32> = (0..n)
                    .map(|_| (rng.next_symmetric() * 8.0).round())
                    .collect();
                for (i, s) in scores.iter_mut().enumerate() {
                    match i % 97 {
                        13 => *s = f32::NAN,
                        41 => *s = f32::INFINITY,
                        _ => {}
                    }
                }
                let (mut one, mut run) = (TopK::new(k), TopK::new(k));
                for (i, &s) in scores.iter().enumerate() {
                    one.offer(5 + i as u32, s);
                }
                run.offer_run(5, &scores);
                let (one, run) = (one.into_sorted(), run.into_sorted());
                assert_eq!(one.len(), run.len(), "seed {seed}, n {n}, k {k}");
                for (a, b) in one.iter().zip(&run) {
                    assert_eq!(a.id, b.id, "seed {seed}, n {n}, k {k}");
                    assert_eq!(a.score.to_bits(), b.score.to_bits());
                }
            }
        }
    }
}
