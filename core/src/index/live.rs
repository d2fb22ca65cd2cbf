//! A live index: documents added, replaced and removed without rebuilding the index beneath
//! (the paper's Table 4 swaps in a newer Wikipedia at inference; a user updates a corpus
//! without re-training). Removed rows are hidden, added documents are searched exactly beside
//! the base index, and hits carry document ids.

use std::collections::HashMap;

use crate::Error;
use crate::index::exact::{MipsIndex, check_search, exact_search_f32};
use crate::index::reference::{Hit, check_matrix};
use crate::index::topk::merge_parts;

/// Any [`MipsIndex`] (exact, int8, HNSW, GPU) plus additions and removals by document id.
pub struct LiveIndex {
    base: Box<dyn MipsIndex + Send + Sync>,
    /// Document id of every base row.
    base_ids: Vec<u32>,
    /// Base row of every document still in the base.
    base_rows: HashMap<u32, usize>,
    removed: Vec<bool>,
    removed_count: usize,
    added: Vec<f32>,
    added_ids: Vec<u32>,
    added_rows: HashMap<u32, usize>,
}

impl LiveIndex {
    /// Wraps `base`, whose row `r` holds document `ids[r]` (ids must be distinct).
    pub fn new(base: Box<dyn MipsIndex + Send + Sync>, ids: Vec<u32>) -> Result<Self, Error> {
        if ids.len() != base.len() {
            return Err(Error::Corpus(format!(
                "{} document ids for an index of {} vectors",
                ids.len(),
                base.len()
            )));
        }
        let mut base_rows = HashMap::with_capacity(ids.len());
        for (row, &id) in ids.iter().enumerate() {
            if base_rows.insert(id, row).is_some() {
                return Err(Error::Corpus(format!("document id {id} appears twice")));
            }
        }
        Ok(Self {
            removed: vec![false; ids.len()],
            base,
            base_ids: ids,
            base_rows,
            removed_count: 0,
            added: Vec::new(),
            added_ids: Vec::new(),
            added_rows: HashMap::new(),
        })
    }

    pub fn contains(&self, id: u32) -> bool {
        self.base_rows.contains_key(&id) || self.added_rows.contains_key(&id)
    }

    /// Adds document `id`, replacing the vector it had if it was already indexed.
    pub fn add(&mut self, id: u32, vector: &[f32]) -> Result<(), Error> {
        if vector.len() != self.dim() {
            return Err(Error::DimensionMismatch {
                query: vector.len(),
                index: self.dim(),
            });
        }
        check_matrix(vector, self.dim(), "the added vector")?;
        if self.contains(id) {
            self.remove(id)?;
        }
        self.added_rows.insert(id, self.added_ids.len());
        self.added_ids.push(id);
        self.added.extend_from_slice(vector);
        Ok(())
    }

    /// Removes document `id` from every search that follows.
    pub fn remove(&mut self, id: u32) -> Result<(), Error> {
        if let Some(row) = self.base_rows.remove(&id) {
            self.removed[row] = true;
            self.removed_count += 1;
            return Ok(());
        }
        let row = self
            .added_rows
            .remove(&id)
            .ok_or(Error::UnknownDocument { id })?;
        // Swap the last addition into the hole.
        let dim = self.dim();
        let last = self.added_ids.len() - 1;
        self.added_ids.swap_remove(row);
        if row != last {
            self.added
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            self.added_rows.insert(self.added_ids[row], row);
        }
        self.added.truncate(last * dim);
        Ok(())
    }

    /// Share of the base's rows hidden by removals: past about a half, searches spend more
    /// on hidden rows than a rebuild (`realm index`) would cost.
    pub fn removed_fraction(&self) -> f64 {
        self.removed_count as f64 / self.base_ids.len().max(1) as f64
    }
}

impl MipsIndex for LiveIndex {
    fn dim(&self) -> usize {
        self.base.dim()
    }

    fn len(&self) -> usize {
        self.base_ids.len() - self.removed_count + self.added_ids.len()
    }

    fn search(&self, queries: &[f32], k: usize) -> Result<Vec<Vec<Hit>>, Error> {
        check_search(self, queries, k)?;
        let n_queries = queries.len() / self.dim();
        let mut parts = Vec::with_capacity(2);
        if self.removed_count < self.base_ids.len() {
            // Ask for enough extra hits that k survive even if every removed row ranks first.
            let wanted = k.saturating_add(self.removed_count).min(self.base.len());
            let base_hits = self.base.search(queries, wanted)?;
            parts.push(
                base_hits
                    .into_iter()
                    .map(|hits| {
                        hits.into_iter()
                            .filter(|h| !self.removed[h.id as usize])
                            .map(|h| Hit {
                                id: self.base_ids[h.id as usize],
                                score: h.score,
                            })
                            .collect()
                    })
                    .collect(),
            );
        }
        if !self.added_ids.is_empty() {
            let added = exact_search_f32(&self.added, queries, self.dim(), k, 1);
            parts.push(
                added
                    .into_iter()
                    .map(|hits| {
                        hits.into_iter()
                            .map(|h| Hit {
                                id: self.added_ids[h.id as usize],
                                score: h.score,
                            })
                            .collect()
                    })
                    .collect(),
            );
        }
        Ok(merge_parts(parts, n_queries, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::exact::ExactIndex;
    use crate::index::int8::Int8Index;
    use crate::index::reference::top_k_reference;
    use crate::rng::{SplitMix64, fresh_seed};

    /// A model of the live corpus: a map from id to vector, searched by the reference.
    fn reference(
        docs: &std::collections::BTreeMap<u32, Vec<f32>>,
        q: &[f32],
        k: usize,
    ) -> Vec<u32> {
        let ids: Vec<u32> = docs.keys().copied().collect();
        let flat: Vec<f32> = docs.values().flatten().copied().collect();
        top_k_reference(q, &flat, q.len(), k).unwrap()[0]
            .iter()
            .map(|h| ids[h.id as usize])
            .collect()
    }

    #[test]
    fn random_adds_and_removes_match_a_rebuilt_reference() {
        let seed = fresh_seed();
        let mut rng = SplitMix64::new(seed);
        let dim = 16;
        let base = rng.uniform_vec(200 * dim, 1.0);
        let ids: Vec<u32> = (0..200).map(|i| 1000 + 3 * i).collect();
        let mut model: std::collections::BTreeMap<u32, Vec<f32>> = ids
            .iter()
            .zip(base.chunks_exact(dim))
            .map(|(&id, v)| (id, v.to_vec()))
            .collect();
        let mut live = LiveIndex::new(Box::new(ExactIndex::new(base, dim).unwrap()), ids).unwrap();
        for step in 0..400 {
            let id = 1000 + (rng.next_u64() % 700) as u32;
            if rng.next_u64().is_multiple_of(3) {
                let removed = live.remove(id);
                assert_eq!(removed.is_ok(), model.remove(&id).is_some(), "step {step}");
            } else {
                let v = rng.uniform_vec(dim, 1.0);
                live.add(id, &v).unwrap();
                model.insert(id, v);
            }
            assert_eq!(live.len(), model.len());
            if step % 20 == 0 && !model.is_empty() {
                let q = rng.uniform_vec(dim, 1.0);
                let got: Vec<u32> = live.search(&q, 10).unwrap()[0]
                    .iter()
                    .map(|h| h.id)
                    .collect();
                assert_eq!(got, reference(&model, &q, 10), "step {step}");
            }
        }
    }

    #[test]
    fn wraps_an_int8_base_and_refuses_bad_updates() {
        let docs = vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7];
        let base = Int8Index::from_f32(&docs, 2).unwrap();
        let mut live = LiveIndex::new(Box::new(base), vec![7, 8, 9]).unwrap();
        live.remove(7).unwrap();
        let hits = live.search(&[1.0, 0.0], 3).unwrap();
        assert_eq!(hits[0].iter().map(|h| h.id).collect::<Vec<_>>(), vec![9, 8]);
        assert!(matches!(
            live.remove(7),
            Err(Error::UnknownDocument { id: 7 })
        ));
        assert!(live.add(5, &[1.0]).is_err());
        assert!(live.add(5, &[f32::NAN, 1.0]).is_err());
        live.add(5, &[2.0, 0.0]).unwrap();
        assert_eq!(live.search(&[1.0, 0.0], 1).unwrap()[0][0].id, 5);
        // A k beyond every row (from JavaScript, up to u32::MAX; natively any usize) gives all
        // of them: no overflow with the removed rows added, no allocation of k.
        for k in [u32::MAX as usize, usize::MAX] {
            let ids: Vec<u32> = live.search(&[1.0, 0.0], k).unwrap()[0]
                .iter()
                .map(|h| h.id)
                .collect();
            assert_eq!(ids, vec![5, 9, 8], "k {k}");
        }
        assert!(
            LiveIndex::new(
                Box::new(Int8Index::from_f32(&docs, 2).unwrap()),
                vec![1, 1, 2]
            )
            .is_err()
        );
    }
}
