//! A tokenised, padded batch as plain host vectors: what every tokenizer produces and every
//! BERT forward takes.

/// Token ids and masks for a padded batch, as plain host vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct BertInput {
    /// Row-major `[batch, seq]` token ids.
    pub input_ids: Vec<u32>,
    /// `[batch, seq]`: 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// `[batch, seq]` segment ids (0 for the first text, 1 for the second).
    pub token_type_ids: Vec<u32>,
    pub batch: usize,
    pub seq: usize,
}

impl BertInput {
    /// Right-pads `(ids, token_type_ids)` rows with `pad_id` (segment 0) into one batch, with
    /// an attention mask of 1 on each row's own tokens.
    pub fn padded(rows: &[(&[u32], &[u32])], pad_id: u32) -> Self {
        Self::padded_to(rows, pad_id, 0)
    }

    /// [`padded`](Self::padded) to at least `min_seq` positions (a reader needs as many as its
    /// widest span, however short the texts).
    pub fn padded_to(rows: &[(&[u32], &[u32])], pad_id: u32, min_seq: usize) -> Self {
        let longest = rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
        let seq = longest.max(min_seq);
        let mut input = Self {
            input_ids: Vec::with_capacity(rows.len() * seq),
            attention_mask: Vec::with_capacity(rows.len() * seq),
            token_type_ids: Vec::with_capacity(rows.len() * seq),
            batch: rows.len(),
            seq,
        };
        for (ids, types) in rows {
            assert_eq!(ids.len(), types.len(), "one segment id per token");
            let pad = seq - ids.len();
            input
                .input_ids
                .extend(ids.iter().copied().chain(std::iter::repeat_n(pad_id, pad)));
            input
                .token_type_ids
                .extend(types.iter().copied().chain(std::iter::repeat_n(0, pad)));
            input
                .attention_mask
                .extend((0..seq).map(|i| u32::from(i < ids.len())));
        }
        input
    }
}
