//! Checkpoints as named host tensors: safetensors and `config.json` bytes, numpy's
//! `block_records.npy`, which REALM family a set of tensor names is, and the strict loader
//! that hands each tensor to the module that asks for it once, and a module's parameters
//! by path (`module_io`) for exporting what training changed. Uses `error` and burn's
//! tensor types only; the modules that take the tensors live in `model`.

pub mod family;
pub mod module_io;
pub mod npy;
pub mod safetensors_file;
pub mod weights;
