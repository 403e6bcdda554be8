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
//!
//! Truncation: [`Partition::truncate_to`](crate::Partition::truncate_to) may cut records
//! whose appenders still wait here. While it runs no fsync starts, and one already in
//! flight proves nothing about the log as it is afterwards, so it does not move the
//! durable offset. When it ends, appenders whose records it cut fail with
//! [`Error::TruncatedBeforeDurable`]; if it fails half way (the log then closes), every
//! appender not yet durable fails with [`Error::Closed`].
//!
//! A failed fsync closes the log (see `Inner::poison_on_failure`): its syncer gets the
//! I/O error and every appender still waiting gets [`Error::Closed`]; a retried fsync
//! is never trusted.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar as StdCondvar, Mutex as StdMutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Inner;
use crate::error::{Error, Result};

/// How far the log is known durable, and whether an fsync is in flight.
///
/// Uses `std`'s mutex and condvar, not `parking_lot`'s: when an fsync ends, `parking_lot`'s
/// `notify_all` moves the waiters onto the mutex and wakes them one at a time, each after
/// the one before has run, so on two cores eight appenders took longer to come back than
/// the gathering waits, and fsyncs covered about six of them. `std` wakes them all at
/// once and every fsync covers all eight (8 threads: 3.3x → 5.0x one thread's rate).
#[derive(Debug, Default)]
pub(super) struct SyncState {
    state: StdMutex<Synced>,
    /// An fsync, a truncation or a close ended.
    changed: StdCondvar,
    /// As many appenders wait as the gathering syncer waits for.
    arrived: StdCondvar,
}

#[derive(Debug, Default)]
struct Synced {
    /// Every offset below this is on stable storage.
    durable_offset: u64,
    /// A thread is fsyncing (or gathering appenders for its fsync) now.
    in_flight: bool,
    /// The syncer is gathering appenders (waiting on `arrived`).
    gathering: bool,
    /// Every appender inside `sync_to` (the syncer's included).
    waiting: Vec<Waiter>,
    /// Tickets handed out so far: a waiter's identity in `waiting`.
    tickets: u64,
    /// Truncations begun or ended so far: an fsync that spans either does not count.
    truncations: u64,
    /// A truncation is under way: no fsync starts until it ends.
    truncating: bool,
    /// The most appenders waiting for offsets past the durable one at once since the last
    /// fsync began.
    peak: usize,
    /// How long the last fsync took.
    last_sync: Duration,
    /// `close` has finished its final flush (or found the log failed): appenders waiting
    /// for it stop waiting.
    close_ended: bool,
    /// A group-commit fsync failed: nothing past `durable_offset` may be vouched for, not
    /// even by a later fsync that succeeds (`close` then does not flush).
    fsync_failed: bool,
}

/// An appender's place in the queue for durability; pass it to `Inner::sync_to`.
#[must_use]
pub(super) struct DurableWait {
    ticket: u64,
    offset: u64,
}

/// An appender waiting in `sync_to`.
#[derive(Debug)]
struct Waiter {
    ticket: u64,
    /// Every offset below this must be durable.
    offset: u64,
    /// Settled by a truncation, if one ended while it waited.
    outcome: Option<Outcome>,
}

/// How a truncation settled a waiting appender.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Its records were durable before the truncation: the append succeeded.
    Durable,
    /// The truncation cut its records; the log now ends at `log_end`.
    Cut { log_end: u64 },
    /// The truncation failed and closed the log before the records were durable.
    Closed,
}

impl Synced {
    /// Appenders waiting for offsets the last fsync did not make durable.
    fn uncovered(&self) -> usize {
        self.waiting
            .iter()
            .filter(|w| w.outcome.is_none() && w.offset > self.durable_offset)
            .count()
    }

    fn outcome(&self, ticket: u64) -> Option<Outcome> {
        self.waiting
            .iter()
            .find(|w| w.ticket == ticket)
            .and_then(|w| w.outcome)
    }

    /// Settles every unsettled waiter: durable ones succeed, the rest get `lost`'s answer
    /// (or keep waiting when it has none).
    fn settle(&mut self, lost: impl Fn(&Waiter) -> Option<Outcome>) {
        let durable = self.durable_offset;
        for waiter in self.waiting.iter_mut().filter(|w| w.outcome.is_none()) {
            waiter.outcome = if waiter.offset <= durable {
                Some(Outcome::Durable)
            } else {
                lost(waiter)
            };
        }
    }
}

impl SyncState {
    fn lock(&self) -> MutexGuard<'_, Synced> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn new(durable_offset: u64) -> Self {
        Self {
            state: StdMutex::new(Synced {
                durable_offset,
                ..Synced::default()
            }),
            changed: StdCondvar::new(),
            arrived: StdCondvar::new(),
        }
    }

    /// Waits until an fsync, a truncation or a close ends.
    fn wait_for_change<'a>(&self, state: MutexGuard<'a, Synced>) -> MutexGuard<'a, Synced> {
        self.changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that every offset below `offset` is durable.
    pub(super) fn mark_durable(&self, offset: u64) {
        let mut state = self.lock();
        state.durable_offset = state.durable_offset.max(offset);
    }

    /// A truncation begins: no fsync starts until it ends, and one in flight no longer
    /// counts.
    pub(super) fn begin_truncation(&self) {
        let mut state = self.lock();
        state.truncating = true;
        state.truncations += 1;
    }

    /// The truncation begun last ended: records at or past `kept_below` are gone and the
    /// log ends at `log_end`. Appenders waiting for cut records fail.
    pub(super) fn end_truncation(&self, kept_below: u64, log_end: u64) {
        let mut state = self.lock();
        state.settle(|w| (w.offset > kept_below).then_some(Outcome::Cut { log_end }));
        state.durable_offset = state.durable_offset.min(kept_below);
        state.truncating = false;
        state.truncations += 1;
        self.changed.notify_all();
    }

    /// `close` ended: its final flush (if it ran and succeeded) has marked everything
    /// written before it durable. Appenders that waited for it look once more.
    pub(super) fn close_ended(&self) {
        self.lock().close_ended = true;
        self.changed.notify_all();
    }

    /// For `close`, which holds the writer lock and has closed the log (so no fsync starts
    /// any more): waits for a group-commit fsync still in flight to end, and returns
    /// whether one failed. Its flush would otherwise be a retried fsync, never trusted.
    pub(super) fn wait_for_fsyncs(&self) -> bool {
        let mut state = self.lock();
        while state.in_flight {
            state = self.wait_for_change(state);
        }
        state.fsync_failed
    }

    /// The truncation begun last failed and closed the log: appenders not yet durable
    /// fail.
    pub(super) fn abort_truncation(&self) {
        let mut state = self.lock();
        state.settle(|_| Some(Outcome::Closed));
        state.truncating = false;
        state.truncations += 1;
        self.changed.notify_all();
    }
}

impl Inner {
    /// Registers an appender that needs every offset below `offset` durable. Called
    /// with the writer lock held, so a truncation cannot slip between the append and the
    /// registration unseen.
    pub(super) fn register_durable_wait(&self, offset: u64) -> DurableWait {
        let mut state = self.sync.lock();
        let ticket = state.tickets;
        state.tickets += 1;
        state.waiting.push(Waiter {
            ticket,
            offset,
            outcome: None,
        });
        let uncovered = state.uncovered();
        state.peak = state.peak.max(uncovered);
        // Only the arrival the syncer waits for wakes it: one wake-up, not one per appender.
        if state.gathering && uncovered >= state.peak {
            self.sync.arrived.notify_one();
        }
        DurableWait { ticket, offset }
    }

    /// Returns once the offsets `wait` registered are durable, sharing fsyncs with
    /// concurrent callers (group commit), or fails if a truncation cut them first.
    pub(super) fn sync_to(&self, wait: DurableWait) -> Result<()> {
        let (mut state, result) = self.sync_locked(self.sync.lock(), wait.ticket, wait.offset);
        if let Some(at) = state.waiting.iter().position(|w| w.ticket == wait.ticket) {
            state.waiting.swap_remove(at);
        }
        result
    }

    fn sync_locked<'a>(
        &'a self,
        mut state: MutexGuard<'a, Synced>,
        ticket: u64,
        offset: u64,
    ) -> (MutexGuard<'a, Synced>, Result<()>) {
        loop {
            match state.outcome(ticket) {
                Some(Outcome::Durable) => return (state, Ok(())),
                Some(Outcome::Cut { log_end }) => {
                    let error = Error::TruncatedBeforeDurable {
                        append_end: offset,
                        log_end,
                    };
                    return (state, Err(error));
                }
                Some(Outcome::Closed) => {
                    let error = Error::Closed {
                        path: self.dir.clone(),
                    };
                    return (state, Err(error));
                }
                None => {}
            }
            if state.durable_offset >= offset {
                return (state, Ok(()));
            }
            if let Err(error) = self.ensure_open() {
                // A `close` flushes everything appended before it (appenders register
                // under the writer lock it then takes): wait for that flush rather than
                // fail records it makes durable.
                if self.closing.load(Ordering::Acquire) && !state.close_ended {
                    state = self.sync.wait_for_change(state);
                    continue;
                }
                // A failed fsync or truncation closed the log: these bytes stay unvouched.
                return (state, Err(error));
            }
            if state.in_flight || state.truncating {
                state = self.sync.wait_for_change(state);
                continue;
            }
            state.in_flight = true;
            state = self.gather(state);
            if state.truncating {
                // A truncation began while gathering: an fsync now could count for
                // records it is cutting. Wait for it to end.
                state.in_flight = false;
                self.sync.changed.notify_all();
                continue;
            }
            let from = state.durable_offset;
            // Everything below the log end has been written before we read it.
            let target = self.log_end_offset.load(Ordering::Acquire);
            let truncations = state.truncations;
            state.peak = state.uncovered();
            let started = Instant::now();
            drop(state);
            let result = {
                // A panicking storage (it is pluggable) must not leave `in_flight` set and
                // every later appender waiting forever: it counts as a failed sync.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.segments_holding(from)
                        .iter()
                        .try_for_each(|s| s.sync_log())
                }))
                .unwrap_or_else(|_| {
                    Err(Error::io(
                        &self.dir,
                        std::io::Error::other("the storage panicked during a sync"),
                    ))
                })
            };
            state = self.sync.lock();
            state.last_sync = started.elapsed();
            state.in_flight = false;
            state.fsync_failed |= result.is_err();
            if result.is_ok() && state.truncations == truncations {
                state.durable_offset = state.durable_offset.max(target);
            }
            self.sync.changed.notify_all();
            if let Err(error) = self.poison_on_failure(result) {
                return (state, Err(error));
            }
        }
    }

    /// Waits until as many appenders wait as did during the last fsync, for at most a
    /// quarter of its time: the appenders it released are on their way back, and one
    /// fsync for all of them beats two for half each.
    fn gather<'a>(&'a self, mut state: MutexGuard<'a, Synced>) -> MutexGuard<'a, Synced> {
        let deadline = Instant::now() + state.last_sync / 4;
        state.gathering = true;
        while state.uncovered() < state.peak {
            let left = deadline.saturating_duration_since(Instant::now());
            let (guard, wait) = self
                .sync
                .arrived
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner);
            state = guard;
            if wait.timed_out() {
                break;
            }
        }
        state.gathering = false;
        state
    }

    /// Flushes when the interval policy says it is time (called by the flusher thread).
    fn flush_if_due(&self, interval: Duration) -> Result<()> {
        let mut writer = self.writer.lock();
        if self.closed.load(Ordering::Acquire) || writer.unflushed_messages == 0 {
            return Ok(());
        }
        let now = self.env.clock.now_ms();
        if interval_passed(writer.last_flush_ms, now, interval) {
            self.flush_locked(&mut writer)?;
        }
        Ok(())
    }
}

/// Whether `interval` has passed from `since_ms` to `now_ms` (clock ms). An interval too
/// long for the clock's milliseconds (`Duration::MAX`: "practically never") never passes.
pub(super) fn interval_passed(since_ms: i64, now_ms: i64, interval: Duration) -> bool {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_sub(since_ms) >= interval_ms
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
