//! [`PartitionState`]: a partition's replica set, leader, leader epoch and ISR as the
//! consensus store holds them (Kafka's `LeaderAndIsr` / `PartitionRegistration`).

use super::messages::BrokerId;

/// Whether a leader elected uncleanly has finished recovering its log (KIP-704).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LeaderRecoveryState {
    /// The leader was elected from the ISR (or has recovered).
    #[default]
    Recovered,
    /// The leader was elected from outside the ISR; its ISR is itself alone until it has
    /// recovered.
    Recovering,
}

/// A partition's assignment and leadership, changed only with compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionState {
    /// The assigned replicas, preferred leader first (S6: on distinct brokers).
    pub replicas: Vec<BrokerId>,
    /// The leader, or `None` when the partition is offline.
    pub leader: Option<BrokerId>,
    /// Bumped at every leader change; stamped on every batch the leader appends.
    pub leader_epoch: i32,
    /// The in-sync replicas, leader included. Never empty: when every ISR broker is gone
    /// the last one stays, with no leader (Kafka's rule), so a clean election can still
    /// find it when it returns.
    pub isr: Vec<BrokerId>,
    /// Bumped at every change of this state (ISR changes included).
    pub partition_epoch: i32,
    /// Whether an uncleanly elected leader is still recovering.
    pub leader_recovery: LeaderRecoveryState,
}

impl PartitionState {
    /// A new partition on `replicas`: the first is leader, every replica is in the ISR,
    /// leader epoch and partition epoch 0 (Kafka's `CreateTopics`).
    pub fn new(replicas: Vec<BrokerId>) -> Self {
        Self {
            leader: replicas.first().copied(),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            leader_recovery: LeaderRecoveryState::Recovered,
        }
    }

    /// The preferred leader: the first assigned replica.
    pub fn preferred_leader(&self) -> Option<BrokerId> {
        self.replicas.first().copied()
    }

    /// Whether `broker` is assigned a replica.
    pub fn is_replica(&self, broker: BrokerId) -> bool {
        self.replicas.contains(&broker)
    }

    /// Whether `broker` is in the ISR.
    pub fn in_isr(&self, broker: BrokerId) -> bool {
        self.isr.contains(&broker)
    }
}
