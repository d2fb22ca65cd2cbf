//! Ctrl-C during training: the first press asks the loop to finish its step, save a
//! checkpoint and exit 0; a second press ends the process at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set when the user asked the run to stop.
#[derive(Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Installs the Ctrl-C handler (once per process).
    pub fn install() -> anyhow::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let handler = flag.clone();
        ctrlc::set_handler(move || {
            if handler.swap(true, Ordering::SeqCst) {
                eprintln!("\nstopping now (second Ctrl-C); the last checkpoint is intact");
                std::process::exit(130);
            }
            eprintln!(
                "\nCtrl-C: finishing this step, then saving a checkpoint (Ctrl-C again to quit at once)"
            );
        })?;
        Ok(Self(flag))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
