//! Model test for compaction: a compacted `Partition` on `SimStorage` against a
//! `BTreeMap<offset, record>` of the records that must still be there, under random keyed
//! appends (a small key space, tombstones, every codec), rolls, compactions, clock
//! advances, clean reopens and crashes, with tiny segments.
//!
//! The model of one pass that cleaned up to `end` (what `CleanerStats::end_offset` says)
//! at time `now`: below `end`, only the last record of each key stays; a tombstone stays
//! too, and the first pass that keeps it gives it the horizon `now + delete.retention.ms`;
//! a pass at or after its horizon drops it. At and after `end` nothing changes. After every
//! operation the log must read back exactly the model (offsets, keys, values, timestamps)
//! and its log end must not have moved.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use streamlog::{
    CleanupPolicy, Compression, Env, LogConfig, ManualClock, Partition, Record, SimStorage,
};

const DIR: &str = "/sim/compacted-0";
const START_MS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: u8,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

#[derive(Debug, Clone)]
enum Op {
    /// Records as `(key, value length or None for a tombstone, timestamp skew)`.
    Append(Vec<(u8, Option<u8>, i16)>),
    Roll,
    Compact,
    Advance(u16),
    Reopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let record = (0u8..6, prop::option::weighted(0.8, 0u8..40), any::<i16>());
    prop_oneof![
        8 => prop::collection::vec(record, 1..4).prop_map(Op::Append),
        2 => Just(Op::Roll),
        3 => Just(Op::Compact),
        2 => (0u16..400).prop_map(Op::Advance),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    segment_bytes: u64,
    index_interval_bytes: usize,
    codec: usize,
    delete_retention_ms: i64,
    min_compaction_lag_ms: i64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        400u64..1200,
        1usize..300,
        0..Compression::ALL.len(),
        0i64..300,
        prop_oneof![Just(0i64), Just(150)],
    )
        .prop_map(
            |(segment_bytes, index_interval_bytes, codec, retention, lag)| Setup {
                segment_bytes,
                index_interval_bytes,
                codec,
                delete_retention_ms: retention,
                min_compaction_lag_ms: lag,
            },
        )
}

impl Setup {
    fn config(&self) -> LogConfig {
        LogConfig::default()
            .cleanup_policy(CleanupPolicy::Compact)
            .segment_bytes(self.segment_bytes)
            .segment_index_bytes(256)
            .index_interval_bytes(self.index_interval_bytes)
            .compression(Compression::ALL[self.codec])
            .delete_retention_ms(self.delete_retention_ms)
            .min_compaction_lag_ms(self.min_compaction_lag_ms)
    }
}

#[derive(Debug, Default)]
struct Model {
    records: BTreeMap<u64, Rec>,
    /// Delete horizons of the tombstones a pass has kept.
    horizons: HashMap<u64, i64>,
    log_end: u64,
}

impl Model {
    /// One pass that cleaned every segment below `end` at `now_ms`.
    fn compact(&mut self, end: u64, now_ms: i64, retention_ms: i64) {
        let mut last: HashMap<u8, u64> = HashMap::new();
        for (&offset, rec) in self.records.range(..end) {
            last.insert(rec.key, offset);
        }
        let horizons = &mut self.horizons;
        self.records.retain(|&offset, rec| {
            if offset >= end {
                return true;
            }
            if last[&rec.key] != offset {
                return false;
            }
            if rec.value.is_some() {
                return true;
            }
            match horizons.get(&offset) {
                Some(&horizon) if now_ms >= horizon => {
                    horizons.remove(&offset);
                    false
                }
                Some(_) => true,
                None => {
                    horizons.insert(offset, now_ms + retention_ms);
                    true
                }
            }
        });
        self.horizons.retain(|o, _| self.records.contains_key(o));
    }
}

fn read(log: &Partition) -> Result<BTreeMap<u64, Rec>, TestCaseError> {
    let mut out = BTreeMap::new();
    for r in log.read_to_log_end(log.log_start_offset()).unwrap() {
        let r = r.map_err(|e| TestCaseError::fail(format!("read failed: {e}")))?;
        let key = r.key().and_then(|k| k.first().copied());
        let rec = Rec {
            key: key.ok_or_else(|| TestCaseError::fail("record without key"))?,
            value: r.value().map(<[u8]>::to_vec),
            timestamp: r.timestamp(),
        };
        prop_assert!(
            out.insert(r.offset(), rec).is_none(),
            "offset {} twice",
            r.offset()
        );
    }
    Ok(out)
}

fn run(setup: &Setup, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut sim = SimStorage::new();
    let clock = ManualClock::new(START_MS);
    let env = |sim: &SimStorage| Env {
        storage: Arc::new(sim.clone()),
        clock: Arc::new(clock.clone()),
    };
    let open = |sim: &SimStorage| Partition::open_with_env(DIR, setup.config(), env(sim)).unwrap();
    let mut log = open(&sim);
    let mut model = Model::default();
    let mut last_end = 0;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Append(specs) => {
                let now = START_MS.max(clock_now(&clock));
                let records: Vec<Record> = specs
                    .iter()
                    .map(|(key, len, skew)| {
                        Record::default()
                            .with_key(vec![*key, b'-'])
                            .with_value(len.map(|n| vec![*key; n as usize]))
                            .with_timestamp(now + i64::from(*skew))
                    })
                    .collect();
                let range = log.append_records(&records).unwrap();
                prop_assert_eq!(range.start, model.log_end);
                for ((key, len, skew), offset) in specs.iter().zip(range.clone()) {
                    model.records.insert(
                        offset,
                        Rec {
                            key: *key,
                            value: len.map(|n| vec![*key; n as usize]),
                            timestamp: now + i64::from(*skew),
                        },
                    );
                }
                model.log_end = range.end;
            }
            Op::Roll => log.roll().unwrap(),
            Op::Compact => {
                let active_base = log.segments().last().unwrap().base_offset();
                let stats = log.compact().unwrap();
                prop_assert!(!stats.aborted);
                prop_assert!(stats.end_offset <= active_base, "{stats:?}");
                prop_assert!(stats.end_offset >= last_end, "{stats:?} after {last_end}");
                last_end = stats.end_offset;
                if stats.segments_read > 0 {
                    model.compact(
                        stats.end_offset,
                        clock_now(&clock),
                        setup.delete_retention_ms,
                    );
                }
            }
            Op::Advance(ms) => clock.advance_ms(i64::from(*ms)),
            Op::Reopen => {
                log.close().unwrap();
                log = open(&sim);
            }
            Op::Crash => {
                sim = sim.process_crash();
                drop(log);
                log = open(&sim);
            }
        }
        prop_assert_eq!(
            log.log_end_offset(),
            model.log_end,
            "step {}: {:?}",
            step,
            op
        );
        let actual = read(&log)?;
        prop_assert_eq!(&actual, &model.records, "step {}: {:?}", step, op);
    }
    Ok(())
}

fn clock_now(clock: &ManualClock) -> i64 {
    streamlog::Clock::now_ms(clock)
}

/// Cases per run: 64, or `STREAMLOG_MODEL_CASES` for a longer run.
fn model_cases() -> u32 {
    std::env::var("STREAMLOG_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: model_cases(),
        max_shrink_iters: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn compaction_matches_a_map_of_last_values(
        setup in setup(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(&setup, &ops)?;
    }
}
