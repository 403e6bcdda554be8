//! Durability: group commit for [`FlushPolicy::Always`](crate::FlushPolicy::Always) and the
//! background flusher for [`FlushPolicy::Interval`](crate::FlushPolicy::Interval).
//!
//! Group commit: an appender that needs its bytes durable either finds them durable
//! already, waits while another thread's fsync is in flight (that fsync may cover it), or
//! becomes the syncer: it fsyncs every segment that may hold unsynced bytes up to the log
//! end *at that moment*, which covers every append that finished before it started. So N
//! concurrent appenders share one fsync instead of paying N.
//!
//! Gathering: when an fsync ends, the appenders it covered go back to append again while
//! those it did not cover start the next one at once; left alone, the appenders split into
//! two groups that take turns, each fsync covering half of them. So the syncer first waits
//! (briefly: at most a quarter of the last fsync's time) until as many appenders are
//! waiting as there were during the last fsync.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::Inner;
use crate::error::Result;

/// How far the log is known durable, and whether an fsync is in flight.
#[derive(Debug, Default)]
pub(super) struct SyncState {
    state: Mutex<Synced>,
    /// An fsync ended.
    changed: Condvar,
    /// An appender began waiting (for a syncer that is gathering).
    arrived: Condvar,
}

#[derive(Debug, Default)]
struct Synced {
    /// Every offset below this is on stable storage.
    durable_offset: u64,
    /// A thread is fsyncing (or gathering appenders for its fsync) now.
    in_flight: bool,
    /// The offset each appender inside `sync_to` needs durable (the syncer's included).
    waiting: Vec<u64>,
    /// The most appenders waiting for offsets past the durable one at once since the last
    /// fsync began.
    peak: usize,
    /// How long the last fsync took.
    last_sync: Duration,
}

impl Synced {
    /// Appenders waiting for offsets the last fsync did not make durable.
    fn uncovered(&self) -> usize {
        self.waiting
            .iter()
            .filter(|&&o| o > self.durable_offset)
            .count()
    }
}

impl SyncState {
    pub(super) fn new(durable_offset: u64) -> Self {
        Self {
            state: Mutex::new(Synced {
                durable_offset,
                ..Synced::default()
            }),
            changed: Condvar::new(),
            arrived: Condvar::new(),
        }
    }

    /// Records that every offset below `offset` is durable.
    pub(super) fn mark_durable(&self, offset: u64) {
        let mut state = self.state.lock();
        state.durable_offset = state.durable_offset.max(offset);
    }

    /// After a truncation nothing at or past `offset` exists, durable or not.
    pub(super) fn truncate_to(&self, offset: u64) {
        let mut state = self.state.lock();
        state.durable_offset = state.durable_offset.min(offset);
    }
}

impl Inner {
    /// Returns once every offset below `offset` is durable, sharing fsyncs with
    /// concurrent callers (group commit).
    pub(super) fn sync_to(&self, offset: u64) -> Result<()> {
        let mut state = self.sync.state.lock();
        state.waiting.push(offset);
        state.peak = state.peak.max(state.uncovered());
        self.sync.arrived.notify_one();
        let result = self.sync_locked(&mut state, offset);
        if let Some(at) = state.waiting.iter().position(|&o| o == offset) {
            state.waiting.swap_remove(at);
        }
        result
    }

    fn sync_locked(&self, state: &mut MutexGuard<'_, Synced>, offset: u64) -> Result<()> {
        loop {
            if state.durable_offset >= offset {
                return Ok(());
            }
            if state.in_flight {
                self.sync.changed.wait(state);
                continue;
            }
            state.in_flight = true;
            self.gather(state);
            let from = state.durable_offset;
            // Everything below the log end has been written before we read it.
            let target = self.log_end_offset.load(Ordering::Acquire);
            state.peak = state.uncovered();
            let started = Instant::now();
            let result = MutexGuard::unlocked(state, || {
                self.segments_holding(from)
                    .iter()
                    .try_for_each(|s| s.sync_log())
            });
            state.last_sync = started.elapsed();
            state.in_flight = false;
            if result.is_ok() {
                state.durable_offset = state.durable_offset.max(target);
            }
            self.sync.changed.notify_all();
            result?;
        }
    }

    /// Waits until as many appenders wait as did during the last fsync, for at most a
    /// quarter of its time: the appenders it released are on their way back, and one
    /// fsync for all of them beats two for half each.
    fn gather(&self, state: &mut MutexGuard<'_, Synced>) {
        let deadline = Instant::now() + state.last_sync / 4;
        while state.uncovered() < state.peak {
            if self.sync.arrived.wait_until(state, deadline).timed_out() {
                break;
            }
        }
    }

    /// Flushes when the interval policy says it is time (called by the flusher thread).
    fn flush_if_due(&self, interval: Duration) -> Result<()> {
        let mut writer = self.writer.lock();
        if self.closed.load(Ordering::Acquire) || writer.unflushed_messages == 0 {
            return Ok(());
        }
        let now = self.env.clock.now_ms();
        if now.saturating_sub(writer.last_flush_ms) >= interval.as_millis() as i64 {
            self.flush_locked(&mut writer)?;
        }
        Ok(())
    }
}

/// A background thread that flushes a log every interval until stopped.
#[derive(Debug)]
pub(super) struct Flusher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts flushing `log` every `interval` (by the wall clock; the log's own clock
    /// decides whether a flush is due).
    pub(super) fn start(log: Weak<Inner>, interval: Duration) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("streamlog-flusher".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut stopped = stopped.lock();
                while !*stopped {
                    wake.wait_for(&mut stopped, interval);
                    if *stopped {
                        break;
                    }
                    let Some(log) = log.upgrade() else { break };
                    // An error here resurfaces on the next append or explicit flush.
                    let _ = log.flush_if_due(interval);
                }
            })
            .ok();
        Self { stop, thread }
    }

    /// Stops the thread and waits for it.
    pub(super) fn stop(mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
