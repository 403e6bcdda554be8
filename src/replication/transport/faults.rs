//! The faults [`super::InMemoryTransport`] injects: random loss, duplication and delay
//! ([`NetworkFaults`]), and cut links between brokers ([`Links`]: partitions, one-way cuts,
//! isolated brokers).

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::replication::messages::BrokerId;

/// Random faults applied to every message sent, drawn from the transport's seeded RNG.
///
/// ```
/// use streamlog::replication::transport::NetworkFaults;
/// let lossy = NetworkFaults { drop_rate: 0.1, ..NetworkFaults::default() };
/// assert!(lossy.validate().is_ok());
/// assert!(NetworkFaults { drop_rate: 1.5, ..lossy }.validate().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NetworkFaults {
    /// Probability in `[0, 1]` that a message is lost.
    pub drop_rate: f64,
    /// Probability in `[0, 1]` that a delivered message arrives twice (the copy gets its
    /// own delay).
    pub duplicate_rate: f64,
    /// Smallest delay of a message, in clock milliseconds.
    pub min_delay_ms: u64,
    /// Largest delay of a message, in clock milliseconds; a delay is drawn uniformly from
    /// `[min_delay_ms, max_delay_ms]`, so messages sent close together may be reordered.
    pub max_delay_ms: u64,
}

impl NetworkFaults {
    /// No faults: every message arrives once, at once, in order.
    pub const NONE: NetworkFaults = NetworkFaults {
        drop_rate: 0.0,
        duplicate_rate: 0.0,
        min_delay_ms: 0,
        max_delay_ms: 0,
    };

    /// [`Error::InvalidConfig`] unless both rates are in `[0, 1]` and
    /// `min_delay_ms <= max_delay_ms`.
    pub fn validate(&self) -> Result<()> {
        for (name, rate) in [
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(Error::InvalidConfig {
                    name,
                    reason: format!("must be in [0, 1], got {rate}"),
                });
            }
        }
        if self.min_delay_ms > self.max_delay_ms {
            return Err(Error::InvalidConfig {
                name: "min_delay_ms",
                reason: format!(
                    "{} is above max_delay_ms {}",
                    self.min_delay_ms, self.max_delay_ms
                ),
            });
        }
        Ok(())
    }
}

/// Which links between brokers are cut. A broker always reaches itself.
#[derive(Debug, Clone, Default)]
pub(super) struct Links {
    /// Directed links cut: (from, to).
    cut: BTreeSet<(BrokerId, BrokerId)>,
    /// Brokers cut from every other.
    isolated: BTreeSet<BrokerId>,
}

impl Links {
    /// Cuts `from → to`.
    pub(super) fn cut_one_way(&mut self, from: BrokerId, to: BrokerId) {
        if from != to {
            self.cut.insert((from, to));
        }
    }

    /// Restores `from → to` (an isolation of either end still holds).
    pub(super) fn heal_one_way(&mut self, from: BrokerId, to: BrokerId) {
        self.cut.remove(&(from, to));
    }

    pub(super) fn isolate(&mut self, broker: BrokerId) {
        self.isolated.insert(broker);
    }

    pub(super) fn reconnect(&mut self, broker: BrokerId) {
        self.isolated.remove(&broker);
    }

    pub(super) fn heal_all(&mut self) {
        self.cut.clear();
        self.isolated.clear();
    }

    /// Whether a message from `from` to `to` is lost.
    pub(super) fn is_cut(&self, from: BrokerId, to: BrokerId) -> bool {
        from != to
            && (self.cut.contains(&(from, to))
                || self.isolated.contains(&from)
                || self.isolated.contains(&to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_per_direction_and_isolation_is_separate() {
        let mut links = Links::default();
        links.cut_one_way(1, 2);
        assert!(links.is_cut(1, 2));
        assert!(!links.is_cut(2, 1));
        links.isolate(3);
        assert!(links.is_cut(3, 1) && links.is_cut(1, 3));
        assert!(!links.is_cut(3, 3), "a broker always reaches itself");
        links.heal_one_way(1, 3);
        assert!(
            links.is_cut(1, 3),
            "healing a link does not undo an isolation"
        );
        links.reconnect(3);
        assert!(!links.is_cut(1, 3));
        links.heal_all();
        assert!(!links.is_cut(1, 2));
    }

    #[test]
    fn nan_rates_are_refused() {
        let faults = NetworkFaults {
            duplicate_rate: f64::NAN,
            ..NetworkFaults::NONE
        };
        assert!(faults.validate().is_err());
    }
}
