//! The walking skeleton's tokenizer: lower-cased words hashed into a small vocabulary,
//! framed as `[CLS] text [SEP]` and padded into a [`BertInput`] batch.
//!
//! Real checkpoints use WordPiece (Hugging Face `tokenizers`); this one only needs to be
//! deterministic on every platform so the native and wasm builds see the same ids.

use crate::Error;
use crate::text::BertInput;

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
        let zeros = vec![0; self.max_len];
        let rows: Vec<(&[u32], &[u32])> =
            rows.iter().map(|r| (&r[..], &zeros[..r.len()])).collect();
        Ok(BertInput::padded(&rows, PAD_ID))
    }
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
