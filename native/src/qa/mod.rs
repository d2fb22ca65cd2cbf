//! Question answering on the desktop: the trained reader on disk (`reader_model`), the
//! question sets and their splits as files (`data`), and the three commands' engines:
//! fine-tuning, evaluation and asking.

pub mod data;
pub mod reader_model;
