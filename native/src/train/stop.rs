//! Ctrl-C during training: the first press asks the loop to finish its step, save a
//! checkpoint and exit 0; a second press ends the process at once. SIGTERM and SIGHUP (`kill`,
//! `timeout`, a batch scheduler's stop, a closed terminal) count as a press.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Set when the user asked the run to stop.
#[derive(Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// The process's flag, the Ctrl-C handler installed on the first call (a command that
    /// runs two training loops, such as `pretrain` with its warm-up, shares one).
    pub fn install() -> anyhow::Result<Self> {
        static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
        if let Some(flag) = FLAG.get() {
            return Ok(Self(flag.clone()));
        }
        let flag = Arc::new(AtomicBool::new(false));
        let handler = flag.clone();
        ctrlc::set_handler(move || {
            if handler.swap(true, Ordering::SeqCst) {
                eprintln!("\nstopping now (second stop request); the last checkpoint is intact");
                std::process::exit(130);
            }
            eprintln!(
                "\nstop requested (Ctrl-C or SIGTERM): finishing this step, then saving a checkpoint (Ctrl-C again to quit at once)"
            );
        })?;
        Ok(Self(FLAG.get_or_init(|| flag).clone()))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
