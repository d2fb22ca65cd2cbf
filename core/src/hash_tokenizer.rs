//! The walking skeleton's tokenizer: lower-cased words hashed into a small vocabulary, and
//! the padding of `[CLS] text [SEP]` sequences into a [`BertInput`] batch.
//!
//! Real checkpoints use WordPiece (Hugging Face `tokenizers`); this one only needs to be
//! deterministic on every platform so the native and wasm builds see the same ids.

use crate::Error;
use crate::bert::BertInput;

pub const PAD_ID: u32 = 0;
pub const CLS_ID: u32 = 1;
pub const SEP_ID: u32 = 2;
const FIRST_WORD_ID: u32 = 3;

/// Maps each lower-cased alphanumeric word to `3 + fnv1a(word) % (vocab_size - 3)`.
#[derive(Debug, Clone)]
pub struct HashTokenizer {
    pub vocab_size: u32,
    /// The longest sequence the model takes, `[CLS]` and `[SEP]` included.
    pub max_len: usize,
}

impl HashTokenizer {
    /// Word ids of `text`, without special tokens.
    pub fn word_ids(&self, text: &str) -> Vec<u32> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| FIRST_WORD_ID + fnv1a(&w.to_lowercase()) % (self.vocab_size - FIRST_WORD_ID))
            .collect()
    }

    /// `[CLS] text [SEP]` for every text, padded to the longest.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<BertInput, Error> {
        let rows: Vec<Vec<u32>> = texts
            .iter()
            .map(|text| {
                let words = self.word_ids(text);
                if words.len() + 2 > self.max_len {
                    return Err(Error::TooLong {
                        tokens: words.len() + 2,
                        max: self.max_len,
                    });
                }
                Ok([vec![CLS_ID], words, vec![SEP_ID]].concat())
            })
            .collect::<Result<_, _>>()?;
        Ok(pad_batch(&rows))
    }
}

/// Right-pads token rows with [`PAD_ID`] into one `[batch, seq]` input, segment 0 throughout.
pub fn pad_batch(rows: &[Vec<u32>]) -> BertInput {
    let seq = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut input = BertInput {
        input_ids: Vec::with_capacity(rows.len() * seq),
        attention_mask: Vec::with_capacity(rows.len() * seq),
        token_type_ids: vec![0; rows.len() * seq],
        batch: rows.len(),
        seq,
    };
    for row in rows {
        input.input_ids.extend(
            row.iter()
                .copied()
                .chain(std::iter::repeat_n(PAD_ID, seq - row.len())),
        );
        input
            .attention_mask
            .extend((0..seq).map(|i| u32::from(i < row.len())));
    }
    input
}

fn fnv1a(word: &str) -> u32 {
    word.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_longest_and_masks_the_padding() {
        let t = HashTokenizer {
            vocab_size: 100,
            max_len: 16,
        };
        let input = t.encode_batch(&["one two three", "Four"]).unwrap();
        assert_eq!((input.batch, input.seq), (2, 5));
        assert_eq!(input.attention_mask, vec![1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(input.input_ids[0], CLS_ID);
        assert_eq!(input.input_ids[4], SEP_ID);
        assert_eq!(&input.input_ids[8..], &[PAD_ID, PAD_ID]);
        assert_eq!(
            t.word_ids("Four"),
            t.word_ids("four!"),
            "case and punctuation are ignored"
        );
    }

    #[test]
    fn a_text_longer_than_the_model_is_an_error() {
        let t = HashTokenizer {
            vocab_size: 100,
            max_len: 4,
        };
        assert!(matches!(
            t.encode_batch(&["a b c"]),
            Err(Error::TooLong { tokens: 5, max: 4 })
        ));
    }
}
