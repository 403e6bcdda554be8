//! The `consumer` protocol's member metadata, as Kafka's `ConsumerProtocol` writes it: a
//! [`Subscription`] is the metadata a member sends with each protocol in JoinGroup, an
//! [`Assignment`] is what the leader sends for each member in SyncGroup. The coordinator
//! treats both as opaque bytes. All integers big-endian; strings are an `i16` length and
//! UTF-8; arrays an `i32` count; nullable bytes an `i32` length, -1 for null.
//!
//! ```text
//! Subscription v2: version i16 = 2, topics [string], user_data nullable bytes,
//!                  owned_partitions [topic string, partitions [i32]], generation_id i32
//! Assignment v1:   version i16 = 1, partitions [topic string, partitions [i32]],
//!                  user_data nullable bytes
//! ```
//! Decoding accepts versions 0 to 3 (v0 lacks owned partitions, v2 adds the generation, v3 a
//! rack id that is skipped) and refuses anything truncated or negative.

use std::collections::BTreeMap;

use super::{MemberSubscription, TopicPartition};

/// What a consumer subscribes to and owns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Assignor-specific bytes.
    pub user_data: Option<Vec<u8>>,
    /// Partitions owned from the last assignment.
    pub owned_partitions: Vec<TopicPartition>,
    /// Generation of that assignment, if known.
    pub generation: Option<i32>,
}

/// The partitions the leader gives one member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// Assigned partitions.
    pub partitions: Vec<TopicPartition>,
    /// Assignor-specific bytes.
    pub user_data: Option<Vec<u8>>,
}

impl Subscription {
    /// Encodes as version 2.
    ///
    /// ```
    /// use streamlog::group::assignor::protocol::Subscription;
    /// let s = Subscription { topics: vec!["t".into()], generation: Some(3), ..Default::default() };
    /// assert_eq!(Subscription::decode(&s.encode()), Some(s));
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&2i16.to_be_bytes());
        put_len(&mut out, self.topics.len());
        for topic in &self.topics {
            put_string(&mut out, topic);
        }
        put_bytes(&mut out, self.user_data.as_deref());
        put_partitions(&mut out, &self.owned_partitions);
        out.extend_from_slice(&self.generation.unwrap_or(-1).to_be_bytes());
        out
    }

    /// Decodes versions 0 to 3; `None` when the bytes are not a valid subscription.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return None;
        }
        let topics = (0..r.len()?)
            .map(|_| r.string())
            .collect::<Option<Vec<_>>>()?;
        let user_data = r.bytes()?;
        let owned_partitions = if version >= 1 {
            r.partitions()?
        } else {
            Vec::new()
        };
        let generation = if version >= 2 {
            Some(r.i32()?).filter(|g| *g >= 0)
        } else {
            None
        };
        Some(Self {
            topics,
            user_data,
            owned_partitions,
            generation,
        })
    }

    /// The subscription as an assignor input for `member_id`.
    pub fn into_member(self, member_id: impl Into<String>) -> MemberSubscription {
        MemberSubscription {
            member_id: member_id.into(),
            topics: self.topics,
            owned_partitions: self.owned_partitions,
            generation: self.generation,
        }
    }
}

impl Assignment {
    /// Encodes as version 1.
    ///
    /// ```
    /// use streamlog::group::assignor::protocol::Assignment;
    /// let a = Assignment { partitions: vec![("t".into(), 2)], user_data: None };
    /// assert_eq!(Assignment::decode(&a.encode()), Some(a));
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&1i16.to_be_bytes());
        put_partitions(&mut out, &self.partitions);
        put_bytes(&mut out, self.user_data.as_deref());
        out
    }

    /// Decodes versions 0 to 3; `None` when the bytes are not a valid assignment. Empty
    /// bytes (what the coordinator sends a member the leader left out) decode as nothing
    /// assigned.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() {
            return Some(Self::default());
        }
        let mut r = Reader(bytes);
        let version = r.i16()?;
        if !(0..=3).contains(&version) {
            return None;
        }
        let partitions = r.partitions()?;
        let user_data = r.bytes()?;
        Some(Self {
            partitions,
            user_data,
        })
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&i32::try_from(len).unwrap_or(i32::MAX).to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

fn put_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(b) => {
            put_len(out, b.len());
            out.extend_from_slice(b);
        }
    }
}

fn put_partitions(out: &mut Vec<u8>, partitions: &[TopicPartition]) {
    let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (topic, p) in partitions {
        by_topic.entry(topic).or_default().push(*p);
    }
    put_len(out, by_topic.len());
    for (topic, numbers) in by_topic {
        put_string(out, topic);
        put_len(out, numbers.len());
        for p in numbers {
            out.extend_from_slice(&i32::try_from(p).unwrap_or(i32::MAX).to_be_bytes());
        }
    }
}

/// A bounds-checked big-endian reader.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.i32()?).ok()
    }
    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn bytes(&mut self) -> Option<Option<Vec<u8>>> {
        match self.i32()? {
            -1 => Some(None),
            n => Some(Some(self.take(usize::try_from(n).ok()?)?.to_vec())),
        }
    }
    fn partitions(&mut self) -> Option<Vec<TopicPartition>> {
        let mut out = Vec::new();
        for _ in 0..self.len()? {
            let topic = self.string()?;
            for _ in 0..self.len()? {
                let p = u32::try_from(self.i32()?).ok()?;
                out.push((topic.clone(), p));
            }
        }
        Some(out)
    }
}
