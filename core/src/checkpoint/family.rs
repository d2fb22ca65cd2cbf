//! Which REALM checkpoint a weight map holds (Hugging Face's families: `RealmEmbedder`,
//! `RealmScorer`, `RealmKnowledgeAugEncoder`, `RealmReader`, `RealmForOpenQA`, plain
//! `BertModel`), told by the tensor names alone. Loading a family's modules strictly is
//! `model::strict`'s part.

use crate::Error;
use crate::checkpoint::weights::WeightMap;

/// A checkpoint family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// `BertModel` names (`embeddings.*`, `encoder.*`): a sentence-transformers model.
    Bert,
    /// `realm.*` + `cls.dense`, `cls.LayerNorm`: the retriever's embedder.
    Embedder,
    /// `embedder.*`, and `query_embedder.*` when the query side has its own weights: the
    /// relevance scorer f(x, z) (one embedder for both sides by default).
    Scorer,
    /// `realm.*` + `cls.predictions.*`: the knowledge-augmented encoder with its MLM head.
    Encoder,
    /// `realm.*` + `qa_outputs.*`: the span reader.
    Reader,
    /// `embedder.*` + `reader.*` + `block_emb`: retrieve-then-read open QA.
    OpenQa,
}

/// Names the family by the tensors present.
pub fn detect_family(weights: &WeightMap) -> Result<Family, Error> {
    let has = |prefix: &str| weights.keys().any(|k| k.starts_with(prefix));
    // The evidence matrix by its exact name (a `block_emb.*` is a stray tensor, refused later).
    let block_emb = weights.contains_key("block_emb");
    Ok(if block_emb && has("embedder.") && has("reader.") {
        Family::OpenQa
    } else if has("embedder.") && !has("reader.") && !has("block_emb") {
        Family::Scorer
    } else if has("realm.") && has("qa_outputs.") {
        Family::Reader
    } else if has("realm.") && has("cls.dense.") {
        Family::Embedder
    } else if has("realm.") && has("cls.predictions.") {
        Family::Encoder
    } else if has("embeddings.word_embeddings.") && has("encoder.layer.") {
        Family::Bert
    } else {
        let mut names: Vec<&str> = weights.keys().map(String::as_str).take(5).collect();
        if weights.len() > 5 {
            names.push("...");
        }
        return Err(Error::Config(format!(
            "the checkpoint is no REALM or BERT family this build knows (tensors: {})",
            names.join(", ")
        )));
    })
}

#[cfg(test)]
mod tests {
    use super::{Family, detect_family};
    use crate::checkpoint::weights::{HostTensor, WeightMap};

    fn names(names: &[&str]) -> WeightMap {
        names
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    HostTensor::new(n, vec![1], vec![0.0]).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn open_qa_needs_the_evidence_matrix_by_its_name() {
        let open = names(&["embedder.x", "reader.x", "block_emb"]);
        assert_eq!(detect_family(&open).unwrap(), Family::OpenQa);
        // `block_emb.weight` is not the matrix: no family (it panicked in the strict load).
        let stray = names(&["embedder.x", "reader.x", "block_emb.weight"]);
        let e = detect_family(&stray).unwrap_err().to_string();
        assert!(e.contains("no REALM or BERT family"), "{e}");
    }
}
