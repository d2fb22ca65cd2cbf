//! Exact maximum inner-product search on the CPU: the plain reference every faster index
//! (the WGSL kernels, int8 shards, HNSW) is tested against.

use crate::Error;

/// One retrieved document: its row in the index and its score f(x, z).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    pub id: u32,
    pub score: f32,
}

/// The order every top-k in this project returns: higher score first, then lower id.
pub fn hit_order(a: &Hit, b: &Hit) -> std::cmp::Ordering {
    b.score.total_cmp(&a.score).then(a.id.cmp(&b.id))
}

/// Checks that a flat `[rows, dim]` buffer is well formed and finite.
pub fn check_matrix(values: &[f32], dim: usize, what: &'static str) -> Result<usize, Error> {
    if dim == 0 || !values.len().is_multiple_of(dim) {
        return Err(Error::EmbeddingLength {
            len: values.len(),
            dim,
        });
    }
    if let Some(position) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite { what, position });
    }
    Ok(values.len() / dim)
}

/// The `k` documents with the largest inner product for each query, by scoring every
/// document. Returns `min(k, documents)` hits per query in [`hit_order`].
///
/// `queries` is `[queries, dim]` and `documents` `[documents, dim]`, both row-major.
pub fn top_k_reference(
    queries: &[f32],
    documents: &[f32],
    dim: usize,
    k: usize,
) -> Result<Vec<Vec<Hit>>, Error> {
    if k == 0 {
        return Err(Error::ZeroK);
    }
    let n_docs = check_matrix(documents, dim, "the index")?;
    if n_docs == 0 {
        return Err(Error::EmptyCorpus);
    }
    check_matrix(queries, dim, "the queries")?;
    Ok(queries
        .chunks_exact(dim)
        .map(|query| {
            let mut hits: Vec<Hit> = documents
                .chunks_exact(dim)
                .enumerate()
                .map(|(id, doc)| Hit {
                    id: id as u32,
                    score: dot(query, doc),
                })
                .collect();
            hits.sort_by(hit_order);
            hits.truncate(k);
            hits
        })
        .collect())
}

/// Every inner product of `[m, dim]` queries with `[n, dim]` documents, row-major `[m, n]`:
/// the plain reference for the GPU's tiled matmul.
pub fn scores_reference(queries: &[f32], documents: &[f32], dim: usize) -> Vec<f32> {
    queries
        .chunks_exact(dim)
        .flat_map(|q| documents.chunks_exact(dim).map(move |d| dot(q, d)))
        .collect()
}

/// Sum of products in index order (the reference's summation order).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn returns_the_best_documents_in_order_with_ties_by_id() {
        let docs = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5, 0.5];
        let hits = top_k_reference(&[1.0, 0.0], &docs, 2, 3).unwrap();
        let ids: Vec<u32> = hits[0].iter().map(|h| h.id).collect();
        assert_eq!(ids, vec![0, 2, 3], "ties (docs 0 and 2) go to the lower id");
    }

    #[test]
    fn k_larger_than_the_corpus_returns_every_document() {
        let mut rng = SplitMix64::new(7);
        let docs = rng.uniform_vec(5 * 4, 1.0);
        let hits = top_k_reference(&rng.uniform_vec(4, 1.0), &docs, 4, 50).unwrap();
        assert_eq!(hits[0].len(), 5);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            top_k_reference(&[1.0], &[], 1, 1),
            Err(Error::EmptyCorpus)
        ));
        assert!(matches!(
            top_k_reference(&[1.0], &[1.0], 1, 0),
            Err(Error::ZeroK)
        ));
        assert!(matches!(
            top_k_reference(&[1.0, 2.0], &[1.0, 2.0, 3.0], 2, 1),
            Err(Error::EmbeddingLength { .. })
        ));
        assert!(matches!(
            top_k_reference(&[1.0], &[f32::NAN], 1, 1),
            Err(Error::NonFinite {
                what: "the index",
                position: 0
            })
        ));
    }
}
