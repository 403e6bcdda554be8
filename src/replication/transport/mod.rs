//! How brokers exchange replication and group messages: the [`Transport`] trait, the
//! [`Message`]s it carries in [`Envelope`]s, their versioned binary form ([`encode`],
//! [`decode`]; layout in `codec.rs`), and [`InMemoryTransport`], an in-process network
//! with seeded fault injection for deterministic simulation.
//!
//! Files: `message.rs` (request and response enums, [`ApiKey`]), `codec.rs` (frame
//! layout), `wire.rs` (primitives), `replica_codec.rs` and `group_codec.rs` (bodies),
//! `in_memory.rs` ([`InMemoryTransport`]), `faults.rs` ([`NetworkFaults`], cut links).

use std::sync::Weak;
use std::time::Duration;

use crate::error::Result;
use crate::replication::messages::BrokerId;

mod codec;
mod faults;
mod group_codec;
mod in_memory;
mod message;
mod replica_codec;
mod wire;

pub use codec::{
    ENVELOPE_HEADER_BYTES, FORMAT_VERSION, MAX_FRAME_BYTES, MESSAGE_HEADER_BYTES, decode,
    decode_envelope, encode, encode_envelope,
};
pub use faults::NetworkFaults;
pub use in_memory::{DEFAULT_QUEUE_LIMIT, InMemoryTransport, TransportStats};
pub use message::{ApiKey, GroupRequest, GroupResponse, Message, Request, Response};

/// A [`Message`] addressed from one broker to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The sender.
    pub from: BrokerId,
    /// The receiver.
    pub to: BrokerId,
    /// What is sent.
    pub message: Message,
}

/// Carries [`Envelope`]s between brokers. Delivery is not guaranteed: a message may be
/// lost, delayed, duplicated or reordered, and the protocols above retry (a follower
/// fetches again, a member heartbeats again). A transport never interprets messages.
///
/// A loopback for one process, where every message is delivered at once:
///
/// ```
/// use std::collections::VecDeque;
/// use std::time::Duration;
/// use parking_lot::Mutex;
/// use streamlog::BrokerId;
/// use streamlog::replication::messages::MetadataRequest;
/// use streamlog::replication::transport::{Envelope, Message, Request, Transport};
///
/// #[derive(Default)]
/// struct Loopback(Mutex<VecDeque<Envelope>>);
///
/// impl Transport for Loopback {
///     fn send(&self, envelope: Envelope) -> streamlog::Result<()> {
///         self.0.lock().push_back(envelope);
///         Ok(())
///     }
///
///     fn receive(
///         &self,
///         broker: BrokerId,
///         max: usize,
///         _wait: Option<Duration>, // never blocks: nothing else could send meanwhile
///     ) -> streamlog::Result<Vec<Envelope>> {
///         let mut queue = self.0.lock();
///         let mut taken = Vec::new();
///         let mut i = 0;
///         while i < queue.len() && taken.len() < max {
///             if queue[i].to == broker {
///                 taken.extend(queue.remove(i));
///             } else {
///                 i += 1;
///             }
///         }
///         Ok(taken)
///     }
/// }
///
/// # fn main() -> streamlog::Result<()> {
/// let transport = Loopback::default();
/// let message = Message::Request {
///     correlation_id: 1,
///     request: Request::Metadata(MetadataRequest::default()),
/// };
/// transport.send(Envelope { from: 1, to: 2, message })?;
/// assert!(transport.receive(1, 10, None)?.is_empty());
/// assert_eq!(transport.receive(2, 10, None)?.len(), 1);
/// # Ok(()) }
/// ```
pub trait Transport: Send + Sync {
    /// Hands `envelope` to the network, fire and forget. `Ok` does not mean delivered; an
    /// error means the transport could not take it (e.g. it could not be encoded).
    fn send(&self, envelope: Envelope) -> Result<()>;

    /// Takes up to `max` envelopes addressed to `broker` that have arrived, in arrival
    /// order. When none has, waits up to `wait` (real time) for the first; `None` returns
    /// at once.
    fn receive(
        &self,
        broker: BrokerId,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<Envelope>>;

    /// Lets messages for `broker` be offered to `receiver` on the sending thread when the
    /// transport can deliver them at once (an in-process network with nothing delaying
    /// them), which spares the receiving thread a wake-up; `None` stops it. What the
    /// receiver gives back is queued for [`Transport::receive`] as usual. The default
    /// ignores the receiver: a transport between processes queues everything.
    fn set_direct_receiver(&self, broker: BrokerId, receiver: Option<Weak<dyn DirectReceiver>>) {
        let _ = (broker, receiver);
    }
}

/// A broker that can take some messages on the thread that sends them (see
/// [`Transport::set_direct_receiver`]).
///
/// A transport calls it holding none of its own locks, and a sender should hold none of
/// its own either: the receiver may send (answers, requests) while handling. It must not
/// make the sender wait: a node tries its lock and gives the message back when the lock
/// is taken, so that one slow broker never holds up another.
pub trait DirectReceiver: Send + Sync {
    /// Handles `envelope` now, or gives it back to be queued for [`Transport::receive`].
    fn take_direct(&self, envelope: Envelope) -> Option<Envelope>;
}

impl<T: Transport + ?Sized> Transport for std::sync::Arc<T> {
    fn send(&self, envelope: Envelope) -> Result<()> {
        (**self).send(envelope)
    }

    fn receive(
        &self,
        broker: BrokerId,
        max: usize,
        wait: Option<Duration>,
    ) -> Result<Vec<Envelope>> {
        (**self).receive(broker, max, wait)
    }

    fn set_direct_receiver(&self, broker: BrokerId, receiver: Option<Weak<dyn DirectReceiver>>) {
        (**self).set_direct_receiver(broker, receiver)
    }
}

#[cfg(test)]
mod tests;
