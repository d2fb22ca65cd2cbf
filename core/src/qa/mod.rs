//! Open-domain question answering data and scoring: the question sets' formats (`datasets`),
//! the held-out splits written down (`splits`), and answer matching as the paper's evaluation
//! computes it (`answer`: SQuAD normalisation, exact match, CuratedTrec's regexes, retrieval
//! recall), reading retrieved passages for the best span (`read`), the models from bytes
//! (`models`), the engine that answers a question end to end (`engine`) and its answer as
//! pages read it (`report`). Uses `text`, `model` and
//! `train`'s reader features; bytes in, no file system.

pub mod answer;
pub mod datasets;
pub mod engine;
pub mod models;
pub mod read;
pub mod report;
pub mod splits;
