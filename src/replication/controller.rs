//! The controller's decisions (S6), as pure functions: where a new topic's replicas go,
//! and what a partition's state becomes when brokers come and go — ISR members on gone
//! brokers removed, a new leader elected from the ISR (or, when the topic allows it, from
//! any live replica: an unclean election), the epoch bumped at every leader change, and
//! leadership handed back to the preferred replica once it is in sync again.
//!
//! The driver that owns the controller seat reads the live brokers and partition states
//! from the consensus store, calls these, and writes the results back with
//! compare-and-set.

use std::collections::BTreeSet;

use super::messages::BrokerId;
use super::partition_state::{LeaderRecoveryState, PartitionState};
use crate::error::{Error, Result};

/// At most this many replicas per partition (S6).
pub const MAX_REPLICATION_FACTOR: u16 = 10;

/// Places `partitions` partitions of `replication_factor` replicas on the `live` brokers
/// (Kafka's rack-unaware assignment): partition `p`'s leader is the broker `start + p`
/// positions along the sorted live brokers, so leaders spread round-robin, and its
/// followers follow at a shift that grows every `live.len()` partitions, so followers
/// spread too. Replicas of one partition are always on distinct brokers.
///
/// Errors ([`Error::InvalidReplicationFactor`]): a replication factor of 0, above
/// [`MAX_REPLICATION_FACTOR`], or above the number of live brokers.
pub fn place_replicas(
    partitions: u32,
    replication_factor: u16,
    live: &BTreeSet<BrokerId>,
    start: usize,
) -> Result<Vec<Vec<BrokerId>>> {
    let brokers: Vec<BrokerId> = live.iter().copied().collect();
    let invalid = |reason: &str| Error::InvalidReplicationFactor {
        requested: replication_factor,
        max: MAX_REPLICATION_FACTOR,
        live_brokers: brokers.len(),
        reason: reason.to_string(),
    };
    if replication_factor == 0 {
        return Err(invalid("a partition needs at least one replica"));
    }
    if replication_factor > MAX_REPLICATION_FACTOR {
        return Err(invalid("at most 10 replicas per partition"));
    }
    if usize::from(replication_factor) > brokers.len() {
        return Err(invalid(
            "more replicas than live brokers: two would share a broker",
        ));
    }
    let n = brokers.len();
    // Reduced first, so that any `start` (a hash) works without overflowing; the
    // values are those of `(start + p) % n` and `(start + p / n) % (n - 1)`.
    let others = (n - 1).max(1);
    let mut placement = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        let first = (start % n + p % n) % n;
        let shift = (start % others + (p / n) % others) % others;
        let mut replicas = vec![brokers[first]];
        for j in 0..usize::from(replication_factor) - 1 {
            // Kafka's replicaIndex: never `first` again, distinct for distinct `j`.
            let index = (first + 1 + (shift + j) % others) % n;
            replicas.push(brokers[index]);
        }
        placement.push(replicas);
    }
    Ok(placement)
}

/// How a partition got its leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// From the ISR: nothing acknowledged is lost.
    Clean,
    /// From outside the ISR (the topic allows it): records the old ISR acknowledged and
    /// the new leader never had are lost.
    Unclean,
    /// Handed back to the preferred replica (first assigned), which is in the ISR.
    Preferred,
    /// No eligible replica is live: the partition is offline.
    Offline,
}

/// A partition state the controller decided on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The state to write (its partition epoch already bumped).
    pub state: PartitionState,
    /// How the leader changed, when it did.
    pub election: Option<Election>,
}

/// The state `state` should move to given the `live` brokers, or `None` when it is
/// right as it is. `unclean` is the topic's `unclean.leader.election.enable`;
/// `rebalance` allows moving leadership back to the preferred replica.
///
/// - ISR members on brokers that are gone leave the ISR, but the ISR never becomes
///   empty: its last member stays so that a clean election can find it when it returns.
/// - A leader that is gone (or missing) is replaced by the first live ISR member in
///   assignment order; failing that, with `unclean`, by the first live replica, whose ISR
///   is then itself alone and whose recovery state `Recovering`; failing that the
///   partition goes offline (no leader).
/// - With `rebalance`, a live, in-sync preferred replica that does not lead takes over.
/// - Every leader change bumps the leader epoch; every change bumps the partition epoch.
pub fn decide(
    state: &PartitionState,
    live: &BTreeSet<BrokerId>,
    unclean: bool,
    rebalance: bool,
) -> Option<Decision> {
    let mut next = state.clone();
    let kept: Vec<BrokerId> = state
        .isr
        .iter()
        .copied()
        .filter(|b| live.contains(b))
        .collect();
    next.isr = if kept.is_empty() {
        state.isr.last().copied().into_iter().collect()
    } else {
        kept
    };
    let leader_live = state.leader.is_some_and(|l| live.contains(&l));
    let eligible = |b: &BrokerId| live.contains(b) && next.isr.contains(b);
    let mut election = None;
    if !leader_live {
        let clean = state.replicas.iter().copied().find(eligible);
        let any = state.replicas.iter().copied().find(|b| live.contains(b));
        (next.leader, election) = match (clean, any) {
            (Some(leader), _) => (Some(leader), Some(Election::Clean)),
            (None, Some(leader)) if unclean => {
                next.isr = vec![leader];
                next.leader_recovery = LeaderRecoveryState::Recovering;
                (Some(leader), Some(Election::Unclean))
            }
            _ => (None, Some(Election::Offline)),
        };
    } else if let Some(preferred) = state
        .preferred_leader()
        .filter(|p| rebalance && state.leader != Some(*p) && eligible(p))
    {
        next.leader = Some(preferred);
        election = Some(Election::Preferred);
    }
    if next.leader != state.leader {
        next.leader_epoch = state.leader_epoch + 1;
    } else if election == Some(Election::Offline) {
        // Still offline: nothing new to say.
        election = None;
    }
    if next == *state {
        return None;
    }
    next.partition_epoch = state.partition_epoch + 1;
    Some(Decision {
        state: next,
        election,
    })
}

#[cfg(test)]
mod tests;
