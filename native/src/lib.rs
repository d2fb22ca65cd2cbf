//! What the `realm` command does, as a library: each command's flags and `run`, and the
//! file handling they share (model directories, index shards). `main.rs` only dispatches.

pub mod convert;
pub mod demo;
pub mod index;
pub mod model_dir;
pub mod search;
pub mod shard_file;
pub mod skeleton;
