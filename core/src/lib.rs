//! REALM maths on burn: the BERT encoder, the retriever's embedders and relevance scores,
//! exact top-k retrieval, and the walking-skeleton pipeline that every layer of the
//! toolkit (native CLI, GPU kernels, wasm) runs end to end.
//!
//! This crate makes no GPU, wasm or file-system assumptions: the same code runs on burn's
//! CPU backend natively, in wasm32, and on any burn device a caller passes in.

pub mod bert;
pub mod checkpoint;
pub mod config;
pub mod corpus;
pub mod device;
pub mod embedder;
pub mod encoder;
pub mod error;
pub mod family;
pub mod fast_math;
pub mod hash_tokenizer;
pub mod hnsw;
#[cfg(target_arch = "x86_64")]
pub mod int8_vnni;
pub mod live;
pub mod mips;
pub mod npy;
pub mod openqa;
pub mod quantized;
pub mod reader;
pub mod rerank;
pub mod retrieval;
#[cfg(target_arch = "x86_64")]
pub mod scan_avx512;
pub mod shard;
pub mod skeleton;
pub mod tokenizer;
pub mod weights;

pub use error::Error;
