//! The pure parts of training, shared by every trainer (fine-tuning, REALM pre-training,
//! ICT): the learning-rate schedule (`schedule`), BERT's AdamW with its weight-decay groups
//! and clipping by the global gradient norm (`optim`), fresh heads on a pre-trained encoder
//! (`init`), and the span reader's examples and loss (`reader`). Uses `model`, `checkpoint`,
//! `text` and `qa`; the files, threads and signals of a training run live in `realm-native`.

pub mod init;
pub mod optim;
pub mod reader;
pub mod schedule;
