//! The pure parts of training, shared by every trainer (fine-tuning, REALM pre-training,
//! ICT): the learning-rate schedule (`schedule`), BERT's AdamW with its weight-decay groups
//! and clipping by the global gradient norm (`optim`), fresh heads on a pre-trained encoder
//! (`init`), the span reader's examples and loss (`reader`), and REALM's masked queries
//! (`masking`). Uses `model`, `checkpoint`, `text` and `qa`; the files, threads and signals of
//! a training run live in `realm-native`.

pub mod init;
pub mod masking;
pub mod optim;
pub mod reader;
pub mod schedule;
