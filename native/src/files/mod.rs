//! Files on disk: model directories read into a sentence model, and outputs written
//! atomically (temporary file, fsync, rename) or shards read through a memory map.

pub mod model_dir;
pub mod shard_file;
