//! REALM's asynchronously refreshed index (section 3.3): a background worker rebuilds the
//! MIPS index from a snapshot of the document embedder while training goes on, and swaps the
//! new index in whole. Training never waits for a build and never sees a half-built index: a
//! search holds an `Arc` of one finished index, and the swap replaces the `Arc`. Each step can
//! ask how stale its index is (steps since the snapshot it was built from).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use anyhow::Context;
use realm_core::index::MipsIndex;

/// A finished index and the training step whose weights built it.
pub struct Built {
    pub index: Box<dyn MipsIndex + Send + Sync>,
    pub step: usize,
}

/// When a refresh is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshSchedule {
    /// As soon as the previous build finished.
    BackToBack,
    /// Every N steps (a build still running then is left to finish; the request waits for it).
    Every(usize),
    /// Never: the index stays the one training started with.
    Never,
}

impl RefreshSchedule {
    /// `--refresh back-to-back|every:N|never`, and the ablation's `--stale-30x` stretching
    /// the interval (a back-to-back schedule becomes every 30 steps).
    pub fn parse(text: &str, stale_30x: bool) -> anyhow::Result<Self> {
        let schedule = match text {
            "back-to-back" => RefreshSchedule::BackToBack,
            "never" => RefreshSchedule::Never,
            other => {
                let n: usize = other
                    .strip_prefix("every:")
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .with_context(|| {
                        format!(
                            "--refresh is back-to-back, every:N (N >= 1) or never, not {other:?}"
                        )
                    })?;
                RefreshSchedule::Every(n)
            }
        };
        Ok(match (schedule, stale_30x) {
            (RefreshSchedule::BackToBack, true) => RefreshSchedule::Every(30),
            (RefreshSchedule::Every(n), true) => RefreshSchedule::Every(30 * n),
            (s, _) => s,
        })
    }
}

/// The index searches use now, the worker that builds the next one, and its schedule.
pub struct Refresher<S: Send + 'static> {
    /// The index searches use now (shared with evaluations that cannot borrow the refresher).
    pub current: Arc<RwLock<Arc<Built>>>,
    /// Wakes the worker; the snapshot itself waits in `pending` (one at most: a newer request
    /// replaces it).
    requests: SyncSender<()>,
    pending: Arc<Mutex<Option<(usize, S)>>>,
    busy: Arc<Mutex<bool>>,
    failure: Arc<Mutex<Option<String>>>,
    schedule: RefreshSchedule,
    /// The step of the newest request (shared: a checkpoint records it).
    pub last_request: Arc<AtomicUsize>,
    worker: Option<JoinHandle<()>>,
}

impl<S: Send + 'static> Refresher<S> {
    /// Starts the worker; `build(step, snapshot)` embeds the corpus with the snapshot and
    /// builds the index (any `MipsIndex`).
    pub fn start(
        initial: Built,
        schedule: RefreshSchedule,
        build: impl Fn(usize, S) -> anyhow::Result<Box<dyn MipsIndex + Send + Sync>> + Send + 'static,
    ) -> Self {
        let current = Arc::new(RwLock::new(Arc::new(initial)));
        let (requests, inbox): (SyncSender<()>, Receiver<()>) = sync_channel(1);
        let pending = Arc::new(Mutex::new(None));
        let busy = Arc::new(Mutex::new(false));
        let failure = Arc::new(Mutex::new(None));
        let worker = {
            let (current, pending, busy, failure) = (
                current.clone(),
                pending.clone(),
                busy.clone(),
                failure.clone(),
            );
            std::thread::spawn(move || {
                // A wake-up per request; the snapshot itself waits in `pending`, newest wins.
                while inbox.recv().is_ok() {
                    let Some((step, snapshot)) = pending.lock().expect("pending").take() else {
                        continue;
                    };
                    *busy.lock().expect("busy") = true;
                    match build(step, snapshot) {
                        Ok(index) => {
                            let built = Arc::new(Built { index, step });
                            *current.write().expect("index lock") = built;
                        }
                        Err(e) => {
                            failure
                                .lock()
                                .expect("failure")
                                .get_or_insert(format!("{e:#}"));
                        }
                    }
                    *busy.lock().expect("busy") = false;
                }
            })
        };
        Self {
            current,
            requests,
            pending,
            busy,
            failure,
            schedule,
            last_request: Arc::new(AtomicUsize::new(0)),
            worker: Some(worker),
        }
    }

    /// The index to search now (cheap: an `Arc` clone under a read lock held for no longer).
    pub fn current(&self) -> Arc<Built> {
        self.current.read().expect("index lock").clone()
    }

    /// Steps since the snapshot the current index was built from.
    pub fn staleness(&self, step: usize) -> usize {
        step.saturating_sub(self.current().step)
    }

    /// Puts back what a checkpoint recorded: the index searches used then, and the step of the
    /// newest request (later than `built.step` when a build was still to land; the caller asks
    /// for it again).
    pub fn restore(&mut self, built: Built, last_request: usize) {
        *self.current.write().expect("index lock") = Arc::new(built);
        self.last_request.store(last_request, Ordering::Relaxed);
    }

    /// Whether the worker is building now.
    pub fn building(&self) -> bool {
        *self.busy.lock().expect("busy")
    }

    /// After step `step`: asks for a rebuild from `snapshot()` when the schedule says so.
    /// Never blocks on a build: a request made while one runs waits in its place, replacing
    /// any older waiting one. An earlier build's failure is returned here.
    pub fn after_step(&mut self, step: usize, snapshot: impl FnOnce() -> S) -> anyhow::Result<()> {
        if let Some(error) = self.failure.lock().expect("failure").take() {
            anyhow::bail!("the index refresh failed: {error}");
        }
        let due = match self.schedule {
            RefreshSchedule::Never => false,
            RefreshSchedule::BackToBack => {
                !self.building() && self.pending.lock().expect("pending").is_none()
            }
            RefreshSchedule::Every(n) => step >= self.last_request.load(Ordering::Relaxed) + n,
        };
        if due {
            self.request(step, snapshot());
        }
        Ok(())
    }

    /// Queues a rebuild from `snapshot` taken at `step` (newest waiting request wins).
    pub fn request(&mut self, step: usize, snapshot: S) {
        self.last_request.store(step, Ordering::Relaxed);
        *self.pending.lock().expect("pending") = Some((step, snapshot));
        match self.requests.try_send(()) {
            Ok(()) | Err(TrySendError::Full(_)) => {} // a wake-up is already queued
            Err(TrySendError::Disconnected(_)) => {
                self.failure
                    .lock()
                    .expect("failure")
                    .get_or_insert("the refresh worker stopped".into());
            }
        }
    }
}

impl<S: Send + 'static> Drop for Refresher<S> {
    fn drop(&mut self) {
        // Closing the channel ends the worker after the build it is in. It is not waited for:
        // nothing reads what it builds now, and on a corpus of millions of passages a build
        // takes minutes that a run stopped with Ctrl-C (its checkpoint already saved) or a
        // finished one would otherwise spend before exiting. The process's end stops it.
        let (closed, _) = sync_channel(1);
        self.requests = closed;
        drop(self.worker.take());
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use realm_core::index::exact::ExactIndex;

    use super::*;

    /// An index of 64 rows whose first coordinate is `version`: every hit of one index scores
    /// the same against the query [1, 0], so a search that mixed two indexes would show it.
    fn versioned(version: usize) -> Box<dyn MipsIndex + Send + Sync> {
        let rows: Vec<f32> = (0..64)
            .flat_map(|i| [version as f32, i as f32 * 1e-3])
            .collect();
        Box::new(ExactIndex::new(rows, 2).unwrap())
    }

    fn slow_build(
        pause: Duration,
    ) -> impl Fn(usize, usize) -> anyhow::Result<Box<dyn MipsIndex + Send + Sync>> {
        move |_step, version| {
            std::thread::sleep(pause);
            Ok(versioned(version))
        }
    }

    #[test]
    fn searches_see_whole_indexes_in_order_while_swaps_happen_and_never_wait() {
        let initial = Built {
            index: versioned(0),
            step: 0,
        };
        let mut refresher = Refresher::start(
            initial,
            RefreshSchedule::BackToBack,
            slow_build(Duration::from_millis(200)),
        );
        let mut seen = Vec::new();
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        let mut step = 0;
        while started.elapsed() < Duration::from_millis(1300) {
            step += 1;
            let t = Instant::now();
            refresher.after_step(step, || step).unwrap();
            slowest = slowest.max(t.elapsed());
            let built = refresher.current();
            let hits = built.index.search(&[1.0, 0.0], 8).unwrap().remove(0);
            let version = hits[0].score;
            assert!(
                hits.iter().all(|h| h.score == version),
                "one index per search: {hits:?}"
            );
            assert!(built.step <= step && refresher.staleness(step) == step - built.step);
            seen.push(version as usize);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "versions only move forward"
        );
        let distinct = seen.iter().collect::<std::collections::BTreeSet<_>>().len();
        assert!(
            distinct >= 4,
            "the index was swapped while training ran: {distinct} versions"
        );
        assert!(
            slowest < Duration::from_millis(100),
            "a step waited {slowest:?} for a build of 200 ms"
        );
    }

    #[test]
    fn the_newest_waiting_request_wins() {
        let initial = Built {
            index: versioned(0),
            step: 0,
        };
        let mut refresher = Refresher::start(
            initial,
            RefreshSchedule::Never,
            slow_build(Duration::from_millis(100)),
        );
        for version in 1..=5 {
            refresher.request(version, version);
        }
        let started = Instant::now();
        while refresher.current().step != 5 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the last request was built"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let hits = refresher
            .current()
            .index
            .search(&[1.0, 0.0], 1)
            .unwrap()
            .remove(0);
        assert_eq!(hits[0].score, 5.0);
    }

    #[test]
    fn schedules_fire_as_asked_and_failures_surface() {
        let count = |schedule: RefreshSchedule| {
            let initial = Built {
                index: versioned(0),
                step: 0,
            };
            let mut refresher = Refresher::start(initial, schedule, slow_build(Duration::ZERO));
            let mut asked = 0;
            for step in 1..=90 {
                refresher
                    .after_step(step, || {
                        asked += 1;
                        step
                    })
                    .unwrap();
            }
            asked
        };
        assert_eq!(count(RefreshSchedule::Never), 0);
        assert_eq!(count(RefreshSchedule::Every(10)), 9);
        assert_eq!(count(RefreshSchedule::parse("every:3", true).unwrap()), 1);
        assert_eq!(
            RefreshSchedule::parse("back-to-back", true).unwrap(),
            RefreshSchedule::Every(30)
        );
        assert!(RefreshSchedule::parse("every:0", false).is_err());
        assert!(RefreshSchedule::parse("sometimes", false).is_err());

        let initial = Built {
            index: versioned(0),
            step: 0,
        };
        let mut failing = Refresher::start(initial, RefreshSchedule::Every(1), |_, _: usize| {
            anyhow::bail!("out of memory embedding passage 7")
        });
        failing.after_step(1, || 1).unwrap();
        let started = Instant::now();
        let error = loop {
            if let Err(e) = failing.after_step(2, || 2) {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(format!("{error}").contains("passage 7"), "{error}");
    }
}
