//! Files on disk: model directories read into a sentence model, and outputs written
//! atomically (temporary file, fsync, rename) or shards read through a memory map.

pub mod model_dir;
pub mod shard_file;

/// The demo corpus `scripts/setup.sh --demo-data` builds (10,033 Wikipedia leads, then SQuAD
/// dev's 2,067 paragraphs): every `--corpus` flag's default.
pub const DEMO_CORPUS: &str = "data/demo-corpus/passages.jsonl";

/// Its int8 index (`realm index` with MiniLM; `scripts/demo.sh` builds it): the default `--index`.
pub const DEMO_INDEX: &str = "data/demo-corpus.int8.shard";

/// The reader the repository ships: the default `--reader`.
pub const DEMO_READER: &str = "native/models/demo-reader";
