//! One file per `realm` subcommand: its flags (a clap `Args` struct) and its `run`.

pub mod ask;
pub mod bundle;
pub mod convert;
pub mod demo;
pub mod eval;
pub mod finetune;
pub mod finetune_retriever;
pub mod ict;
pub mod index;
pub mod pretrain;
pub mod serve;
pub mod skeleton;
pub mod tag;
