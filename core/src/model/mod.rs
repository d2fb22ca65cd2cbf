//! REALM's model (Guu et al., section 2-3) as burn modules: the BERT encoder (`bert`, with its
//! config and the CPU's fused elementwise kernels in `fast_math`; `frozen_bert`, its
//! inference-only twin on plain buffers and `linalg`'s kernels), the retriever's embedders
//! and relevance score f(x, z) (`embedder`), the knowledge-augmented encoder with its
//! masked-LM head and marginal likelihood (`encoder`), the span reader (`reader`),
//! retrieve-then-read open QA (`openqa`), and the strict load of a whole checkpoint family
//! (`strict`). Uses `text` (batches, tokenizer), `checkpoint` (the weight loader) and
//! `index` (hits); never the other way.

pub mod bert;
pub mod config;
pub mod embedder;
pub mod encoder;
#[cfg(feature = "flex")]
mod fast_autodiff;
pub mod fast_math;
pub mod frozen_bert;
pub mod openqa;
pub mod reader;
pub mod strict;
