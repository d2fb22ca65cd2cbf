//! REALM maths on burn, in folders by the paper's parts. The arrows between them point one
//! way, each folder using only those listed before it:
//!
//! 1. `error`, `rng`, `device`: the crate's error type, seeded randomness, the test device.
//! 2. [`linalg`]: matrix products packed per kernel (f32; bf16 on AMX or AVX-512 BF16) beside a plain reference.
//! 3. [`text`]: WordPiece, the corpus formats, the padded batch every encoder takes.
//! 4. [`checkpoint`]: safetensors and `block_records.npy` reading, family detection, the
//!    weight map and the strict loader that hands tensors to modules.
//! 5. [`index`]: maximum inner-product search (exact, int8, HNSW, re-scoring, the live
//!    index) and the shard file; it knows nothing of the model.
//! 6. [`model`]: BERT, the retriever's embedders, the knowledge-augmented encoder, the span
//!    reader, open-QA retrieve-then-read; uses `text`, `checkpoint` and `index`.
//! 7. [`train`]: the training machinery (schedules, optimiser, fresh heads, the reader's
//!    examples and loss), on top of `model`.
//! 8. [`qa`]: question sets, splits, answer matching, and reading passages for an answer;
//!    uses `train`'s reader features.
//! 9. `skeleton`: the walking-skeleton pipeline that every layer of the toolkit (native CLI,
//!    GPU kernels, wasm) runs end to end; it may use everything.
//!
//! This crate makes no GPU, wasm or file-system assumptions: the same code runs on burn's
//! CPU backend natively, in wasm32, and on any burn device a caller passes in.

pub mod device;
pub mod error;
pub mod rng;

pub mod linalg;

pub mod text;

pub mod checkpoint;

pub mod index;

pub mod model;

pub mod train;

pub mod qa;

pub mod skeleton;

pub use error::Error;
