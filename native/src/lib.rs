//! What the `realm` command does, as a library: each command's flags and `run` (`commands`),
//! and what they share: the embedding step (`embed`), the search step (`search`) and the
//! file handling (`files`: model directories, atomic writes, memory-mapped shards), a
//! training run's files and signals (`train`: checkpoints, resume, metrics, Ctrl-C) and the
//! question-answering engines (`qa`: the reader on disk, question files), and the frozen
//! encoders' `--precision` (`precision`). `main.rs` only
//! dispatches. Arrows: `commands` -> {`qa`, `train`, `embed`, `search`} -> `files`.

pub mod commands;
pub mod embed;
pub mod files;
pub mod precision;
pub mod qa;
pub mod search;
pub mod train;
