//! [`GroupState`] and Kafka's legal transitions between states.

/// The state of a group (classic protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; offsets may still be stored.
    Empty,
    /// Waiting for members to (re)join before the next generation.
    PreparingRebalance,
    /// The generation is formed; waiting for the leader's assignment in SyncGroup.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Being removed; every request gets `CoordinatorNotAvailable`.
    Dead,
}

impl GroupState {
    /// Whether Kafka allows moving from `self` to `to`: Empty→PreparingRebalance|Dead,
    /// PreparingRebalance→CompletingRebalance|Empty|Dead, CompletingRebalance→Stable|
    /// PreparingRebalance|Dead, Stable→PreparingRebalance|Dead, Dead→Dead.
    ///
    /// ```
    /// use streamlog::group::coordinator::GroupState::*;
    /// assert!(Empty.can_transition_to(PreparingRebalance));
    /// assert!(!Empty.can_transition_to(Stable));
    /// assert!(Dead.can_transition_to(Dead));
    /// ```
    pub fn can_transition_to(self, to: GroupState) -> bool {
        use GroupState::*;
        match to {
            Empty => self == PreparingRebalance,
            PreparingRebalance => matches!(self, Empty | CompletingRebalance | Stable),
            CompletingRebalance => self == PreparingRebalance,
            Stable => self == CompletingRebalance,
            Dead => true,
        }
    }

    /// Whether a rebalance may start from this state (Empty, CompletingRebalance, Stable).
    pub fn can_rebalance(self) -> bool {
        GroupState::PreparingRebalance != self
            && self.can_transition_to(GroupState::PreparingRebalance)
    }
}

#[cfg(test)]
mod tests {
    use super::GroupState::{self, *};

    const ALL: [GroupState; 5] = [Empty, PreparingRebalance, CompletingRebalance, Stable, Dead];

    #[test]
    fn exactly_kafkas_transitions_are_legal() {
        let legal = [
            (Empty, PreparingRebalance),
            (Empty, Dead),
            (PreparingRebalance, CompletingRebalance),
            (PreparingRebalance, Empty),
            (PreparingRebalance, Dead),
            (CompletingRebalance, Stable),
            (CompletingRebalance, PreparingRebalance),
            (CompletingRebalance, Dead),
            (Stable, PreparingRebalance),
            (Stable, Dead),
            (Dead, Dead),
        ];
        for from in ALL {
            for to in ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    legal.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn can_rebalance_only_from_empty_completing_and_stable() {
        let yes: Vec<GroupState> = ALL.into_iter().filter(|s| s.can_rebalance()).collect();
        assert_eq!(yes, vec![Empty, CompletingRebalance, Stable]);
    }
}
