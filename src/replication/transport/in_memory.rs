//! [`InMemoryTransport`]: brokers in one process exchanging envelopes through per-broker
//! queues, with seeded fault injection (loss, duplication, delay and reordering, cut
//! links, bounded queues) for deterministic simulation.
//!
//! Each destination has a queue ordered by (delivery time, send order). A message becomes
//! receivable once the clock reads at least its delivery time; with no delay that is at
//! once, in send order. Every random choice comes from one `fastrand::Rng` seeded at
//! construction and drawn under the lock in call order, so the same seed, clock and calls
//! give the same deliveries. With the [`SystemClock`](crate::SystemClock) and no faults
//! it is a plain in-process channel.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::clock::Clock;
use crate::error::Result;
use crate::replication::messages::BrokerId;

use super::codec::{decode_envelope, encode_envelope};
use super::faults::{Links, NetworkFaults};
use super::{DirectReceiver, Envelope, Transport};

/// Messages a destination's queue holds before further ones are dropped.
pub const DEFAULT_QUEUE_LIMIT: usize = 100_000;

/// The longest a `receive` blocks, whatever `wait` it is given: one day.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// Counters since the transport was made. At any time
/// `sent + duplicated == delivered + dropped + pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportStats {
    /// Envelopes handed to `send` (accepted ones; not counting duplicates).
    pub sent: u64,
    /// Envelopes returned by `receive`, duplicates included.
    pub delivered: u64,
    /// Envelopes lost: random loss, a cut link (at send or at delivery) or a full queue.
    pub dropped: u64,
    /// Extra copies made by the duplicate fault.
    pub duplicated: u64,
    /// Of the delivered, those a direct receiver took on the sending thread
    /// ([`Transport::set_direct_receiver`]).
    pub direct: u64,
}

/// An envelope in flight: the envelope itself, or its encoded frame.
#[derive(Debug)]
enum Payload {
    Plain(Envelope),
    Frame(Vec<u8>),
}

#[derive(Debug)]
struct Pending {
    from: BrokerId,
    payload: Payload,
}

/// Per destination: pending envelopes keyed by (delivery time in clock ms, send sequence).
type Queue = BTreeMap<(i64, u64), Pending>;

#[derive(Debug)]
struct State {
    rng: fastrand::Rng,
    faults: NetworkFaults,
    links: Links,
    encode_frames: bool,
    queue_limit: usize,
    queues: BTreeMap<BrokerId, Queue>,
    next_seq: u64,
    pending: usize,
    stats: TransportStats,
    /// Bumped by `wake_receivers`; a blocked receive returns when it changes.
    wake_generation: u64,
    /// Brokers that take messages on the sending thread when nothing delays them.
    direct: BTreeMap<BrokerId, Weak<dyn DirectReceiver>>,
    /// The latest time the clock has shown this transport: its own clock never steps
    /// back (a wall clock may), so a message is never held back or overtaken by one sent
    /// after it because the clock stepped back in between.
    latest_ms: i64,
}

impl State {
    /// The clock's `now`, or the latest time seen if the clock stepped back.
    fn monotonic(&mut self, now: i64) -> i64 {
        self.latest_ms = self.latest_ms.max(now);
        self.latest_ms
    }
}

/// An in-process network between brokers, deterministic for a given seed and clock.
///
/// ```
/// use std::sync::Arc;
/// use streamlog::ManualClock;
/// use streamlog::replication::messages::MetadataRequest;
/// use streamlog::replication::transport::{
///     Envelope, InMemoryTransport, Message, NetworkFaults, Request, Transport,
/// };
///
/// # fn main() -> streamlog::Result<()> {
/// let clock = ManualClock::new(0);
/// let net = InMemoryTransport::new(Arc::new(clock.clone()), 42);
/// net.set_faults(NetworkFaults { min_delay_ms: 10, max_delay_ms: 10, ..NetworkFaults::NONE })?;
/// let message = Message::Request {
///     correlation_id: 1,
///     request: Request::Metadata(MetadataRequest::default()),
/// };
/// net.send(Envelope { from: 1, to: 2, message })?;
/// assert!(net.receive(2, 10, None)?.is_empty()); // still in flight
/// assert_eq!(net.next_delivery_ms(), Some(10));
/// clock.set_ms(10);
/// assert_eq!(net.receive(2, 10, None)?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct InMemoryTransport {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    /// One condition variable per receiving broker (used with `state`), so a message
    /// wakes only the threads receiving for its destination.
    arrived: Mutex<BTreeMap<BrokerId, Arc<Condvar>>>,
}

impl InMemoryTransport {
    /// A network with no faults and no cut links, reading time from `clock`, whose random
    /// faults are drawn from an RNG seeded with `seed`.
    pub fn new(clock: Arc<dyn Clock>, seed: u64) -> Self {
        Self {
            clock,
            state: Mutex::new(State {
                rng: fastrand::Rng::with_seed(seed),
                faults: NetworkFaults::NONE,
                links: Links::default(),
                encode_frames: false,
                queue_limit: DEFAULT_QUEUE_LIMIT,
                queues: BTreeMap::new(),
                next_seq: 0,
                pending: 0,
                stats: TransportStats::default(),
                wake_generation: 0,
                direct: BTreeMap::new(),
                latest_ms: i64::MIN,
            }),
            arrived: Mutex::new(BTreeMap::new()),
        }
    }

    /// The condition variable receivers for `broker` wait on.
    fn arrived(&self, broker: BrokerId) -> Arc<Condvar> {
        self.arrived.lock().entry(broker).or_default().clone()
    }

    /// Applies `faults` to messages sent from now on; [`crate::Error::InvalidConfig`] if
    /// they are out of range (see [`NetworkFaults::validate`]).
    pub fn set_faults(&self, faults: NetworkFaults) -> Result<()> {
        faults.validate()?;
        self.state.lock().faults = faults;
        Ok(())
    }

    /// The faults in force.
    pub fn faults(&self) -> NetworkFaults {
        self.state.lock().faults
    }

    /// Cuts the link between `a` and `b` both ways: messages between them, sent or still
    /// in flight, are lost until [`heal`](Self::heal).
    pub fn partition(&self, a: BrokerId, b: BrokerId) {
        let mut state = self.state.lock();
        state.links.cut_one_way(a, b);
        state.links.cut_one_way(b, a);
        state.drop_cut_in_flight();
    }

    /// Cuts only `from → to` (an asymmetric partition): `to` still reaches `from`.
    /// Messages in flight from `from` to `to` are lost.
    pub fn cut_one_way(&self, from: BrokerId, to: BrokerId) {
        let mut state = self.state.lock();
        state.links.cut_one_way(from, to);
        state.drop_cut_in_flight();
    }

    /// Restores the link between `a` and `b` both ways (an isolation of either still holds).
    pub fn heal(&self, a: BrokerId, b: BrokerId) {
        let mut state = self.state.lock();
        state.links.heal_one_way(a, b);
        state.links.heal_one_way(b, a);
    }

    /// Cuts `broker` from every other broker, both ways, until
    /// [`reconnect`](Self::reconnect); messages in flight to or from it are lost.
    pub fn isolate(&self, broker: BrokerId) {
        let mut state = self.state.lock();
        state.links.isolate(broker);
        state.drop_cut_in_flight();
    }

    /// Ends the isolation of `broker` (links cut one by one stay cut).
    pub fn reconnect(&self, broker: BrokerId) {
        self.state.lock().links.reconnect(broker);
    }

    /// Restores every link and ends every isolation.
    pub fn heal_all(&self) {
        self.state.lock().links.heal_all();
    }

    /// Whether messages from `from` to `to` are lost now.
    pub fn is_cut(&self, from: BrokerId, to: BrokerId) -> bool {
        self.state.lock().links.is_cut(from, to)
    }

    /// When on, every message sent from now on is encoded to a frame and decoded on
    /// delivery, so all traffic exercises the codec.
    pub fn set_encode_frames(&self, on: bool) {
        self.state.lock().encode_frames = on;
    }

    /// How many messages a destination's queue holds before further ones are dropped
    /// (default [`DEFAULT_QUEUE_LIMIT`]).
    pub fn set_queue_limit(&self, limit: usize) {
        self.state.lock().queue_limit = limit;
    }

    /// The counters.
    pub fn stats(&self) -> TransportStats {
        self.state.lock().stats
    }

    /// How many messages are in flight, to any broker.
    pub fn pending(&self) -> usize {
        self.state.lock().pending
    }

    /// The earliest delivery time (clock ms) of a message in flight: a simulation
    /// advances its clock to it when nothing else is due.
    pub fn next_delivery_ms(&self) -> Option<i64> {
        let state = self.state.lock();
        state
            .queues
            .values()
            .filter_map(|queue| queue.first_key_value().map(|((at, _), _)| *at))
            .min()
    }

    /// Makes every `receive` blocked now return at once with whatever is ready (perhaps
    /// nothing): call it after moving a manual clock, or to stop receiving threads.
    pub fn wake_receivers(&self) {
        let mut state = self.state.lock();
        state.wake_generation = state.wake_generation.wrapping_add(1);
        for arrived in self.arrived.lock().values() {
            arrived.notify_all();
        }
    }
}

impl State {
    /// The receiver to hand `envelope` to on the sending thread: only when no fault could
    /// touch it and nothing is queued ahead of it for its broker, so that a direct
    /// delivery is one the queue would have made at once, in the same order.
    fn direct_receiver(&self, envelope: &Envelope) -> Option<Arc<dyn DirectReceiver>> {
        let receiver = self.direct.get(&envelope.to)?;
        let quiet = self.faults == NetworkFaults::NONE
            && !self.encode_frames
            && !self.links.is_cut(envelope.from, envelope.to)
            && self.queues.get(&envelope.to).is_none_or(Queue::is_empty);
        quiet.then(|| receiver.upgrade()).flatten()
    }

    /// Draws the faults for one message and queues its copies.
    fn enqueue(&mut self, now: i64, envelope: Envelope) -> Result<()> {
        let (from, to) = (envelope.from, envelope.to);
        let payload = if self.encode_frames {
            Payload::Frame(encode_envelope(&envelope)?)
        } else {
            Payload::Plain(envelope)
        };
        self.stats.sent += 1;
        let faults = self.faults;
        if self.links.is_cut(from, to) || self.chance(faults.drop_rate) {
            self.stats.dropped += 1;
            return Ok(());
        }
        let duplicate = if self.chance(faults.duplicate_rate) {
            self.stats.duplicated += 1;
            Some(match &payload {
                Payload::Plain(envelope) => Payload::Plain(envelope.clone()),
                Payload::Frame(frame) => Payload::Frame(frame.clone()),
            })
        } else {
            None
        };
        for payload in std::iter::once(payload).chain(duplicate) {
            let delay_ms = if faults.max_delay_ms > faults.min_delay_ms {
                self.rng.u64(faults.min_delay_ms..=faults.max_delay_ms)
            } else {
                faults.min_delay_ms
            };
            let at = now.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX));
            let limit = self.queue_limit;
            let queue = self.queues.entry(to).or_default();
            if queue.len() >= limit {
                self.stats.dropped += 1;
                continue;
            }
            queue.insert((at, self.next_seq), Pending { from, payload });
            self.next_seq += 1;
            self.pending += 1;
        }
        Ok(())
    }

    /// Drops the messages in flight on links cut now, counted as dropped: a cut loses
    /// what is on the wire, whenever the link heals.
    fn drop_cut_in_flight(&mut self) {
        let links = &self.links;
        let mut dropped = 0;
        for (&to, queue) in &mut self.queues {
            queue.retain(|_, pending| {
                let cut = links.is_cut(pending.from, to);
                dropped += usize::from(cut);
                !cut
            });
        }
        self.pending -= dropped;
        self.stats.dropped += dropped as u64;
    }

    /// True with probability `rate`; draws nothing when `rate` is 0.
    fn chance(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.f64() < rate
    }

    /// Takes up to `max` envelopes due at `now` for `broker`, dropping those whose link is
    /// cut now. An encoded frame that fails to decode is an error (a codec bug).
    fn take_ready(&mut self, broker: BrokerId, now: i64, max: usize) -> Result<Vec<Envelope>> {
        let mut out = Vec::new();
        let Some(queue) = self.queues.get_mut(&broker) else {
            return Ok(out);
        };
        while out.len() < max {
            let Some(entry) = queue.first_entry() else {
                break;
            };
            if entry.key().0 > now {
                break;
            }
            let pending = entry.remove();
            self.pending -= 1;
            if self.links.is_cut(pending.from, broker) {
                self.stats.dropped += 1;
                continue;
            }
            let envelope = match pending.payload {
                Payload::Plain(envelope) => envelope,
                Payload::Frame(frame) => decode_envelope(&frame)?,
            };
            self.stats.delivered += 1;
            out.push(envelope);
        }
        Ok(out)
    }

    /// The earliest delivery time for `broker`.
    fn next_for(&self, broker: BrokerId) -> Option<i64> {
        self.queues
            .get(&broker)?
            .first_key_value()
            .map(|((at, _), _)| *at)
    }
}

impl Transport for InMemoryTransport {
    fn send(&self, envelope: Envelope) -> Result<()> {
        let to = envelope.to;
        let direct = self.state.lock().direct_receiver(&envelope);
        let envelope = match direct {
            Some(receiver) => match receiver.take_direct(envelope) {
                None => {
                    let mut state = self.state.lock();
                    state.stats.sent += 1;
                    state.stats.delivered += 1;
                    state.stats.direct += 1;
                    return Ok(());
                }
                Some(given_back) => given_back,
            },
            None => envelope,
        };
        let mut state = self.state.lock();
        let now = state.monotonic(self.clock.now_ms());
        state.enqueue(now, envelope)?;
        drop(state);
        self.arrived(to).notify_all();
        Ok(())
    }

    fn set_direct_receiver(&self, broker: BrokerId, receiver: Option<Weak<dyn DirectReceiver>>) {
        let mut state = self.state.lock();
        match receiver {
            Some(receiver) => state.direct.insert(broker, receiver),
            None => state.direct.remove(&broker),
        };
    }

    /// Takes what is due for `broker`. With `wait`, blocks until something is due, the
    /// wait (real time) passes, or [`InMemoryTransport::wake_receivers`] is called. With
    /// a real clock, a delayed message wakes the receiver when it becomes due; with a
    /// manual clock, whoever moves the clock calls `wake_receivers`.
    fn receive(
        &self,
        broker: BrokerId,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<Envelope>> {
        let started = Instant::now();
        let deadline = wait.map(|w| started.checked_add(w.min(MAX_WAIT)).unwrap_or(started));
        let arrived = self.arrived(broker);
        let mut state = self.state.lock();
        let generation = state.wake_generation;
        loop {
            let now = state.monotonic(self.clock.now_ms());
            let ready = state.take_ready(broker, now, max)?;
            if !ready.is_empty() || max == 0 || state.wake_generation != generation {
                return Ok(ready);
            }
            let Some(deadline) = deadline else {
                return Ok(ready);
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(ready);
            }
            // Wake when the next message for `broker` falls due (real clock), or to
            // look again a millisecond later if it already has (manual clock moved).
            let until_due = state.next_for(broker).map(|at| {
                let ms = u64::try_from(at.saturating_sub(now)).unwrap_or(0).max(1);
                Duration::from_millis(ms)
            });
            let timeout = until_due.map_or(left, |due| due.min(left));
            arrived.wait_for(&mut state, timeout);
        }
    }
}
