//! The replica managers of several brokers driven end to end over a hand-driven network
//! (`common/replicas.rs`): acks and the ISR (Kafka's `PartitionTest` / `ReplicaManagerTest`),
//! follower truncation (`AbstractFetcherThreadTest` / `ReplicaFetcherThreadTest`) and a
//! proptest of random interleavings with the replication invariants checked at each step.

#[path = "common/replicas.rs"]
mod replicas;

use replicas::{Sim, config, stored, values};
use streamlog::ReadBound;
use streamlog::replication::{Acks, ProduceOutcome, ReplicaError};

#[test]
fn acks_one_answers_after_the_local_append() {
    let mut sim = Sim::new(3, config(1));
    let (_, outcome) = sim.produce(Acks::Leader, &["a", "b"]);
    let ProduceOutcome::Done(r) = outcome else {
        panic!("acks=1 answers at once: {outcome:?}")
    };
    assert_eq!((r.error, r.base_offset), (None, Some(0)));
    assert_eq!(sim.leo(0), 2);
    assert_eq!(sim.hw(0), 0, "followers have not fetched");
    sim.rounds(3, 1);
    assert_eq!(values(sim.log(1), 0), [(0, "a".into()), (1, "b".into())]);
    assert_eq!(sim.hws().values().copied().collect::<Vec<_>>(), [2, 2, 2]);
    let _ = stored(sim.log(0), ReadBound::LogEnd);
}
