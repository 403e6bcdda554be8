//! The sans-IO replica rules against the outcomes Kafka's own tests pin down
//! (`PartitionTest`, `IsrExpirationTest`, `ReplicaFetcherThreadTest`,
//! `AbstractFetcherThreadTest`): the leader's high watermark and ISR, the `acks=all` and
//! `min.insync.replicas` gates, leader-side fencing and divergence, and where a follower
//! truncates.

use streamlog::replication::{
    EpochEndOffset, FetchPosition, IsrChange, LeaderConfig, LeaderState, PartitionState,
    ReplicaError, Truncation, check_leader_epoch, truncation_offset, validate_fetch,
};

const LAG: i64 = 100;
const T0: i64 = 1_000_000;

fn config(min_isr: usize) -> LeaderConfig {
    LeaderConfig {
        min_insync_replicas: min_isr,
        replica_lag_time_max_ms: LAG,
    }
}

fn state(replicas: &[u32], isr: &[u32]) -> PartitionState {
    let mut s = PartitionState::new(replicas.to_vec());
    s.isr = isr.to_vec();
    s
}

fn leader(replicas: &[u32], isr: &[u32], min_isr: usize, log_end: u64) -> LeaderState {
    LeaderState::new(
        0,
        &state(replicas, isr),
        config(min_isr),
        log_end,
        0,
        T0,
        None,
    )
}

/// A model epoch cache, `(epoch, start)` pairs and a log end, answering as Kafka's does.
fn end_offset_for(entries: &[(i32, u64)], log_end: u64) -> impl Fn(i32) -> Option<EpochEndOffset> {
    let entries = entries.to_vec();
    move |epoch| {
        let first = entries.first()?;
        if epoch < first.0 {
            return Some(EpochEndOffset {
                epoch,
                end_offset: first.1,
            });
        }
        let i = entries.iter().rposition(|e| e.0 <= epoch)?;
        if i + 1 == entries.len() && epoch > entries[i].0 {
            return None;
        }
        let end_offset = entries.get(i + 1).map_or(log_end, |next| next.1);
        Some(EpochEndOffset {
            epoch: entries[i].0,
            end_offset,
        })
    }
}

// --- high watermark --------------------------------------------------------------------------

#[test]
fn the_high_watermark_is_the_smallest_log_end_in_the_isr() {
    // ISR = {leader, 2}; follower 1 is out of it. Leader log end 5.
    let mut l = leader(&[0, 1, 2], &[0, 2], 1, 5);
    assert_eq!(l.high_watermark(), 0, "appends alone do not move it");
    l.on_follower_fetch(1, 0, Some(0), T0, 5);
    assert_eq!(l.high_watermark(), 0);
    l.on_follower_fetch(2, 1, Some(0), T0, 5);
    assert_eq!(
        l.high_watermark(),
        1,
        "the out-of-sync follower does not hold it"
    );
    l.on_follower_fetch(2, 5, Some(0), T0, 5);
    assert_eq!(l.high_watermark(), 5);
}

#[test]
fn the_high_watermark_never_moves_back_nor_past_the_log_end() {
    let mut l = leader(&[0, 1], &[0, 1], 1, 10);
    l.on_follower_fetch(1, 8, None, T0, 10);
    assert_eq!(l.high_watermark(), 8);
    l.on_follower_fetch(1, 6, None, T0 + 1, 10);
    assert_eq!(l.high_watermark(), 8);
    let checkpointed = LeaderState::new(0, &state(&[0], &[0]), config(1), 3, 5, T0, None);
    assert_eq!(checkpointed.high_watermark(), 3);
}

#[test]
fn a_caught_up_follower_outside_the_isr_holds_the_high_watermark_unless_fenced() {
    // The ISR shrank to {leader}; the follower sits at 10, the leader at 20.
    let mut l = leader(&[0, 1], &[0], 1, 20);
    l.on_follower_fetch(1, 10, None, T0, 10);
    l.maybe_advance_high_watermark(20, T0);
    assert_eq!(l.high_watermark(), 10);
    l.set_fenced(vec![1]);
    l.maybe_advance_high_watermark(20, T0);
    assert_eq!(l.high_watermark(), 20);
}

#[test]
fn the_high_watermark_waits_while_the_isr_is_below_min_insync() {
    // min.insync = 3, ISR {leader, 1}: both followers reach the log end, yet nothing
    // moves until the expansion commits; then the high watermark jumps to the log end.
    let mut l = leader(&[0, 1, 2], &[0, 1], 3, 10);
    l.on_follower_fetch(1, 10, None, T0, 10);
    let change = l.on_follower_fetch(2, 10, None, T0, 10);
    assert_eq!(l.high_watermark(), 0);
    let change = change.expect("follower 2 caught up: expansion proposed");
    assert_eq!(change.isr, [0, 1, 2]);
    assert_eq!(l.maximal_isr(), [0, 1, 2]);
    assert_eq!(l.isr(), [0, 1]);
    l.isr_change_committed(change.isr, 1, 10, T0);
    assert_eq!(l.high_watermark(), 10);
}

// --- ISR expansion and shrink -----------------------------------------------------------------

#[test]
fn a_follower_joins_the_isr_when_it_reaches_the_high_watermark() {
    let mut l = leader(&[0, 1, 2], &[0, 1], 1, 10);
    l.on_follower_fetch(1, 10, None, T0, 10);
    assert_eq!(l.high_watermark(), 10);
    assert_eq!(l.on_follower_fetch(2, 3, None, T0, 10), None);
    let change = l.on_follower_fetch(2, 10, None, T0, 10);
    assert_eq!(
        change,
        Some(IsrChange {
            isr: vec![0, 1, 2],
            partition_epoch: 0
        })
    );
}

#[test]
fn a_follower_joins_only_after_reaching_the_current_epochs_start() {
    // Leader of a new epoch that began at log end 5 with a checkpointed high watermark 2.
    let mut l = LeaderState::new(0, &state(&[0, 1, 2], &[0, 1]), config(1), 5, 2, T0, None);
    assert_eq!(l.epoch_start_offset(), 5);
    assert_eq!(
        l.on_follower_fetch(2, 3, None, T0, 5),
        None,
        "3 ≥ HW but < 5"
    );
    assert!(l.on_follower_fetch(2, 5, None, T0, 5).is_some());
}

#[test]
fn followers_that_stop_fetching_leave_the_isr_after_the_lag() {
    // Right after becoming leader, ISR followers count as caught up as of that moment.
    let mut l = leader(&[0, 1, 2], &[0, 1, 2], 1, 10);
    l.on_follower_fetch(1, 10, None, T0, 10);
    assert_eq!(l.maybe_shrink_isr(T0 + LAG, 10), None);
    let change = l
        .maybe_shrink_isr(T0 + LAG + 1, 10)
        .expect("2 never fetched");
    assert_eq!(change.isr, [0, 1]);
    // The HW waits for the shrink to commit (2 is still in the maximal ISR), then jumps.
    l.maybe_advance_high_watermark(10, T0 + LAG + 1);
    assert_eq!(l.high_watermark(), 0);
    l.isr_change_committed(change.isr, 1, 10, T0 + LAG + 1);
    assert_eq!(l.high_watermark(), 10);
    assert_eq!(l.partition_epoch(), 1);
}

#[test]
fn a_slow_follower_leaves_and_one_fetch_to_the_end_brings_it_back_in_sync() {
    let mut l = leader(&[0, 1], &[0, 1], 1, 10);
    l.on_follower_fetch(1, 4, None, T0 + 50, 10);
    l.on_follower_fetch(1, 6, None, T0 + 90, 12);
    // It fetches, but never reaches the log end: out of sync once the lag passes.
    assert!(l.maybe_shrink_isr(T0 + LAG + 60, 14).is_some());
    l.isr_change_failed();
    l.on_follower_fetch(1, 14, None, T0 + LAG + 70, 14);
    assert_eq!(l.maybe_shrink_isr(T0 + LAG + 80, 14), None);
}

#[test]
fn a_follower_at_the_log_end_is_never_out_of_sync() {
    let mut l = leader(&[0, 1], &[0, 1], 1, 10);
    l.on_follower_fetch(1, 10, None, T0, 10);
    assert_eq!(l.maybe_shrink_isr(T0 + 10_000, 10), None);
}

#[test]
fn a_follower_that_reached_the_previous_log_end_is_not_shrunk() {
    // It reached the leader's log end as seen at its previous fetch: caught up then.
    let mut l = leader(&[0, 1], &[0, 1], 1, 10);
    l.on_follower_fetch(1, 10, None, T0 + 10_000 - 50, 15);
    l.on_follower_fetch(1, 15, None, T0 + 10_000, 20);
    assert_eq!(l.maybe_shrink_isr(T0 + 10_000 + LAG - 60, 20), None);
}

#[test]
fn only_one_isr_change_is_in_flight() {
    let mut l = leader(&[0, 1, 2], &[0, 1], 1, 10);
    let shrink = l.maybe_shrink_isr(T0 + LAG + 1, 10);
    assert!(shrink.is_some() && l.has_pending_isr_change());
    assert_eq!(l.on_follower_fetch(2, 10, None, T0 + LAG + 1, 10), None);
    assert_eq!(l.maybe_shrink_isr(T0 + LAG + 2, 10), None);
    l.isr_change_failed();
    assert_eq!(l.isr(), [0, 1], "a refused change leaves the committed ISR");
}

#[test]
fn fenced_followers_never_join_and_are_shrunk() {
    let mut l = leader(&[0, 1, 2], &[0, 1], 1, 10);
    l.set_fenced(vec![2]);
    l.on_follower_fetch(1, 10, None, T0, 10);
    assert_eq!(l.on_follower_fetch(2, 10, None, T0, 10), None);
    l.set_fenced(vec![1]);
    assert_eq!(l.maybe_shrink_isr(T0, 10).map(|c| c.isr), Some(vec![0]));
}

#[test]
fn a_repeat_of_the_same_epoch_keeps_follower_state_and_a_new_epoch_resets_it() {
    let mut l = leader(&[0, 1], &[0, 1], 1, 10);
    l.on_follower_fetch(1, 7, None, T0, 10);
    let mut s = state(&[0, 1], &[0, 1]);
    s.partition_epoch = 1;
    let same = LeaderState::new(0, &s, config(1), 12, 7, T0 + 5, Some(&l));
    assert_eq!(same.follower(1).unwrap().log_end_offset, Some(7));
    assert_eq!(same.epoch_start_offset(), 10);
    s.leader_epoch = 1;
    let next = LeaderState::new(0, &s, config(1), 12, 7, T0 + 5, Some(&l));
    assert_eq!(next.follower(1).unwrap().log_end_offset, None);
    assert_eq!(next.follower(1).unwrap().last_caught_up_ms, Some(T0 + 5));
    assert_eq!(next.epoch_start_offset(), 12);
}

#[test]
fn status_flags_follow_the_isr_size() {
    let l = leader(&[0, 1, 2], &[0, 1, 2], 1, 0);
    assert!(!l.is_under_replicated());
    let l = leader(&[0, 1, 2], &[0], 1, 0);
    assert!(l.is_under_replicated() && l.is_at_min_isr() && !l.is_under_min_isr());
    let l = leader(&[0, 1, 2], &[0], 2, 0);
    assert!(l.is_under_min_isr());
    // Effective min ISR = min(min.insync, replication factor).
    let l = leader(&[0], &[0], 2, 0);
    assert_eq!(l.effective_min_isr(), 1);
    assert!(!l.is_under_min_isr());
}

// --- acks=all and min.insync.replicas ---------------------------------------------------------

#[test]
fn acks_all_is_refused_before_the_append_when_the_isr_is_too_small() {
    let l = leader(&[0, 1, 2], &[0], 2, 0);
    assert_eq!(
        l.check_before_append(true),
        Err(ReplicaError::NotEnoughReplicas)
    );
    assert_eq!(l.check_before_append(false), Ok(()), "acks=0/1 ignore it");
    let l = leader(&[0, 1, 2], &[0, 1], 2, 0);
    assert_eq!(l.check_before_append(true), Ok(()));
}

#[test]
fn acks_all_completes_when_the_high_watermark_passes_the_batch() {
    let mut l = leader(&[0, 1], &[0, 1], 2, 5);
    assert_eq!(l.check_replicated(5), None, "no follower has it yet");
    l.on_follower_fetch(1, 5, None, T0, 5);
    assert_eq!(l.check_replicated(5), Some(Ok(())));
}

#[test]
fn acks_all_fails_after_the_append_when_the_isr_shrank_meanwhile() {
    // min.insync 2, RF 3, ISR {0,1,2}: a record at 10; follower 1 has it, 2 stops.
    let mut l = leader(&[0, 1, 2], &[0, 1, 2], 2, 11);
    l.on_follower_fetch(1, 11, None, T0, 11);
    l.on_follower_fetch(2, 10, None, T0, 11);
    assert_eq!(l.check_replicated(11), None);
    // 2 falls out, then 1 falls out before it commits: the HW moves, but only the leader
    // is left in sync.
    let shrink = l.maybe_shrink_isr(T0 + LAG + 1, 11).unwrap();
    assert_eq!(shrink.isr, [0, 1]);
    l.isr_change_committed(shrink.isr, 1, 11, T0 + LAG + 1);
    assert_eq!(l.check_replicated(11), Some(Ok(())));
    let mut l2 = leader(&[0, 1, 2], &[0, 1], 2, 11);
    l2.on_follower_fetch(1, 11, None, T0, 11);
    let shrink = l2.maybe_shrink_isr(T0 + 10_000, 12).unwrap();
    assert_eq!(shrink.isr, [0]);
    assert_eq!(
        l2.check_replicated(11),
        Some(Ok(())),
        "still maximal [0, 1]"
    );
    l2.isr_change_committed(shrink.isr, 1, 12, T0 + 10_000);
    assert_eq!(
        l2.check_replicated(11),
        Some(Err(ReplicaError::NotEnoughReplicasAfterAppend))
    );
}

// --- leader-side fencing and divergence --------------------------------------------------------

#[test]
fn requests_with_an_old_epoch_are_fenced_and_a_new_one_is_unknown() {
    assert_eq!(check_leader_epoch(None, 5), Ok(()));
    assert_eq!(check_leader_epoch(Some(5), 5), Ok(()));
    assert_eq!(
        check_leader_epoch(Some(4), 5),
        Err(ReplicaError::FencedLeaderEpoch)
    );
    assert_eq!(
        check_leader_epoch(Some(6), 5),
        Err(ReplicaError::UnknownLeaderEpoch)
    );
}

/// The leader of PartitionTest.testLastFetchedOffsetValidation: epochs 0@[0,2), 3@[2,8),
/// 4@[8,13), 7@13, 9@[14,17), log end 17, current epoch 10.
const EPOCHS: [(i32, u64); 6] = [(0, 0), (3, 2), (4, 8), (7, 13), (9, 14), (10, 17)];

fn check(
    entries: &[(i32, u64)],
    log_start: u64,
    epoch: i32,
    offset: u64,
) -> Result<FetchPosition, ReplicaError> {
    validate_fetch(
        offset,
        Some(epoch),
        log_start,
        17,
        end_offset_for(entries, 17),
    )
}

fn diverging(epoch: i32, end_offset: u64) -> Result<FetchPosition, ReplicaError> {
    Ok(FetchPosition::Diverging(EpochEndOffset {
        epoch,
        end_offset,
    }))
}

#[test]
fn the_leader_finds_where_a_fetchers_log_diverges() {
    assert_eq!(check(&EPOCHS, 0, 2, 5), diverging(0, 2));
    assert_eq!(check(&EPOCHS, 0, 0, 4), diverging(0, 2));
    assert_eq!(check(&EPOCHS, 0, 6, 6), diverging(4, 13));
    assert_eq!(check(&EPOCHS, 0, 5, 9), diverging(4, 13));
    assert_eq!(check(&EPOCHS, 0, 10, 18), diverging(10, 17));
    for (epoch, offset) in [(0, 2), (7, 14), (9, 17), (10, 17)] {
        assert_eq!(check(&EPOCHS, 0, epoch, offset), Ok(FetchPosition::Read));
    }
    assert_eq!(
        check(&EPOCHS, 0, 11, 5),
        Err(ReplicaError::OffsetOutOfRange)
    );
}

#[test]
fn below_the_log_start_is_out_of_range_before_divergence_is_checked() {
    // Log start moved to 5: the cache keeps the entry covering 5 and starts it there.
    let from_5 = [(3, 5), (4, 8), (7, 13), (9, 14), (10, 17)];
    assert_eq!(check(&from_5, 5, 2, 8), diverging(2, 5));
    assert_eq!(check(&from_5, 5, 0, 5), Ok(FetchPosition::Read));
    assert_eq!(check(&from_5, 5, 3, 5), Ok(FetchPosition::Read));
    assert_eq!(check(&from_5, 5, 0, 0), Err(ReplicaError::OffsetOutOfRange));
    let from_10 = [(4, 10), (7, 13), (9, 14), (10, 17)];
    assert_eq!(
        check(&from_10, 10, 0, 9),
        Err(ReplicaError::OffsetOutOfRange)
    );
    assert_eq!(
        check(&from_10, 10, 4, 9),
        Err(ReplicaError::OffsetOutOfRange)
    );
}

#[test]
fn a_consumer_fetch_past_the_log_end_is_out_of_range() {
    let lookup = end_offset_for(&EPOCHS, 17);
    assert_eq!(
        validate_fetch(17, None, 0, 17, &lookup),
        Ok(FetchPosition::Read)
    );
    assert_eq!(
        validate_fetch(18, None, 0, 17, &lookup),
        Err(ReplicaError::OffsetOutOfRange)
    );
}

// --- follower truncation -----------------------------------------------------------------------

fn done(offset: u64) -> Truncation {
    Truncation {
        offset,
        completed: true,
    }
}

#[test]
fn a_follower_truncates_to_the_smaller_end_of_the_epoch() {
    // The follower's epoch 5 ends at 200.
    let own = end_offset_for(&[(1, 0), (5, 100)], 200);
    let answer = |end_offset| {
        Some(EpochEndOffset {
            epoch: 5,
            end_offset,
        })
    };
    assert_eq!(truncation_offset(answer(156), 200, 0, &own), done(156));
    assert_eq!(truncation_offset(answer(172), 200, 0, &own), done(172));
}

#[test]
fn a_follower_without_the_epoch_caps_the_truncation_at_its_log_end() {
    let own = |_| None;
    let answer = |end_offset| {
        Some(EpochEndOffset {
            epoch: 4,
            end_offset,
        })
    };
    assert_eq!(truncation_offset(answer(156), 200, 0, own), done(156));
    assert_eq!(truncation_offset(answer(202), 200, 0, own), done(200));
}

/// A follower cache answering `epoch → (its epoch, end offset)` as listed.
fn mocked(answers: &[(i32, (i32, u64))]) -> impl Fn(i32) -> Option<EpochEndOffset> {
    let answers = answers.to_vec();
    move |asked| {
        answers
            .iter()
            .find(|(e, _)| *e == asked)
            .map(|(_, (epoch, end_offset))| EpochEndOffset {
                epoch: *epoch,
                end_offset: *end_offset,
            })
    }
}

fn at(epoch: i32, end_offset: u64) -> Option<EpochEndOffset> {
    Some(EpochEndOffset { epoch, end_offset })
}

#[test]
fn an_epoch_unknown_to_the_follower_takes_a_second_round_trip() {
    // The follower (latest epoch 5) never had the leader's epoch 4: its largest epoch at
    // or below 4 is 3, ending at 120. It cuts to 120, asks for epoch 3, then cuts to the
    // leader's answer.
    let own = end_offset_for(&[(1, 0), (3, 100), (5, 120)], 200);
    assert_eq!(own(4), at(3, 120));
    for (leader_end, final_end) in [(155, 101), (143, 102)] {
        let first = truncation_offset(at(4, leader_end), 200, 0, &own);
        assert_eq!(
            first,
            Truncation {
                offset: 120,
                completed: false
            }
        );
        let own = end_offset_for(&[(1, 0), (3, 100)], 120);
        assert_eq!(
            truncation_offset(at(3, final_end), 120, 0, &own),
            done(final_end)
        );
    }
}

#[test]
fn a_diverging_epoch_is_resolved_against_the_followers_own_epochs() {
    // ReplicaFetcherThreadTest: the follower's cache answers 4 → (4, 149), 3 → (2, 129),
    // 2 → (1, 119).
    let own = mocked(&[(4, (4, 149)), (3, (2, 129)), (2, (1, 119))]);
    assert_eq!(truncation_offset(at(4, 140), 200, 0, &own), done(140));
    let t = truncation_offset(at(3, 130), 200, 0, &own);
    assert_eq!((t.offset, t.completed), (129, false));
    let t = truncation_offset(at(2, 120), 200, 0, &own);
    assert_eq!((t.offset, t.completed), (119, false));
}

#[test]
fn an_undefined_answer_truncates_to_the_high_watermark() {
    let own = end_offset_for(&[(0, 0)], 200);
    assert_eq!(truncation_offset(None, 200, 150, &own), done(150));
    assert_eq!(truncation_offset(None, 100, 150, &own), done(100));
}
