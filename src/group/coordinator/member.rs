//! A group member as the coordinator tracks it, and the deterministic member-id generator.

use super::requests::GroupProtocol;
use super::responses::ReplyTo;

/// One member of a group.
#[derive(Debug, Clone)]
pub(super) struct Member {
    pub id: String,
    pub client_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<GroupProtocol>,
    /// Assignment bytes of the current generation.
    pub assignment: Vec<u8>,
    /// A JoinGroup waiting for the phase to complete.
    pub awaiting_join: Option<ReplyTo>,
    /// A SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<ReplyTo>,
    /// Joined but no generation completed yet: bound by the new-member join timeout.
    pub is_new: bool,
    /// The member is removed when the clock passes this (unless waiting in a rebalance).
    pub heartbeat_deadline: i64,
    /// Join order: the first joiner leads, the earliest remaining takes over.
    pub seq: u64,
}

impl Member {
    /// The member's metadata for `protocol` (empty if it does not list it).
    pub fn metadata(&self, protocol: &str) -> Vec<u8> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    /// When the session check removes the member, if it can expire now: members waiting in
    /// a rebalance satisfy their heartbeat, except brand-new ones (bound by the join timeout).
    pub fn expiry(&self) -> Option<i64> {
        let waiting = self.awaiting_join.is_some() || self.awaiting_sync.is_some();
        (self.is_new || !waiting).then_some(self.heartbeat_deadline)
    }

    /// Restarts the session from `now_ms`.
    pub fn heartbeat(&mut self, now_ms: i64) {
        self.heartbeat_deadline = now_ms.saturating_add(i64::from(self.session_timeout_ms));
    }
}

/// Member ids `<client_id>-<uuid-like suffix>` from a seeded counter (splitmix64), so a run
/// is reproducible from its seed.
#[derive(Debug, Clone)]
pub(super) struct MemberIds {
    state: u64,
}

impl MemberIds {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A fresh id for a member of `client_id`.
    pub fn next(&mut self, client_id: &str) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        format!(
            "{client_id}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::MemberIds;

    #[test]
    fn ids_are_prefixed_distinct_and_reproducible() {
        let mut a = MemberIds::new(7);
        let mut b = MemberIds::new(7);
        let first = a.next("app");
        assert!(first.starts_with("app-"));
        assert_eq!(first.len(), "app-".len() + 36);
        assert_eq!(first, b.next("app"));
        assert_ne!(a.next("app"), first);
    }
}
