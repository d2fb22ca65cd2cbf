//! Text in, token ids out: Hugging Face's WordPiece, the skeleton's hash tokenizer, the
//! corpus formats passages arrive in, the padded batch every BERT forward takes, and the
//! sentences and salient spans (entities, dates) REALM's pre-training masks.
//! Uses only `error`; nothing here knows of tensors.

pub mod batch;
pub mod corpus;
pub mod hash_tokenizer;
pub mod salient;
pub mod sentences;
pub mod wordpiece;

pub use batch::BertInput;
