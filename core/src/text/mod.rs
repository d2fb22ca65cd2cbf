//! Text in, token ids out: Hugging Face's WordPiece, the skeleton's hash tokenizer, the
//! corpus formats passages arrive in, and the padded batch every BERT forward takes.
//! Uses only `error`; nothing here knows of tensors.

pub mod batch;
pub mod corpus;
pub mod hash_tokenizer;
pub mod wordpiece;

pub use batch::BertInput;
