//! Maximum inner-product search behind one interface, [`MipsIndex`]: retrieval code holds a
//! `dyn MipsIndex` and never knows whether it is exact on the CPU, a GPU kernel, quantised or
//! approximate. The plain reference (`reference`), the bounded top-k every scan fills
//! (`topk`), exact f32 (`exact`, with the AVX-512 scan), int8 (with the VNNI path), HNSW,
//! re-scoring, the live index that adds and removes documents, and the shard file. Uses
//! `error` (and `rng` in tests); knows nothing of the model.

pub mod exact;
pub mod hnsw;
pub mod int8;
#[cfg(target_arch = "x86_64")]
pub mod int8_vnni;
pub mod live;
pub mod reference;
pub mod rerank;
#[cfg(target_arch = "x86_64")]
pub mod scan_avx512;
pub mod shard;
pub mod topk;

pub use exact::{ExactIndex, MipsIndex};
pub use reference::Hit;
pub use topk::TopK;
