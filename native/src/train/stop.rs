//! Ctrl-C during training: the first press asks the loop to finish its step, save a
//! checkpoint and exit 0; a second press ends the process at once. SIGTERM and SIGHUP (`kill`,
//! `timeout`, a batch scheduler's stop, a closed terminal) count as a press, except a SIGHUP
//! the process was started ignoring: a run under `nohup` outlives its terminal.

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
        let keep_ignoring_hangups = hangups_ignored();
        ctrlc::set_handler(move || {
            if handler.swap(true, Ordering::SeqCst) {
                eprintln!("\nstopping now (second stop request); the last checkpoint is intact");
                std::process::exit(130);
            }
            eprintln!(
                "\nstop requested (Ctrl-C, SIGTERM or SIGHUP): finishing this step, then saving a checkpoint (Ctrl-C again to quit at once)"
            );
        })?;
        if keep_ignoring_hangups {
            ignore_hangups();
        }
        Ok(Self(FLAG.get_or_init(|| flag).clone()))
    }

    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Whether SIGHUP is ignored now (before the handler is installed: as the process started).
pub(crate) fn hangups_ignored() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: reads the disposition of one signal into a zeroed struct; changes nothing.
        unsafe {
            let mut now: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut now) == 0
                && now.sa_sigaction == libc::SIG_IGN
        }
    }
    #[cfg(not(unix))]
    false
}

/// Ignores SIGHUP again (ctrlc's handler took it over).
pub(crate) fn ignore_hangups() {
    #[cfg(unix)]
    // SAFETY: sets the disposition of one signal.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}
