//! The replica managers of several brokers driven end to end over a hand-driven network
//! (`common/replicas.rs`): acks and the ISR (Kafka's `PartitionTest` / `ReplicaManagerTest`),
//! follower truncation (`AbstractFetcherThreadTest` / `ReplicaFetcherThreadTest`) and a
//! proptest of random interleavings with the replication invariants checked at each step.

#[path = "common/replicas.rs"]
mod replicas;

use bytes::Bytes;
use replicas::{Reply, Sim, batch, config, stored, values};
use streamlog::record::BatchIter;
use streamlog::replication::messages::{
    EpochQuery, FetchPartition, FetchRequest, FetchResponse, FetchedPartition,
    OffsetsForLeaderEpochRequest, ProduceRequest, ProduceResponse,
};
use streamlog::replication::{
    Acks, EpochEndOffset, FollowerPhase, LeaderAppend, PartitionState, PreparedProduce,
    ProduceOutcome, ProduceToken, ReplicaError, ReplicaRequest, ReplicaResponse,
};
use streamlog::{Error, ReadBound, ReadOptions};

/// The base offsets of the batches in `records`.
fn bases(records: &Bytes) -> Vec<u64> {
    BatchIter::new(records, usize::MAX)
        .map(|b| b.expect("batch").1.header().base_offset as u64)
        .collect()
}

fn answered(outcome: ProduceOutcome) -> ProduceResponse {
    match outcome {
        ProduceOutcome::Done(r) => r,
        other => panic!("expected an answer at once, got {other:?}"),
    }
}

fn not_leader(leader: u32) -> Option<ReplicaError> {
    Some(ReplicaError::NotLeaderOrFollower {
        leader: Some(leader),
    })
}

// --- acks -----------------------------------------------------------------------------------

#[test]
fn acks_one_answers_after_the_local_append() {
    let mut sim = Sim::new(3, config(1));
    let r = answered(sim.produce(Acks::Leader, &["a", "b"]).1);
    assert_eq!((r.error, r.base_offset), (None, Some(0)));
    assert_eq!(sim.leo(0), 2);
    assert_eq!(sim.hw(0), 0, "followers have not fetched");
    sim.rounds(3, 1);
    assert_eq!(values(sim.log(1), 0), [(0, "a".into()), (1, "b".into())]);
    assert_eq!(sim.hws().values().copied().collect::<Vec<_>>(), [2, 2, 2]);
}

#[test]
fn acks_zero_answers_nothing_even_when_refused() {
    let mut sim = Sim::new(3, config(1));
    assert_eq!(sim.produce(Acks::None, &["a"]).1, ProduceOutcome::NoAnswer);
    assert_eq!(sim.leo(0), 1, "written");
    assert_eq!(
        sim.produce_to(1, Acks::None, &["b"], 1_000).1,
        ProduceOutcome::NoAnswer,
        "a follower refuses silently"
    );
    assert_eq!(sim.leo(1), 0);
    assert!(sim.done.is_empty());
}

#[test]
fn acks_all_waits_until_every_isr_member_has_the_batch() {
    let mut sim = Sim::new(3, config(2));
    sim.rounds(1, 1);
    let _ = answered(sim.produce(Acks::Leader, &["x"]).1);
    let (token, outcome) = sim.produce(Acks::All, &["a", "b"]);
    assert_eq!(outcome, ProduceOutcome::Waiting);
    for _ in 0..3 {
        sim.now += 1;
        sim.tick(1);
        sim.deliver_all();
    }
    assert_eq!(sim.leo(1), 3);
    assert_eq!(
        sim.answer(token),
        None,
        "broker 2 is in the ISR and lacks it"
    );
    assert_eq!(sim.hw(0), 0);
    sim.tick(2);
    sim.deliver_all();
    assert_eq!(sim.leo(2), 3);
    assert_eq!(
        sim.answer(token),
        None,
        "the fetch that carried the batch does not count: its offset is the log end before"
    );
    sim.now += 1;
    sim.tick(2);
    sim.deliver_all();
    let r = sim.answer(token).expect("answered once 2 fetched past it");
    assert_eq!((r.error, r.base_offset), (None, Some(1)));
    assert_eq!(sim.hw(0), 3);
}

#[test]
fn acks_all_times_out_when_followers_do_not_fetch() {
    let mut sim = Sim::new(3, config(1));
    let (token, outcome) = sim.produce_to(0, Acks::All, &["a"], 50);
    assert_eq!(outcome, ProduceOutcome::Waiting);
    sim.now += 49;
    sim.tick(0);
    assert_eq!(sim.answer(token), None);
    sim.now += 1;
    sim.tick(0);
    let r = sim.answer(token).expect("timed out");
    assert_eq!(
        (r.error, r.base_offset),
        (Some(ReplicaError::RequestTimedOut), Some(0))
    );
    assert_eq!(sim.leo(0), 1, "the batch stays written");
}

#[test]
fn acks_all_is_refused_before_the_append_below_min_insync() {
    let mut state = PartitionState::new(vec![0, 1, 2]);
    state.isr = vec![0, 1];
    let mut sim = Sim::with_state(state, 3, config(3));
    let r = answered(sim.produce(Acks::All, &["a"]).1);
    assert_eq!(
        (r.error, r.base_offset),
        (Some(ReplicaError::NotEnoughReplicas), None)
    );
    assert_eq!(sim.leo(0), 0, "nothing written");
    let r = answered(sim.produce(Acks::Leader, &["b"]).1);
    assert_eq!(
        (r.error, r.base_offset),
        (None, Some(0)),
        "acks=1 ignores min.insync"
    );
}

#[test]
fn acks_all_fails_after_the_append_when_the_isr_shrinks_below_min_insync() {
    let mut sim = Sim::new(3, config(2));
    sim.down.extend([1, 2]);
    let (token, outcome) = sim.produce(Acks::All, &["a"]);
    assert_eq!(outcome, ProduceOutcome::Waiting);
    sim.now += 101;
    sim.tick(0);
    assert_eq!(sim.alters.len(), 1, "the shrink is proposed");
    assert_eq!(
        sim.answer(token),
        None,
        "a shrink in flight still counts them"
    );
    sim.commit_isr();
    assert_eq!(sim.state.isr, [0]);
    let r = sim.answer(token).expect("answered when the shrink commits");
    assert_eq!(
        (r.error, r.base_offset),
        (Some(ReplicaError::NotEnoughReplicasAfterAppend), Some(0))
    );
    assert_eq!(sim.leo(0), 1);
}

#[test]
fn each_acks_all_produce_gets_its_own_answer() {
    // Two produces wait; a follower's broker is fenced and the leader's proposal to drop
    // it commits, so the high watermark moves past both at once: each token gets its own
    // answer with its own offset.
    let mut sim = Sim::new(2, config(1));
    let (first, outcome) = sim.produce(Acks::All, &["a"]);
    assert_eq!(outcome, ProduceOutcome::Waiting);
    let (second, outcome) = sim.produce(Acks::All, &["b"]);
    assert_eq!(outcome, ProduceOutcome::Waiting);
    sim.managers[0].set_fenced_brokers(&[1]);
    sim.tick(0);
    assert_eq!(sim.answer(first), None, "broker 1 is still in the ISR");
    sim.commit_isr();
    assert_eq!(sim.state.isr, [0]);
    for (token, offset) in [(first, 0), (second, 1)] {
        let r = sim
            .answer(token)
            .expect("answered once the ISR drops broker 1");
        assert_eq!((r.error, r.base_offset), (None, Some(offset)));
    }
}

#[test]
fn a_produce_to_a_follower_names_the_leader() {
    let mut sim = Sim::new(3, config(1));
    for acks in [Acks::Leader, Acks::All] {
        let r = answered(sim.produce_to(1, acks, &["a"], 1_000).1);
        assert_eq!((r.error, r.base_offset), (not_leader(0), None));
    }
    assert_eq!(sim.leo(1), 0, "nothing written");
    sim.elect(2, &[]);
    let r = answered(sim.produce_to(0, Acks::All, &["a"], 1_000).1);
    assert_eq!(r.error, not_leader(2));
    assert_eq!(sim.leo(0), 0);
}

#[test]
fn a_leader_change_fails_waiting_produces() {
    let mut sim = Sim::new(3, config(1));
    let (token, outcome) = sim.produce(Acks::All, &["a"]);
    assert_eq!(outcome, ProduceOutcome::Waiting);
    let (acks_one, _) = sim.produce(Acks::Leader, &["b"]);
    sim.elect(1, &[]);
    let r = sim.answer(token).expect("failed at the leader change");
    assert_eq!((r.error, r.base_offset), (not_leader(1), None));
    assert_eq!(sim.answer(acks_one), None, "acks=1 was answered already");
}

/// A produce of `values` with `acks` to broker 0 (the leader), its token, and the append
/// its checks prepared (to be carried out by the test, as a node does without its lock).
fn prepare_on_0(
    sim: &mut Sim,
    acks: Acks,
    values: &[&str],
) -> (ProduceRequest, ProduceToken, LeaderAppend) {
    let request = ProduceRequest {
        acks,
        timeout_ms: 10_000,
        partition: sim.key.clone(),
        records: batch(values),
    };
    let token = sim.token();
    let PreparedProduce::Append(append) = sim.managers[0].prepare_produce(&request) else {
        panic!("broker 0 leads");
    };
    (request, token, append)
}

/// A produce prepared by the leader whose append comes only after the leadership moved
/// (the append runs outside the broker's lock): nothing is written, and the producer is
/// told who leads now — for every acks, and when the old leader leads again in a later
/// epoch too.
#[test]
fn an_append_prepared_before_a_leader_change_writes_nothing() {
    for acks in [Acks::Leader, Acks::All] {
        for comes_back in [false, true] {
            let mut sim = Sim::new(3, config(1));
            let (request, token, append) = prepare_on_0(&mut sim, acks, &["late"]);
            sim.elect(1, &[]);
            if comes_back {
                sim.elect(0, &[]);
            }
            let appended = append.append(&request.records);
            assert_eq!(
                appended,
                Err(ReplicaError::NotLeaderOrFollower { leader: None }),
                "{acks:?} {comes_back}"
            );
            assert_eq!(sim.leo(0), 0, "nothing written");
            let outcome =
                sim.managers[0].finish_produce(&request, token, &append, appended, sim.now);
            let leader = if comes_back { 0 } else { 1 };
            let r = answered(outcome);
            assert_eq!((r.error, r.base_offset), (not_leader(leader), None));
        }
    }
}

/// An `acks=all` produce written in one leadership and recorded only after the broker
/// lost and regained leadership fails: the follower in between may have replaced its
/// records, so the high watermark passing its offsets proves nothing.
#[test]
fn an_acks_all_write_recorded_after_a_lost_leadership_fails() {
    let mut sim = Sim::new(3, config(1));
    let (request, token, append) = prepare_on_0(&mut sim, Acks::All, &["a"]);
    let appended = append.append(&request.records);
    assert_eq!(appended, Ok(0..1), "written while leading");
    sim.elect(1, &[]);
    sim.elect(0, &[]);
    let outcome = sim.managers[0].finish_produce(&request, token, &append, appended, sim.now);
    let r = answered(outcome);
    assert_eq!((r.error, r.base_offset), (not_leader(0), None));
    for _ in 0..5 {
        sim.round();
    }
    assert_eq!(sim.answer(token), None, "never answered again");
}

/// An ISR change (a new partition epoch, the same leader epoch) does not refuse an
/// append prepared before it.
#[test]
fn a_prepared_append_survives_an_isr_change() {
    let mut sim = Sim::new(3, config(1));
    let (request, token, append) = prepare_on_0(&mut sim, Acks::Leader, &["a"]);
    sim.state.isr.retain(|&b| b != 2);
    sim.state.partition_epoch += 1;
    sim.apply_all();
    let appended = append.append(&request.records);
    assert_eq!(appended, Ok(0..1));
    let r = answered(sim.managers[0].finish_produce(&request, token, &append, appended, sim.now));
    assert_eq!((r.error, r.base_offset), (None, Some(0)));
}

/// The same split produce with no change of leader answers as `handle_produce` does.
#[test]
fn a_prepared_append_in_the_same_epoch_is_written_and_answered() {
    let mut sim = Sim::new(3, config(1));
    let (request, token, append) = prepare_on_0(&mut sim, Acks::Leader, &["a", "b"]);
    let appended = append.append(&request.records);
    assert_eq!(appended, Ok(0..2));
    let r = answered(sim.managers[0].finish_produce(&request, token, &append, appended, sim.now));
    assert_eq!((r.error, r.base_offset), (None, Some(0)));
    assert_eq!(values(sim.log(0), 0), [(0, "a".into()), (1, "b".into())]);
}

// --- high watermark and ISR -------------------------------------------------------------------

#[test]
fn the_high_watermark_is_the_smallest_log_end_in_the_isr_and_never_moves_back() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a"]);
    sim.produce(Acks::Leader, &["b"]);
    for _ in 0..2 {
        sim.tick(1);
        sim.deliver_all();
    }
    assert_eq!(sim.leo(1), 2);
    assert_eq!(sim.hw(0), 0, "broker 2 is in the ISR and has not fetched");
    sim.tick(2);
    sim.deliver_all();
    assert_eq!(sim.hw(0), 0, "broker 2's first fetch was at 0");
    sim.tick(2);
    sim.deliver_all();
    assert_eq!(sim.hw(0), 2);
    assert_eq!(
        (sim.hw(1), sim.hw(2)),
        (0, 0),
        "answers carry the high watermark before the fetch"
    );
    sim.tick(1);
    sim.deliver_all();
    assert_eq!(sim.hw(1), 2, "a follower takes min(leader HW, own LEO)");
    // Broker 2 becomes leader knowing a high watermark of 0: no broker's goes back.
    sim.elect(2, &[]);
    let mut last = sim.hws();
    for _ in 0..6 {
        sim.rounds(1, 1);
        let now = sim.hws();
        for (b, hw) in &now {
            assert!(*hw >= last[b], "broker {b}: {} -> {hw}", last[b]);
        }
        last = now;
    }
    assert_eq!(last.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
}

#[test]
fn a_lagging_follower_leaves_the_isr_and_rejoins_when_caught_up() {
    let mut sim = Sim::new(3, config(1));
    sim.down.insert(2);
    sim.produce(Acks::Leader, &["a"]);
    sim.rounds(10, 10);
    assert_eq!(sim.now, 1_100);
    assert_eq!(sim.state.isr, [0, 1, 2], "within replica.lag.time.max.ms");
    assert_eq!(sim.hw(0), 0, "broker 2 holds it back");
    sim.rounds(1, 10);
    assert_eq!(sim.state.isr, [0, 1], "proposed out and written");
    assert_eq!(sim.leader_isr(0), [0, 1]);
    assert_eq!(sim.hw(0), 1, "the shrink lets the high watermark move");
    sim.produce(Acks::Leader, &["b"]);
    sim.down.remove(&2);
    sim.now += 1;
    sim.tick(2);
    sim.deliver_all();
    assert_eq!(sim.leo(2), 2);
    assert!(
        sim.alters.is_empty(),
        "its fetch at 0 is below the high watermark"
    );
    sim.rounds(3, 1);
    assert_eq!(
        sim.state.isr,
        [0, 1, 2],
        "back in once it reached the high watermark"
    );
    assert_eq!(sim.leader_isr(0), [0, 1, 2]);
    assert_eq!(sim.hws().values().copied().collect::<Vec<_>>(), [2, 2, 2]);
}

#[test]
fn a_fenced_broker_holds_the_high_watermark_back_until_the_isr_drops_it() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a"]);
    sim.rounds(3, 1);
    assert_eq!(sim.hws().values().copied().collect::<Vec<_>>(), [1, 1, 1]);
    sim.down.insert(2);
    for m in &mut sim.managers {
        m.set_fenced_brokers(&[2]);
    }
    let (token, _) = sim.produce(Acks::All, &["b"]);
    for _ in 0..2 {
        sim.now += 1;
        sim.tick(1);
        sim.deliver_all();
    }
    // Broker 2 is in the committed ISR, so a controller could still elect it.
    assert_eq!(sim.hw(0), 1, "broker 2 (fenced, in the ISR) holds it back");
    assert_eq!(sim.answer(token), None);
    // The leader proposes it out at once; once that commits, the produce is answered.
    sim.tick(0);
    sim.commit_isr();
    assert_eq!(sim.state.isr, [0, 1]);
    assert_eq!(sim.hw(0), 2);
    assert!(sim.answer(token).is_some_and(|r| r.error.is_none()));
    // It stays fenced after the new state applies (out of the ISR, it no longer counts),
    // though it was caught up a few ms ago.
    let (token, _) = sim.produce(Acks::All, &["c"]);
    for _ in 0..2 {
        sim.now += 1;
        sim.tick(1);
        sim.deliver_all();
    }
    assert!(
        sim.answer(token).is_some_and(|r| r.error.is_none()),
        "high watermark {} held back by fenced broker 2",
        sim.hw(0)
    );
}

/// The scenario where passing a fenced ISR member lost an acknowledged record: the
/// leader's proposal to drop it fails to commit, the broker comes back (no longer
/// fenced, still in the ISR, without the record), the leader dies, and a clean election
/// picks it.
#[test]
fn a_record_a_fenced_isr_member_lacks_is_not_acknowledged() {
    use std::collections::BTreeSet;
    use streamlog::BrokerId;
    use streamlog::replication::controller::decide;

    let mut sim = Sim::with_state(PartitionState::new(vec![0, 2, 1]), 3, config(1));
    sim.rounds(3, 10);
    sim.down.insert(2);
    sim.managers[0].set_fenced_brokers(&[2]);
    let (token, outcome) = sim.produce(Acks::All, &["acked"]);
    assert_eq!(outcome, ProduceOutcome::Waiting);
    for _ in 0..3 {
        sim.now += 10;
        sim.tick_all();
        sim.deliver_all();
        while let Some((from, _)) = sim.alters.pop_front() {
            sim.managers[from as usize].isr_change_failed(&sim.key);
        }
    }
    assert_eq!(sim.state.isr, [0, 2, 1], "the shrink was never written");
    assert_eq!(sim.hw(0), 0, "broker 2, in the ISR, lacks the record");
    assert_eq!(sim.answer(token), None, "not acknowledged");
    // Broker 2 comes back, the leader dies, and the controller elects broker 2.
    sim.down.remove(&2);
    sim.managers[0].set_fenced_brokers(&[]);
    sim.down.insert(0);
    let live: BTreeSet<BrokerId> = [1, 2].into_iter().collect();
    let decision = decide(&sim.state, &live, false, false).expect("a clean election");
    assert_eq!(decision.state.leader, Some(2));
    sim.state = decision.state;
    sim.apply_all();
    sim.rounds(20, 10);
    // The record was never acknowledged, so losing it broke no promise.
    assert_eq!(values(sim.log(1), 0), values(sim.log(2), 0));
}

// --- reads and fencing ------------------------------------------------------------------------

#[test]
fn consumers_only_see_records_below_the_high_watermark() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a"]);
    sim.produce(Acks::Leader, &["b"]);
    let f = sim.consume(0, 0, None);
    assert_eq!((f.error, f.high_watermark), (None, 0));
    assert!(f.records.is_empty(), "nothing is committed yet");
    sim.rounds(2, 1);
    sim.produce(Acks::Leader, &["c"]);
    assert_eq!((sim.hw(0), sim.leo(0)), (2, 3));
    let f = sim.consume(0, 0, None);
    assert_eq!((f.error, bases(&f.records)), (None, vec![0, 1]));
    for offset in [2, 3] {
        let f = sim.consume(0, offset, None);
        assert_eq!(f.error, None, "at {offset}");
        assert!(f.records.is_empty(), "at {offset}");
    }
    assert_eq!(
        sim.consume(0, 4, None).error,
        Some(ReplicaError::OffsetOutOfRange)
    );
    assert_eq!(sim.consume(1, 0, None).error, not_leader(0));
}

#[test]
fn stale_and_future_leader_epochs_are_refused() {
    let mut sim = Sim::new(3, config(1));
    sim.elect(0, &[]); // epoch 1, same leader
    let fenced = Some(ReplicaError::FencedLeaderEpoch);
    let unknown = Some(ReplicaError::UnknownLeaderEpoch);
    assert_eq!(sim.consume(0, 0, Some(0)).error, fenced);
    assert_eq!(sim.consume(0, 0, Some(2)).error, unknown);
    assert_eq!(sim.consume(0, 0, Some(1)).error, None);
    // A follower reports a mismatched epoch first, then that it does not lead.
    assert_eq!(sim.consume(1, 0, Some(0)).error, fenced);
    assert_eq!(sim.consume(1, 0, Some(2)).error, unknown);
    assert_eq!(sim.consume(1, 0, Some(1)).error, not_leader(0));
    let query = |epoch| OffsetsForLeaderEpochRequest {
        replica_id: Some(1),
        partitions: vec![EpochQuery {
            partition: sim.key.clone(),
            current_leader_epoch: Some(epoch),
            leader_epoch: 0,
        }],
    };
    let (q0, q1, q2) = (query(0), query(1), query(2));
    let answer = |sim: &mut Sim, b: usize, q| {
        sim.managers[b]
            .handle_offsets_for_leader_epoch(q)
            .partitions
            .remove(0)
    };
    assert_eq!(answer(&mut sim, 0, &q0).error, fenced);
    assert_eq!(answer(&mut sim, 0, &q2).error, unknown);
    let ok = answer(&mut sim, 0, &q1);
    assert_eq!(
        (ok.error, ok.end),
        (
            None,
            Some(EpochEndOffset {
                epoch: 0,
                end_offset: 0
            })
        )
    );
    assert_eq!(answer(&mut sim, 2, &q1).error, not_leader(0));
    // A broker that is not a replica: unknown epoch if it gives one, else not leader.
    for (epoch, error) in [(Some(1), unknown), (None, not_leader(0))] {
        let request = FetchRequest {
            replica_id: Some(7),
            max_bytes: 1 << 20,
            partitions: vec![FetchPartition {
                partition: sim.key.clone(),
                current_leader_epoch: epoch,
                fetch_offset: 0,
                last_fetched_epoch: None,
                log_start_offset: Some(0),
                max_bytes: 1 << 20,
            }],
        };
        let (response, out) = sim.managers[0].handle_fetch(&request, sim.now);
        assert_eq!(response.partitions[0].error, error);
        assert!(out.is_empty());
    }
}

#[test]
fn a_follower_in_an_old_epoch_is_fenced_and_recovers_when_it_learns_the_new_one() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a"]);
    // The store moves to epoch 1 and only the leader has heard.
    sim.state.leader_epoch += 1;
    sim.state.partition_epoch += 1;
    sim.apply_on(0);
    sim.produce(Acks::Leader, &["b"]);
    sim.rounds(3, 20);
    assert_eq!(sim.leo(1), 0, "its fetches in epoch 0 are fenced");
    sim.apply_all();
    sim.rounds(4, 20);
    assert_eq!(values(sim.log(1), 0), values(sim.log(0), 0));
    assert_eq!(sim.leo(1), 2);
}

// --- follower truncation ----------------------------------------------------------------------

#[test]
fn a_diverged_follower_truncates_to_where_the_epochs_part_and_fetches_the_new_leaders_records() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::All, &["a"]);
    sim.produce(Acks::All, &["b"]);
    sim.rounds(3, 1);
    assert_eq!(sim.hws().values().copied().collect::<Vec<_>>(), [2, 2, 2]);
    // Leader 0 writes two more that never leave it, then dies.
    sim.produce(Acks::Leader, &["c"]);
    sim.produce(Acks::Leader, &["d"]);
    sim.down.insert(0);
    sim.elect(1, &[0]);
    sim.produce(Acks::Leader, &["e"]);
    sim.produce(Acks::Leader, &["f"]);
    sim.produce(Acks::Leader, &["g"]);
    sim.rounds(3, 1);
    // Broker 0 returns as a follower of epoch 1.
    sim.down.remove(&0);
    sim.apply_on(0);
    assert_eq!(sim.phase(0), Some(FollowerPhase::Truncating));
    sim.now += 1;
    sim.tick(0);
    let request = sim.network.pop_front().expect("a request");
    assert!(
        matches!(&request.request, ReplicaRequest::OffsetsForLeaderEpoch(r) if r.partitions[0].leader_epoch == 0),
        "asks where its last epoch ends: {request:?}"
    );
    let reply = sim.serve(request).expect("served");
    sim.respond(reply);
    assert_eq!(sim.leo(0), 2, "cut where epoch 0 ends on the leader");
    assert_eq!(sim.hw(0), 2);
    assert_eq!(sim.phase(0), Some(FollowerPhase::Fetching));
    sim.rounds(3, 1);
    assert_eq!(
        stored(sim.log(0), ReadBound::LogEnd),
        stored(sim.log(1), ReadBound::LogEnd)
    );
    let v: Vec<String> = values(sim.log(0), 0).into_iter().map(|(_, v)| v).collect();
    assert_eq!(v, ["a", "b", "e", "f", "g"]);
    sim.assert_agree_below_hw();
}

#[test]
fn a_follower_does_not_truncate_to_its_high_watermark_when_the_leader_has_its_records() {
    let mut sim = Sim::new(3, config(1));
    for v in ["a", "b", "c"] {
        sim.produce(Acks::Leader, &[v]);
    }
    sim.rounds(2, 1);
    assert_eq!(
        (sim.leo(2), sim.hw(2)),
        (3, 0),
        "has them all, knows none committed"
    );
    let before = stored(sim.log(2), ReadBound::LogEnd);
    sim.down.insert(0);
    sim.elect(1, &[0]);
    for _ in 0..3 {
        sim.now += 1;
        sim.tick(2);
        sim.deliver_all();
        assert_eq!(sim.leo(2), 3, "never cut below what the leader has");
    }
    assert_eq!(stored(sim.log(2), ReadBound::LogEnd), before);
    assert_eq!(sim.phase(2), Some(FollowerPhase::Fetching));
    sim.rounds(2, 1);
    assert_eq!(sim.hw(1), 3);
    assert_eq!(sim.hw(2), 3);
}

#[test]
fn kip_101_an_acknowledged_record_survives_the_follower_becoming_leader() {
    // Leader A (0), follower B (1). B has both records, but the high watermark it knows
    // is behind the second; A dies; B leads. Truncating B to its high watermark would lose
    // an acknowledged record.
    let mut sim = Sim::new(2, config(1));
    sim.rounds(1, 1);
    let (m1, _) = sim.produce(Acks::All, &["m1"]);
    sim.rounds(2, 1);
    let (m2, _) = sim.produce(Acks::All, &["m2"]);
    sim.rounds(2, 1);
    assert!(sim.answer(m1).is_some_and(|r| r.error.is_none()));
    let r = sim.answer(m2).expect("m2 acknowledged");
    assert_eq!((r.error, r.base_offset), (None, Some(1)));
    assert_eq!((sim.leo(1), sim.hw(1)), (2, 1));
    sim.down.insert(0);
    sim.elect(1, &[0]);
    sim.produce(Acks::Leader, &["m3"]);
    sim.down.remove(&0);
    sim.apply_on(0);
    sim.rounds(4, 1);
    let v: Vec<String> = values(sim.log(1), 0).into_iter().map(|(_, v)| v).collect();
    assert_eq!(v, ["m1", "m2", "m3"]);
    assert_eq!(
        stored(sim.log(0), ReadBound::LogEnd),
        stored(sim.log(1), ReadBound::LogEnd)
    );
    assert_eq!((sim.hw(0), sim.hw(1)), (3, 3));
}

#[test]
fn kip_101_diverged_logs_end_identical_up_to_the_high_watermark() {
    // A (0) leads and writes m1, m2; B (1) fetches only m1 and both know high watermark 1.
    // A dies before B fetches m2; B leads in epoch 1 and writes m3 at offset 1; A returns.
    let mut sim = Sim::new(2, config(1));
    sim.produce(Acks::Leader, &["m1"]);
    sim.rounds(3, 1);
    assert_eq!((sim.hw(0), sim.hw(1)), (1, 1));
    sim.produce(Acks::Leader, &["m2"]);
    sim.down.insert(0);
    sim.elect(1, &[0]);
    sim.produce(Acks::Leader, &["m3"]);
    sim.down.remove(&0);
    sim.apply_on(0);
    sim.rounds(4, 1);
    assert_eq!(values(sim.log(0), 0), [(0, "m1".into()), (1, "m3".into())]);
    assert_eq!(
        stored(sim.log(0), ReadBound::LogEnd),
        stored(sim.log(1), ReadBound::LogEnd)
    );
    assert_eq!((sim.hw(0), sim.hw(1)), (2, 2));
    sim.assert_agree_below_hw();
}

#[test]
fn logs_of_unrelated_epochs_reconcile_to_exactly_the_leaders_log() {
    // Replica epochs [0, 2, 4] against a leader's [1, 3, 5]: several epoch round trips,
    // then the follower's log, log start, log end and high watermark equal the leader's.
    let mut sim = Sim::offline(2, config(1));
    for (epoch, v) in [(1, "a1"), (3, "b3"), (5, "c5")] {
        sim.write_as(0, epoch, &[v]);
    }
    for (epoch, v) in [(0, "x0"), (2, "y2"), (4, "z4")] {
        sim.write_as(1, epoch, &[v]);
    }
    sim.set_leader(0, 5, &[0, 1]);
    sim.rounds(10, 1);
    assert_eq!(
        stored(sim.log(1), ReadBound::LogEnd),
        stored(sim.log(0), ReadBound::LogEnd)
    );
    assert_eq!(
        (sim.log(1).log_start_offset(), sim.leo(1), sim.hw(1)),
        (sim.log(0).log_start_offset(), sim.leo(0), sim.hw(0))
    );
    assert_eq!(sim.hw(0), 3);
    assert_eq!(sim.log(1).leader_epochs(), sim.log(0).leader_epochs());
}

#[test]
fn a_diverging_epoch_in_a_fetch_answer_truncates_without_appending() {
    // ISR {0, 2}; broker 1 follows in epoch 1 outside the ISR. A stray append of epoch-0
    // records the leader never had (a zombie's) diverges broker 1's log while it fetches.
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a", "b"]);
    sim.rounds(3, 1);
    sim.elect(0, &[1]);
    assert_eq!(sim.state.isr, [0, 2]);
    // Broker 1 settles its truncation (nothing to cut) and is fetching.
    sim.now += 1;
    sim.tick(1);
    sim.deliver_all();
    assert_eq!(sim.phase(1), Some(FollowerPhase::Fetching));
    assert_eq!((sim.leo(1), sim.hw(1)), (2, 2));
    sim.write_as(1, 0, &["zombie-1", "zombie-2", "zombie-3"]);
    assert_eq!(sim.leo(1), 5);
    let epochs_before = sim.log(1).leader_epochs();
    sim.produce(Acks::Leader, &["c"]);
    sim.produce(Acks::Leader, &["d"]);
    for _ in 0..3 {
        // Broker 2: epoch round trip, then the fetch of c, d, then one at 4.
        sim.now += 1;
        sim.tick(2);
        sim.deliver_all();
    }
    assert_eq!(sim.hw(0), 4);
    sim.now += 1;
    sim.tick(1);
    let request = sim.network.pop_front().expect("a fetch");
    assert!(
        matches!(&request.request, ReplicaRequest::Fetch(f) if f.partitions[0].last_fetched_epoch == Some(0)),
        "{request:?}"
    );
    let Reply {
        to,
        from,
        correlation_id,
        response,
    } = sim.serve(request).expect("served");
    let ReplicaResponse::Fetch(mut response) = response else {
        panic!("a fetch answer")
    };
    let p = &mut response.partitions[0];
    assert_eq!(
        p.diverging_epoch,
        Some(EpochEndOffset {
            epoch: 0,
            end_offset: 2
        })
    );
    assert!(p.records.is_empty());
    // Even if records came with it (the leader's batch at 2), none is appended.
    p.records = batch(&["not-appended"]);
    sim.respond(Reply {
        to,
        from,
        correlation_id,
        response: ReplicaResponse::Fetch(response),
    });
    assert_eq!(sim.leo(1), 2, "cut to where epoch 0 ends on the leader");
    assert_eq!(sim.hw(1), 2, "the high watermark does not move");
    assert_eq!(
        sim.log(1).leader_epochs(),
        epochs_before,
        "epoch 0 still starts at 0"
    );
    assert_eq!(sim.phase(1), Some(FollowerPhase::Fetching));
    sim.rounds(3, 1);
    assert_eq!(
        stored(sim.log(1), ReadBound::LogEnd),
        stored(sim.log(0), ReadBound::LogEnd)
    );
    assert_eq!(sim.state.isr, [0, 1, 2]);
}

#[test]
fn a_follower_behind_the_leaders_log_start_starts_over_there() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a"]);
    sim.rounds(3, 1);
    sim.down.insert(2);
    for v in ["b", "c", "d", "e", "f"] {
        sim.produce(Acks::Leader, &[v]);
    }
    sim.rounds(15, 10);
    assert_eq!(sim.state.isr, [0, 1]);
    assert_eq!(sim.hw(0), 6);
    for b in [0, 1] {
        sim.log(b).delete_records_before(4).expect("delete");
    }
    assert_eq!(sim.log(0).log_start_offset(), 4);
    sim.down.remove(&2);
    assert_eq!(sim.leo(2), 1);
    sim.rounds(5, 10);
    assert_eq!(
        sim.log(2).log_start_offset(),
        4,
        "started over at the leader's start"
    );
    assert_eq!(values(sim.log(2), 4), values(sim.log(0), 4));
    assert_eq!((sim.leo(2), sim.hw(2)), (6, 6));
    assert_eq!(sim.state.isr, [0, 1, 2]);
}

/// The leader's log start can fall inside a batch (records deleted up to it): a follower
/// that starts over there is sent the whole batch, which begins below its log end, and
/// restarts its empty log at the batch's base (Kafka's `Partition` does the same), then
/// follows the leader's start again.
#[test]
fn a_follower_starting_over_inside_a_leaders_batch_takes_the_whole_batch() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a"]);
    sim.rounds(3, 1);
    sim.down.insert(2);
    sim.produce(Acks::Leader, &["b", "c", "d"]);
    sim.produce(Acks::Leader, &["e", "f", "g"]);
    sim.rounds(15, 10);
    assert_eq!((sim.state.isr.as_slice(), sim.hw(0)), (&[0, 1][..], 7));
    for b in [0, 1] {
        sim.log(b).delete_records_before(5).expect("delete");
    }
    sim.down.remove(&2);
    sim.rounds(5, 10);
    assert_eq!((sim.leo(2), sim.hw(2)), (7, 7));
    assert_eq!(
        sim.log(2).log_start_offset(),
        5,
        "follows the leader's start"
    );
    assert_eq!(values(sim.log(2), 5), values(sim.log(0), 5));
    assert_eq!(sim.state.isr, [0, 1, 2]);
}

/// A follower whose last batch is from an epoch its leader has since deleted (records
/// deleted below the leader's start, epochs with them) fetches at its end and is sent the
/// leader's batch holding that start, beginning below the follower's end. No epoch is left
/// to find the divergence by: the follower starts over at the leader's start.
#[test]
fn a_follower_whose_tail_diverges_below_the_leaders_start_starts_over_there() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a"]);
    sim.rounds(3, 1);
    // Offset 1 reaches broker 2 only, and is never committed.
    sim.down.insert(1);
    sim.produce(Acks::Leader, &["x"]);
    sim.rounds(2, 1);
    assert_eq!(values(sim.log(2), 1), [(1, "x".to_string())]);
    sim.down.insert(2);
    sim.down.remove(&1);
    sim.elect(1, &[2]);
    sim.produce(Acks::Leader, &["b", "c"]);
    sim.rounds(5, 1);
    assert_eq!((sim.hw(1), sim.leo(0)), (3, 3));
    for b in [0, 1] {
        sim.log(b).delete_records_before(2).expect("delete");
    }
    sim.down.remove(&2);
    sim.apply_all();
    sim.rounds(10, 10);
    assert_eq!(values(sim.log(2), 2), [(2, "c".to_string())]);
    assert_eq!((sim.leo(2), sim.hw(2)), (3, 3));
    assert_eq!(sim.log(2).log_start_offset(), 2);
    assert_eq!(sim.state.isr, [1, 0, 2]);
}

/// The leader hands its files to followers without checking their CRCs (as Kafka does);
/// a follower checks every batch before appending, so a batch damaged on the leader's
/// disk is never copied, and a consumer of the leader gets an error, not the records.
#[test]
fn a_batch_damaged_on_the_leaders_disk_is_never_copied() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a"]);
    sim.rounds(3, 1);
    sim.down.insert(2);
    sim.produce(Acks::Leader, &["b"]);
    sim.rounds(3, 1);
    assert_eq!((sim.leo(1), sim.leo(2)), (2, 1));
    // Flip a bit of the last record's value in the leader's only segment.
    let path = sim.log(0).dir().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&path).expect("read segment");
    let at = bytes.len() - 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write segment");
    sim.down.remove(&2);
    sim.rounds(5, 10);
    assert_eq!(sim.leo(2), 1, "the damaged batch was not appended");
    assert_eq!(values(sim.log(2), 0), [(0, "a".to_string())]);
    let mut read = sim
        .log(0)
        .read(1, ReadOptions::default().bound(ReadBound::LogEnd))
        .expect("read");
    assert!(matches!(read.next(), Some(Err(Error::Corrupt { .. }))));
}

#[test]
fn re_applying_the_same_state_does_not_truncate_again() {
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["a"]);
    sim.rounds(3, 1);
    assert_eq!(sim.phase(1), Some(FollowerPhase::Fetching));
    for _ in 0..2 {
        sim.apply_all();
        // an ISR-only change (same leader epoch, newer partition epoch)
        sim.state.partition_epoch += 1;
        sim.apply_all();
        assert_eq!(sim.phase(1), Some(FollowerPhase::Fetching));
        sim.now += 1;
        sim.tick(1);
        let e = sim.network.pop_back().expect("a request");
        assert!(
            matches!(e.request, ReplicaRequest::Fetch(_)),
            "no second epoch round trip: {e:?}"
        );
        sim.network.push_back(e);
        sim.deliver_all();
    }
    assert_eq!(sim.leo(1), 1);
}

#[test]
fn late_duplicated_and_stale_answers_are_dropped() {
    let mut sim = Sim::new(3, config(1));
    sim.rounds(1, 1);
    sim.produce(Acks::Leader, &["a"]);
    sim.now += 1;
    sim.tick(1);
    let reply = sim.serve_next().expect("served");
    // A wrong correlation id first: dropped, the request stays in flight.
    let mut wrong = reply.clone();
    wrong.correlation_id += 100;
    sim.respond(wrong);
    assert_eq!(sim.leo(1), 0);
    sim.respond(reply.clone());
    assert_eq!(sim.leo(1), 1);
    // The same answer again: dropped (appending it twice would fail the replica).
    sim.respond(reply);
    assert_eq!(sim.leo(1), 1);
    assert_eq!(sim.phase(1), Some(FollowerPhase::Fetching));
    // An answer that arrives after its request timed out and was asked again.
    sim.produce(Acks::Leader, &["b"]);
    sim.now += 1;
    sim.tick(1);
    let late = sim.serve_next().expect("served");
    sim.now += 50;
    sim.tick(1);
    assert_eq!(
        sim.network.len(),
        1,
        "asked again after the request timeout"
    );
    sim.respond(late);
    assert_eq!(sim.leo(1), 1, "the timed-out answer is dropped");
    sim.deliver_all();
    assert_eq!(sim.leo(1), 2);
    // An answer computed before a leader change.
    sim.produce(Acks::Leader, &["c"]);
    sim.now += 1;
    sim.tick(1);
    let stale = sim.serve_next().expect("served");
    sim.elect(2, &[]);
    sim.respond(stale);
    assert_eq!(sim.leo(1), 2, "from the old leader's epoch: dropped");
    assert_eq!(sim.phase(1), Some(FollowerPhase::Truncating));
    sim.rounds(3, 1);
    assert_eq!(values(sim.log(1), 0), values(sim.log(2), 0));
    sim.assert_agree_below_hw();
}

#[test]
fn a_leader_deposed_before_writing_in_its_epoch_catches_up() {
    // Broker 0 is re-elected (epoch 1 begins at its log end, empty), then broker 1 leads
    // epoch 2 and writes. Broker 0's empty epoch 1 must go, or every fetch it makes
    // diverges at its log end again and it never catches up (found by the proptest).
    let mut sim = Sim::new(3, config(1));
    sim.produce(Acks::Leader, &["v1"]);
    sim.rounds(1, 1);
    sim.elect(0, &[]);
    sim.elect(1, &[]);
    sim.produce(Acks::Leader, &["v2"]);
    sim.rounds(4, 1);
    assert_eq!(sim.log(0).latest_epoch(), Some(2));
    assert_eq!(values(sim.log(0), 0), [(0, "v1".into()), (1, "v2".into())]);
    assert_eq!(sim.hws().values().copied().collect::<Vec<_>>(), [2, 2, 2]);
}

// --- random interleavings -----------------------------------------------------------------------

mod interleavings {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::replicas::{Sim, config, values};
    use streamlog::replication::{Acks, BrokerId, ProduceOutcome, ProduceToken};

    #[derive(Debug, Clone)]
    enum Op {
        /// Produce one record to the leader, acks=all or acks=1.
        Produce { all: bool },
        /// Every broker ticks, every request is answered, ISR proposals are written.
        Round,
        /// One broker ticks and its requests are answered.
        Fetch { broker: BrokerId },
        /// The next request is served but its answer is lost.
        DropAnswer,
        /// The next request is served and its answer delivered twice.
        DuplicateAnswer,
        /// The store elects the `nth` member of the ISR (maybe the same leader) in a new
        /// epoch.
        LeaderChange { nth: usize },
        /// Time passes.
        Tick { ms: i64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<bool>().prop_map(|all| Op::Produce { all }),
            4 => Just(Op::Round),
            3 => (0..3u32).prop_map(|broker| Op::Fetch { broker }),
            1 => Just(Op::DropAnswer),
            1 => Just(Op::DuplicateAnswer),
            1 => (0..3usize).prop_map(|nth| Op::LeaderChange { nth }),
            2 => (0..150i64).prop_map(|ms| Op::Tick { ms }),
        ]
    }

    struct Model {
        sim: Sim,
        /// acks=all produces waiting, with their value.
        waiting: BTreeMap<ProduceToken, String>,
        /// acks=all produces acknowledged: offset → value.
        acked: BTreeMap<u64, String>,
        seen: usize,
        hws: BTreeMap<BrokerId, u64>,
        next_value: u64,
    }

    impl Model {
        fn step(&mut self, op: &Op) {
            let sim = &mut self.sim;
            match *op {
                Op::Produce { all } => {
                    self.next_value += 1;
                    let v = format!("v{}", self.next_value);
                    let acks = if all { Acks::All } else { Acks::Leader };
                    let (token, outcome) = sim.produce(acks, &[&v]);
                    match outcome {
                        ProduceOutcome::Waiting => {
                            assert!(all);
                            self.waiting.insert(token, v);
                        }
                        ProduceOutcome::Done(r) if all => {
                            if let (None, Some(base)) = (r.error, r.base_offset) {
                                self.acked.insert(base, v);
                            }
                        }
                        _ => {}
                    }
                }
                Op::Round => {
                    sim.now += 1;
                    sim.round();
                }
                Op::Fetch { broker } => {
                    sim.now += 1;
                    sim.tick(broker);
                    sim.deliver_all();
                    sim.commit_isr();
                }
                Op::DropAnswer => {
                    let _ = sim.serve_next();
                }
                Op::DuplicateAnswer => {
                    if let Some(reply) = sim.serve_next() {
                        sim.respond(reply.clone());
                        sim.respond(reply);
                    }
                }
                Op::LeaderChange { nth } => {
                    let to = sim.state.isr[nth % sim.state.isr.len()];
                    sim.elect(to, &[]);
                }
                Op::Tick { ms } => {
                    sim.now += ms;
                    sim.tick_all();
                    sim.commit_isr();
                }
            }
            for (token, response) in &self.sim.done[self.seen..] {
                if let Some(v) = self.waiting.remove(token)
                    && let (None, Some(base)) = (response.error, response.base_offset)
                {
                    self.acked.insert(base, v);
                }
            }
            self.seen = self.sim.done.len();
        }

        fn check(&mut self) {
            let sim = &self.sim;
            let now = sim.hws();
            for (b, hw) in &now {
                assert!(
                    *hw >= self.hws[b],
                    "broker {b}'s high watermark went back: {} -> {hw}",
                    self.hws[b]
                );
            }
            self.hws = now;
            sim.assert_agree_below_hw();
            let leader = sim.leader();
            for (offset, v) in &self.acked {
                let found = values(sim.log(leader), *offset).into_iter().next();
                assert_eq!(
                    found,
                    Some((*offset, v.clone())),
                    "acknowledged {v} at {offset} is not in leader {leader}'s log"
                );
            }
            let isr: BTreeSet<_> = sim.state.isr.iter().collect();
            assert!(isr.contains(&leader), "the leader is in the ISR");
        }
    }

    proptest! {
        // 64 cases; PROPTEST_CASES=n runs more.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
            ..ProptestConfig::default()
        })]

        #[test]
        fn replicas_never_lose_acknowledged_records_nor_disagree_below_the_high_watermark(
            ops in proptest::collection::vec(op(), 1..60),
            min_isr in 1usize..=2,
        ) {
            let sim = Sim::new(3, config(min_isr));
            let hws = sim.hws();
            let mut model = Model {
                sim,
                waiting: BTreeMap::new(),
                acked: BTreeMap::new(),
                seen: 0,
                hws,
                next_value: 0,
            };
            for op in &ops {
                model.step(op);
                model.check();
            }
            // Quiet network (lost requests time out after 50 ms): everyone converges on
            // the leader's log.
            for _ in 0..10 {
                model.step(&Op::Tick { ms: 20 });
                model.step(&Op::Round);
                model.check();
            }
            let sim = &model.sim;
            let leader = sim.leader();
            for b in 0..3 {
                prop_assert_eq!(values(sim.log(b), 0), values(sim.log(leader), 0), "broker {}", b);
            }
        }
    }
}

// ─── Offset gaps and answers to other fetches ──────────────────────────────────────────

/// Follower 1 of leader 0 holding offsets 0..3, with its next fetch (at 3) taken off the
/// network, undelivered.
fn follower_at_3_with_a_fetch_in_flight() -> (Sim, replicas::Envelope) {
    let mut sim = Sim::new(2, config(1));
    sim.produce(Acks::Leader, &["a", "b", "c"]);
    for _ in 0..3 {
        sim.round();
    }
    assert_eq!(sim.leo(1), 3);
    sim.network.clear();
    sim.now += 100;
    sim.tick(1);
    let fetch = sim.network.pop_front().expect("a fetch");
    let ReplicaRequest::Fetch(request) = &fetch.request else {
        panic!("expected a fetch, got {:?}", fetch.request);
    };
    assert_eq!(request.partitions[0].fetch_offset, 3);
    (sim, fetch)
}

/// One batch holding `value` at offset `base`, as a compacted leader's log may hold it.
fn batch_at(base: u64, value: &str) -> Bytes {
    let mut bytes = batch(&[value]).to_vec();
    // The base offset lies outside the batch CRC.
    bytes[..8].copy_from_slice(&(base as i64).to_be_bytes());
    Bytes::from(bytes)
}

/// The answer to `fetch` from the leader, as the leader would build it with `records`.
fn answer(
    sim: &Sim,
    fetch: &replicas::Envelope,
    fetch_offset: u64,
    gaps: bool,
    records: Bytes,
) -> Reply {
    Reply {
        to: fetch.from,
        from: fetch.to,
        correlation_id: fetch.correlation_id,
        response: ReplicaResponse::Fetch(FetchResponse {
            partitions: vec![FetchedPartition {
                partition: sim.key.clone(),
                error: None,
                fetch_offset,
                high_watermark: 3,
                log_start_offset: 0,
                log_may_hold_gaps: gaps,
                diverging_epoch: None,
                records,
            }],
        }),
    }
}

/// A leader whose log may hold gaps (compacted before its topic switched to `delete`)
/// can answer a fetch at 3 with a batch at 10: the follower's log, created under
/// `delete`, takes it and may hold gaps from then on.
#[test]
fn a_follower_takes_a_gap_from_a_leader_whose_log_may_hold_gaps() {
    let (mut sim, fetch) = follower_at_3_with_a_fetch_in_flight();
    assert!(!sim.log(1).may_hold_offset_gaps());
    let reply = answer(&sim, &fetch, 3, true, batch_at(10, "k"));
    sim.respond(reply);
    assert_eq!(sim.leo(1), 11);
    assert!(sim.log(1).may_hold_offset_gaps());
    assert_eq!(
        values(sim.log(1), 0),
        [
            (0, "a".into()),
            (1, "b".into()),
            (2, "c".into()),
            (10, "k".into())
        ]
    );
}

/// An answer to another fetch — one at offset 10, sent by an earlier run of this broker
/// whose correlation id the current fetch at 3 reuses — is dropped even when the
/// leader's log may hold gaps: taking it would leave a hole at 3..10.
#[test]
fn an_answer_to_a_fetch_from_another_offset_is_dropped() {
    let (mut sim, fetch) = follower_at_3_with_a_fetch_in_flight();
    let reply = answer(&sim, &fetch, 10, true, batch_at(10, "k"));
    sim.respond(reply);
    assert_eq!(sim.leo(1), 3);
    assert!(!sim.log(1).may_hold_offset_gaps());
    // The follower asks again and catches up from the real answer.
    sim.now += 100;
    sim.tick(1);
    sim.deliver_all();
    assert_eq!(sim.leo(1), 3);
    sim.produce(Acks::Leader, &["d"]);
    for _ in 0..3 {
        sim.round();
    }
    assert_eq!(sim.leo(1), 4);
}

/// A leader whose log holds no gaps cannot send one: a batch past the fetch offset is
/// refused, even by a follower whose own log may hold gaps.
#[test]
fn a_follower_refuses_a_gap_from_a_leader_whose_log_holds_none() {
    let (mut sim, fetch) = follower_at_3_with_a_fetch_in_flight();
    let reply = answer(&sim, &fetch, 3, false, batch_at(10, "k"));
    sim.respond(reply);
    assert_eq!(sim.leo(1), 3);
    assert!(!sim.log(1).may_hold_offset_gaps());

    // Now let the follower's log hold gaps (a gapped leader's batch once came), and the
    // next leader's log hold none: still refused.
    sim.now += 100;
    sim.tick(1);
    let fetch = sim.network.pop_front().expect("a fetch");
    sim.respond(answer(&sim, &fetch, 3, true, batch_at(5, "x")));
    assert_eq!(sim.leo(1), 6);
    assert!(sim.log(1).may_hold_offset_gaps());
    sim.now += 100;
    sim.tick(1);
    let fetch = sim.network.pop_front().expect("a fetch");
    sim.respond(answer(&sim, &fetch, 6, false, batch_at(9, "y")));
    assert_eq!(sim.leo(1), 6);
}

/// A replica made leader with itself alone in the ISR has every record it holds
/// committed: as Kafka's `makeLeader` (`maybeIncrementLeaderHW`), its high watermark
/// moves to its log end at once, not at its next tick, so consumers of the new leader
/// see those records straight away.
#[test]
fn a_new_leader_alone_in_the_isr_moves_its_high_watermark_at_once() {
    let mut sim = Sim::new(3, config(1));
    let r = answered(sim.produce(Acks::Leader, &["a", "b"]).1);
    assert_eq!(r.error, None);
    assert_eq!(
        (sim.leo(0), sim.hw(0)),
        (2, 0),
        "followers have not fetched"
    );
    sim.elect(0, &[1, 2]);
    assert_eq!(sim.hw(0), 2);
}
