//! [`RemoteReplica`]: what a leader knows of one follower — its log end and start offsets
//! and when it was last caught up (Kafka's `Replica`), which decide ISR membership.

use super::messages::BrokerId;

/// A follower as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReplica {
    /// The follower's broker.
    pub broker: BrokerId,
    /// Its log end offset (the offset of its last fetch); `None` until it fetches.
    pub log_end_offset: Option<u64>,
    /// Its log start offset; `None` until it fetches.
    pub log_start_offset: Option<u64>,
    /// The last time it was caught up with the leader (ms); `None` for never.
    pub last_caught_up_ms: Option<i64>,
    /// The leader's log end offset at the follower's previous fetch.
    last_fetch_leader_log_end: Option<u64>,
    /// The time of the follower's previous fetch.
    last_fetch_ms: i64,
}

impl RemoteReplica {
    /// A follower not heard from: offsets unknown, never caught up.
    pub fn new(broker: BrokerId) -> Self {
        Self {
            broker,
            log_end_offset: None,
            log_start_offset: None,
            last_caught_up_ms: None,
            last_fetch_leader_log_end: None,
            last_fetch_ms: 0,
        }
    }

    /// Records a fetch at `fetch_offset` made at `now_ms` while the leader's log ended at
    /// `leader_log_end`. Kafka's rule: reaching the leader's current end makes the follower
    /// caught up now; reaching the end the leader had at the previous fetch makes it caught
    /// up as of that previous fetch.
    pub fn update_fetch_state(
        &mut self,
        fetch_offset: u64,
        log_start_offset: Option<u64>,
        now_ms: i64,
        leader_log_end: u64,
    ) {
        let caught_up_at = if fetch_offset >= leader_log_end {
            Some(now_ms)
        } else if self
            .last_fetch_leader_log_end
            .is_some_and(|previous| fetch_offset >= previous)
        {
            Some(self.last_fetch_ms)
        } else {
            None
        };
        if caught_up_at.is_some() {
            self.last_caught_up_ms = self.last_caught_up_ms.max(caught_up_at);
        }
        self.log_end_offset = Some(fetch_offset);
        if log_start_offset.is_some() {
            self.log_start_offset = log_start_offset;
        }
        self.last_fetch_leader_log_end = Some(leader_log_end);
        self.last_fetch_ms = now_ms;
    }

    /// Whether the follower is in sync: at the leader's log end, or caught up within the
    /// last `lag_ms` milliseconds (`replica.lag.time.max.ms`).
    pub fn is_caught_up(&self, leader_log_end: u64, now_ms: i64, lag_ms: i64) -> bool {
        self.log_end_offset == Some(leader_log_end)
            || self
                .last_caught_up_ms
                .is_some_and(|at| now_ms - at <= lag_ms)
    }

    /// Forgets the follower's offsets (a new leader knows nothing of them); it counts as
    /// caught up at `now_ms` if it is in the ISR, and as never caught up otherwise.
    pub fn reset(&mut self, now_ms: i64, in_isr: bool) {
        *self = Self::new(self.broker);
        self.last_caught_up_ms = in_isr.then_some(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    #[test]
    fn a_new_replica_knows_nothing() {
        let r = RemoteReplica::new(1);
        assert_eq!((r.log_end_offset, r.log_start_offset), (None, None));
        assert_eq!(r.last_caught_up_ms, None);
    }

    #[test]
    fn caught_up_time_credits_the_previous_fetch() {
        // ReplicaTest.testUpdateFetchState: fetch 5 (leader 10) → stays 0; fetch 10
        // (leader 15) → the previous fetch's time; fetch 15 (leader 15) → now.
        let mut r = RemoteReplica::new(1);
        r.update_fetch_state(5, Some(0), 100, 10);
        assert_eq!(r.last_caught_up_ms, None);
        r.update_fetch_state(10, Some(0), 200, 15);
        assert_eq!(r.last_caught_up_ms, Some(100));
        r.update_fetch_state(15, Some(0), 300, 15);
        assert_eq!(r.last_caught_up_ms, Some(300));
        assert_eq!(r.log_end_offset, Some(15));
    }

    #[test]
    fn at_the_log_end_a_replica_is_always_caught_up() {
        let mut r = RemoteReplica::new(1);
        r.update_fetch_state(10, Some(0), 1_000, 10);
        assert!(r.is_caught_up(10, 1_000_000, LAG));
    }

    #[test]
    fn behind_the_log_end_it_is_caught_up_only_within_the_lag() {
        let mut r = RemoteReplica::new(1);
        r.update_fetch_state(10, Some(0), 1_000, 10);
        assert!(r.is_caught_up(15, 1_000 + LAG, LAG));
        assert!(!r.is_caught_up(15, 1_000 + LAG + 1, LAG));
    }

    #[test]
    fn reset_keeps_isr_members_caught_up_as_of_now() {
        let mut r = RemoteReplica::new(1);
        r.update_fetch_state(10, Some(2), 1_000, 10);
        r.reset(5_000, true);
        assert_eq!((r.log_end_offset, r.last_caught_up_ms), (None, Some(5_000)));
        r.reset(6_000, false);
        assert_eq!(r.last_caught_up_ms, None);
    }
}
