//! BERT's WordPiece tokenizer, as REALM uses it (Hugging Face `tokenizers`): built from a
//! checkpoint's `tokenizer.json`, or from its `vocab.txt` alone (Google's REALM checkpoints ship
//! only that), with question/passage pairs, truncation and byte offsets.

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use std::sync::{Arc, RwLock};

use crate::Error;
use crate::text::BertInput;

/// The special tokens of BERT's uncased vocabulary, by their names in `vocab.txt`.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// How a question/passage pair is cut down to `max_length` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// Remove tokens from whichever text is longer, one at a time (BERT's default).
    LongestFirst,
    /// Remove tokens from the passage only; the question is kept whole (REALM's encoder).
    OnlySecond,
}

type TruncationKey = (usize, Truncation);
type Truncating = Vec<(TruncationKey, Arc<Tokenizer>)>;

/// One tokenized text or pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// 1 on [CLS], [SEP] (and other added special tokens), 0 on text.
    pub special_tokens_mask: Vec<u32>,
    /// Byte range of each token in its own text; (0, 0) on special tokens.
    pub offsets: Vec<(usize, usize)>,
    /// Which text each token came from: `Some(0)` question, `Some(1)` passage, `None` special.
    pub sequence_ids: Vec<Option<usize>>,
}

/// A WordPiece tokenizer with BERT's normalisation and `[CLS] a [SEP] b [SEP]` framing.
#[derive(Clone)]
pub struct WordPieceTokenizer {
    inner: Tokenizer,
    /// Copies of `inner` set to truncate, one per (max_length, truncation) asked for, made on
    /// first use: `tokenizers` keeps truncation in the tokenizer, and copying it (its 30,000-entry
    /// vocabulary) for every text cost more than encoding the text did.
    truncating: Arc<RwLock<Truncating>>,
    pub pad_id: u32,
    pub cls_id: u32,
    pub sep_id: u32,
    pub mask_id: u32,
}

impl WordPieceTokenizer {
    /// From a `vocab.txt` (one token per line, id = line number), lower-casing and stripping
    /// accents as `BertTokenizer(do_lower_case=True)` does.
    pub fn from_vocab(vocab_txt: &str) -> Result<Self, Error> {
        let vocab =
            WordPiece::read_bytes(vocab_txt.as_bytes()).map_err(|e| error(&e.to_string()))?;
        if vocab.is_empty() {
            return Err(error("vocab.txt is empty"));
        }
        for special in SPECIAL_TOKENS {
            if vocab.get(special).is_none() {
                return Err(error(&format!("vocab.txt has no {special} token")));
            }
        }
        let (cls, sep) = (
            vocab.get("[CLS]").copied().unwrap_or(0),
            vocab.get("[SEP]").copied().unwrap_or(0),
        );
        let model = WordPiece::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| error(&e.to_string()))?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
            .map_err(|e| error(&e.to_string()))?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), sep),
            ("[CLS]".into(), cls),
        )));
        inner
            .add_special_tokens(SPECIAL_TOKENS.map(|t| AddedToken::from(t, true)))
            .map_err(|e| error(&e.to_string()))?;
        Self::wrap(inner)
    }

    /// From a Hugging Face `tokenizer.json`.
    pub fn from_tokenizer_json(json: &[u8]) -> Result<Self, Error> {
        Self::wrap(Tokenizer::from_bytes(json).map_err(|e| error(&e.to_string()))?)
    }

    fn wrap(mut inner: Tokenizer) -> Result<Self, Error> {
        // Truncation and padding are chosen per call, never inherited from a file.
        inner
            .with_truncation(None)
            .map_err(|e| error(&e.to_string()))?;
        inner.with_padding(None);
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| error(&format!("the vocabulary has no {token}")))
        };
        Ok(Self {
            pad_id: id("[PAD]")?,
            cls_id: id("[CLS]")?,
            sep_id: id("[SEP]")?,
            mask_id: id("[MASK]")?,
            inner,
            truncating: Arc::default(),
        })
    }

    /// Refuses a tokenizer whose ids do not fit the model's embedding tables: a wordpiece id
    /// (its own or its template's special tokens) of `vocab_size` or more, or a segment id of
    /// `type_vocab_size` or more, in a single text and, with `pairs` (a reader's or encoder's
    /// base), in a pair. Checked when a model is loaded; the encoder would otherwise stop at
    /// the first question.
    pub fn check_fits(
        &self,
        vocab_size: usize,
        type_vocab_size: usize,
        pairs: bool,
    ) -> Result<(), Error> {
        let largest = self.inner.get_vocab(true).into_values().max().unwrap_or(0);
        let single = self.encode("a", None)?;
        let pair = match pairs {
            true => self.run(
                tokenizers::EncodeInput::Dual("a".into(), "b".into()),
                None,
                Truncation::LongestFirst,
            )?,
            false => single.clone(),
        };
        let ids = single.ids.iter().chain(&pair.ids);
        let largest = ids.copied().fold(largest, u32::max) as usize;
        if largest >= vocab_size {
            return Err(error(&format!(
                "it has token id {largest}, but the model's vocab_size is {vocab_size}: the \
                 tokenizer is not the model's"
            )));
        }
        let segments = single.type_ids.iter().chain(&pair.type_ids);
        let segment = segments.copied().max().unwrap_or(0) as usize;
        if segment >= type_vocab_size {
            return Err(error(&format!(
                "its template gives segment id {segment}, but the model's type_vocab_size is \
                 {type_vocab_size}: the tokenizer is not the model's"
            )));
        }
        Ok(())
    }

    /// The vocabulary size, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// WordPiece tokens of `text` without special tokens (for inspection and tests).
    pub fn tokens(&self, text: &str) -> Result<Vec<String>, Error> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| error(&e.to_string()))?;
        Ok(encoding.get_tokens().to_vec())
    }

    /// `[CLS] text [SEP]`. Without `max_length` a text too long for it is an error, never
    /// silently cut; with it the text is truncated to `max_length` tokens.
    pub fn encode(&self, text: &str, max_length: Option<usize>) -> Result<Encoded, Error> {
        self.run(
            tokenizers::EncodeInput::Single(text.into()),
            max_length,
            Truncation::LongestFirst,
        )
    }

    /// `[CLS] first [SEP] second [SEP]`, truncated to `max_length` tokens.
    pub fn encode_pair(
        &self,
        first: &str,
        second: &str,
        max_length: usize,
        truncation: Truncation,
    ) -> Result<Encoded, Error> {
        self.run(
            tokenizers::EncodeInput::Dual(first.into(), second.into()),
            Some(max_length),
            truncation,
        )
    }

    fn run(
        &self,
        input: tokenizers::EncodeInput,
        max_length: Option<usize>,
        truncation: Truncation,
    ) -> Result<Encoded, Error> {
        let encoding = match max_length {
            None => self.inner.encode(input, true),
            Some(max_length) => self
                .truncating_to(max_length, truncation)?
                .encode(input, true),
        }
        .map_err(|e| error(&e.to_string()))?;
        Ok(Encoded {
            ids: encoding.get_ids().to_vec(),
            type_ids: encoding.get_type_ids().to_vec(),
            special_tokens_mask: encoding.get_special_tokens_mask().to_vec(),
            offsets: encoding.get_offsets().to_vec(),
            sequence_ids: encoding.get_sequence_ids(),
        })
    }

    /// The copy of the tokenizer that truncates to `max_length` by `truncation`.
    fn truncating_to(
        &self,
        max_length: usize,
        truncation: Truncation,
    ) -> Result<Arc<Tokenizer>, Error> {
        let key = (max_length, truncation);
        let find = |made: &Truncating| {
            made.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, t)| Arc::clone(t))
        };
        // A panic elsewhere while holding the lock leaves the list whole: use it anyway.
        if let Some(found) = find(&self.truncating.read().unwrap_or_else(|e| e.into_inner())) {
            return Ok(found);
        }
        let mut made = self.truncating.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = find(&made) {
            return Ok(found);
        }
        let strategy = match truncation {
            Truncation::LongestFirst => TruncationStrategy::LongestFirst,
            Truncation::OnlySecond => TruncationStrategy::OnlySecond,
        };
        let mut tokenizer = self.inner.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| error(&e.to_string()))?;
        let tokenizer = Arc::new(tokenizer);
        made.push((key, Arc::clone(&tokenizer)));
        Ok(tokenizer)
    }

    /// Encodes texts and right-pads them with `[PAD]` into one batch. Texts longer than
    /// `max_length` tokens are truncated to it.
    pub fn encode_batch(&self, texts: &[&str], max_length: usize) -> Result<BertInput, Error> {
        let rows = texts
            .iter()
            .map(|t| self.encode(t, Some(max_length)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pad_encoded(&rows, self.pad_id))
    }
}

/// Right-pads encodings into one `[batch, seq]` input.
pub fn pad_encoded(rows: &[Encoded], pad_id: u32) -> BertInput {
    let rows: Vec<(&[u32], &[u32])> = rows.iter().map(|r| (&r.ids[..], &r.type_ids[..])).collect();
    BertInput::padded(&rows, pad_id)
}

fn error(message: &str) -> Error {
    Error::Tokenizer(message.to_string())
}
