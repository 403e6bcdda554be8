//! Model test: a `Partition` on `SimStorage` against a plain `Vec` of records, under random
//! sequences of appends (single, batch, pre-encoded with any codec), reads, bounded reads,
//! truncation, delete-records, rolls, flushes, clean reopens and crashes, with tiny segments
//! and indexes so that rolls and full indexes happen all the time.
//!
//! After every operation the log end offset, log start offset and high watermark must match
//! the model, the segments must tile the offsets, and `read_from(log_start)` must return
//! exactly the model's records.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use streamlog::record::encode_batch;
use streamlog::{
    Clock, Compression, Env, Error, LogConfig, LogRecord, ManualClock, Partition, PowerLoss,
    Record, RecordView, SimStorage, Storage,
};

const DIR: &str = "/sim/model-0";
const START_MS: i64 = 1_700_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: u64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

impl Rec {
    fn of(r: &LogRecord) -> Rec {
        Rec {
            offset: r.offset(),
            key: r.key().map(<[u8]>::to_vec),
            value: r.value().map(<[u8]>::to_vec),
            timestamp: r.timestamp(),
        }
    }

    fn of_view(r: &RecordView<'_>) -> Rec {
        Rec {
            offset: r.offset(),
            key: r.key().map(<[u8]>::to_vec),
            value: r.value().map(<[u8]>::to_vec),
            timestamp: r.timestamp(),
        }
    }
}

/// A record to append: key, value and (when `Some`) an explicit timestamp.
#[derive(Clone)]
struct Spec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: Option<i64>,
}

impl std::fmt::Debug for Spec {
    /// Compact, so a shrunk failing case stays readable: key and value lengths, timestamp.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = |b: &Option<Vec<u8>>| b.as_ref().map_or("null".into(), |b| b.len().to_string());
        let ts = self.timestamp.map_or("now".into(), |t| t.to_string());
        write!(f, "k{}/v{}/t{}", len(&self.key), len(&self.value), ts)
    }
}

impl Spec {
    fn record(&self) -> Record {
        let mut r = Record::default().with_value(self.value.clone());
        if let Some(key) = &self.key {
            r = r.with_key(key.clone());
        }
        if let Some(ts) = self.timestamp {
            r = r.with_timestamp(ts);
        }
        r
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(Spec),
    AppendBatch(Vec<Spec>),
    /// A batch encoded by the caller with codec `Compression::ALL[n]`, via `append_encoded`.
    AppendEncoded(Vec<Spec>, usize),
    Read(u64),
    ReadMaxBytes(u64, usize),
    Truncate(u64),
    DeleteBefore(u64),
    Roll,
    Flush,
    AdvanceClock(i64),
    Reopen,
    /// Flush, then lose power: nothing may be lost.
    CrashAfterFlush(u64),
    /// Lose power with un-flushed data: the log comes back as a prefix holding at least
    /// everything below the recovery point.
    Crash(u64),
}

#[derive(Debug, Clone)]
struct Setup {
    segment_bytes: u64,
    segment_ms: i64,
    segment_index_bytes: usize,
    index_interval_bytes: usize,
    compression: usize,
}

impl Setup {
    fn config(&self) -> LogConfig {
        LogConfig::default()
            .segment_bytes(self.segment_bytes)
            .segment_ms(self.segment_ms)
            .segment_index_bytes(self.segment_index_bytes)
            .index_interval_bytes(self.index_interval_bytes)
            .compression(Compression::ALL[self.compression])
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..6)),
        proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..24)),
        proptest::option::weighted(0.5, 0i64..1_000_000),
    )
        .prop_map(|(key, value, timestamp)| Spec {
            key,
            value,
            timestamp,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => spec().prop_map(Op::Append),
        4 => proptest::collection::vec(spec(), 1..=20).prop_map(Op::AppendBatch),
        3 => (proptest::collection::vec(spec(), 1..=20), 0..Compression::ALL.len())
            .prop_map(|(specs, codec)| Op::AppendEncoded(specs, codec)),
        3 => any::<u64>().prop_map(Op::Read),
        2 => (any::<u64>(), 0usize..2_000).prop_map(|(at, max)| Op::ReadMaxBytes(at, max)),
        2 => any::<u64>().prop_map(Op::Truncate),
        2 => any::<u64>().prop_map(Op::DeleteBefore),
        1 => Just(Op::Roll),
        1 => Just(Op::Flush),
        1 => (0i64..300).prop_map(Op::AdvanceClock),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(Op::CrashAfterFlush),
        1 => any::<u64>().prop_map(Op::Crash),
    ]
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        300u64..2_000,
        50i64..1_000,
        48usize..200,
        1usize..200,
        0..Compression::ALL.len(),
    )
        .prop_map(
            |(segment_bytes, segment_ms, segment_index_bytes, index_interval_bytes, c)| Setup {
                segment_bytes,
                segment_ms,
                segment_index_bytes,
                index_interval_bytes,
                compression: c,
            },
        )
}

/// One batch in the model: its offsets and, when known, its size in bytes.
#[derive(Debug, Clone)]
struct Batch {
    offsets: Range<u64>,
    size: Option<usize>,
}

#[derive(Debug, Default)]
struct Model {
    /// The records at `log_start..leo`, in order.
    records: Vec<Rec>,
    /// The batches holding them (the first may start below the log start).
    batches: Vec<Batch>,
    log_start: u64,
    leo: u64,
    /// Everything below this was flushed (by flush, roll, reopen), lowered by truncation.
    flushed: u64,
    /// Every version ever written at each offset (truncated ones can come back after a
    /// crash, since truncation is not synced).
    history: HashMap<u64, Vec<Rec>>,
}

impl Model {
    fn append(&mut self, specs: &[Spec], now: i64, size: usize) -> Range<u64> {
        let start = self.leo;
        for (i, s) in specs.iter().enumerate() {
            let rec = Rec {
                offset: start + i as u64,
                key: s.key.clone(),
                value: s.value.clone(),
                timestamp: s.timestamp.unwrap_or(now),
            };
            self.history
                .entry(rec.offset)
                .or_default()
                .push(rec.clone());
            self.records.push(rec);
        }
        self.leo = start + specs.len() as u64;
        self.batches.push(Batch {
            offsets: start..self.leo,
            size: Some(size),
        });
        start..self.leo
    }

    fn from(&self, offset: u64) -> &[Rec] {
        &self.records[(offset - self.log_start) as usize..]
    }

    fn batch_holding(&self, offset: u64) -> Option<&Batch> {
        self.batches.iter().find(|b| b.offsets.contains(&offset))
    }

    fn cut_to(&mut self, leo: u64) {
        self.records.retain(|r| r.offset < leo);
        self.batches.retain(|b| b.offsets.end <= leo);
        self.leo = leo;
        self.flushed = self.flushed.min(leo);
    }
}

struct Harness {
    setup: Setup,
    storage: SimStorage,
    clock: ManualClock,
    log: Option<Partition>,
    model: Model,
}

impl Harness {
    fn new(setup: Setup) -> Self {
        let storage = SimStorage::default();
        let clock = ManualClock::new(START_MS);
        let mut h = Harness {
            setup,
            storage,
            clock,
            log: None,
            model: Model::default(),
        };
        h.open();
        h
    }

    fn open(&mut self) {
        let env = Env {
            storage: Arc::new(self.storage.clone()),
            clock: Arc::new(self.clock.clone()),
        };
        self.log = Some(Partition::open_with_env(DIR, self.setup.config(), env).unwrap());
    }

    fn log(&self) -> &Partition {
        self.log.as_ref().unwrap()
    }

    fn encoded_size(&self, specs: &[Spec], codec: Compression) -> (Vec<u8>, usize) {
        let records: Vec<Record> = specs.iter().map(Spec::record).collect();
        let mut buf = Vec::new();
        encode_batch(&records, codec, self.clock.now_ms(), &mut buf).unwrap();
        let size = buf.len();
        (buf, size)
    }

    fn expect_append(&mut self, specs: &[Spec], size: usize, got: streamlog::Result<Range<u64>>) {
        if size as u64 > self.setup.segment_bytes {
            match got {
                Err(Error::BatchLargerThanSegment {
                    size: s,
                    segment_bytes,
                }) => {
                    assert_eq!((s, segment_bytes), (size, self.setup.segment_bytes));
                }
                other => panic!("batch of {size} B: expected BatchLargerThanSegment: {other:?}"),
            }
            return;
        }
        let now = self.clock.now_ms();
        let want = self.model.append(specs, now, size);
        assert_eq!(got.unwrap(), want);
    }

    fn apply(&mut self, op: &Op) {
        let leo = self.model.leo;
        match op {
            Op::Append(s) => {
                let codec = Compression::ALL[self.setup.compression];
                let (_, size) = self.encoded_size(std::slice::from_ref(s), codec);
                let got = self.log().append(s.record()).map(|o| o..o + 1);
                self.expect_append(std::slice::from_ref(s), size, got);
            }
            Op::AppendBatch(specs) => {
                let codec = Compression::ALL[self.setup.compression];
                let (_, size) = self.encoded_size(specs, codec);
                let got = self
                    .log()
                    .append_batch(specs.iter().map(Spec::record).collect());
                self.expect_append(specs, size, got);
            }
            Op::AppendEncoded(specs, codec) => {
                let (bytes, size) = self.encoded_size(specs, Compression::ALL[*codec]);
                let got = self.log().append_encoded(&bytes);
                self.expect_append(specs, size, got);
            }
            Op::Read(at) => self.check_read(at % (leo + 4)),
            Op::ReadMaxBytes(at, max) => self.check_read_max_bytes(at % (leo + 4), *max),
            Op::Truncate(at) => self.truncate(at % (leo + 3)),
            Op::DeleteBefore(at) => self.delete_before(at % (leo + 2)),
            Op::Roll => {
                self.log().roll().unwrap();
                self.model.flushed = self.model.leo;
            }
            Op::Flush => {
                self.log().flush().unwrap();
                assert_eq!(self.log().recovery_point(), self.model.leo);
                self.model.flushed = self.model.leo;
            }
            Op::AdvanceClock(ms) => self.clock.advance_ms(*ms),
            Op::Reopen => {
                self.log.take().unwrap().close().unwrap();
                // A close gives back every reservation.
                for path in self.storage.list_dir(Path::new(DIR)).unwrap() {
                    assert_eq!(self.storage.reserved_past_end(&path), 0, "{path:?}");
                }
                self.open();
                self.model.flushed = self.model.leo;
            }
            Op::CrashAfterFlush(seed) => {
                self.log().flush().unwrap();
                self.crash(
                    *seed,
                    PowerLoss {
                        garbage: false,
                        lose_indexes: false,
                    },
                );
                self.model.flushed = self.model.leo;
            }
            Op::Crash(seed) => {
                // What must survive: everything the log calls flushed (its recovery point)
                // and everything flushed by an explicit flush, roll or reopen. (After an
                // unclean open the recovery point restarts from the checkpoint, below data
                // that is in fact durable.)
                let durable = self.log().recovery_point().max(self.model.flushed);
                self.crash(*seed, PowerLoss::default());
                self.adopt_after_crash(durable);
            }
        }
    }

    fn crash(&mut self, seed: u64, faults: PowerLoss) {
        let crashed = self.storage.power_loss_with(seed, faults);
        // The old disk and its handles are discarded; closing it cannot affect `crashed`.
        drop(self.log.take());
        self.storage = crashed;
        self.open();
    }

    /// After losing un-flushed data: the log must be the model up to the recovery point,
    /// followed by a gap-free run of records that were each written at their offset at
    /// some time. The model then takes what survived.
    fn adopt_after_crash(&mut self, durable: u64) {
        let log = self.log.as_ref().unwrap();
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        let m = &self.model;
        assert!(start == m.log_start, "log start {start} != {}", m.log_start);
        let kept = durable.max(m.log_start);
        assert!(
            end >= kept,
            "log end {end} lost flushed records below {durable}"
        );
        let got: Vec<Rec> = log
            .read_from(start)
            .unwrap()
            .map(|r| Rec::of(&r.unwrap()))
            .collect();
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (start..end).collect::<Vec<_>>()
        );
        for r in &got {
            if r.offset < kept {
                assert_eq!(r, &m.records[(r.offset - m.log_start) as usize]);
            } else {
                let versions = m.history.get(&r.offset).map(Vec::as_slice).unwrap_or(&[]);
                assert!(
                    versions.contains(r),
                    "{r:?} was never written at its offset"
                );
            }
        }
        // Rediscover the batches: a one-byte read returns exactly one batch. The first may
        // start below the log start, where it cannot be read: take that from the model.
        let mut batches: Vec<Batch> = Vec::new();
        let mut at = start;
        while at < end {
            let next = log.read_max_bytes(at, 1).unwrap().last().unwrap().unwrap();
            let first = if batches.is_empty() {
                m.batch_holding(at).map_or(at, |b| b.offsets.start.min(at))
            } else {
                at
            };
            batches.push(Batch {
                offsets: first..next.offset() + 1,
                size: None,
            });
            at = next.offset() + 1;
        }
        let model = &mut self.model;
        model.records = got;
        model.batches = batches;
        model.leo = end;
        model.flushed = kept.min(end);
    }

    fn check_read(&self, at: u64) {
        let m = &self.model;
        let result = self.log().read_from(at);
        if at < m.log_start || at > m.leo {
            match result {
                Err(Error::OffsetOutOfRange {
                    requested,
                    log_start,
                    log_end,
                }) => assert_eq!((requested, log_start, log_end), (at, m.log_start, m.leo)),
                other => panic!("read_from({at}): expected OffsetOutOfRange, got {other:?}"),
            }
            return;
        }
        let got: Vec<Rec> = result.unwrap().map(|r| Rec::of(&r.unwrap())).collect();
        assert_eq!(got, m.from(at), "read_from({at})");
        // The borrowed paths hand out the same records.
        let mut records = self.log().read_from(at).unwrap();
        let mut views = Vec::new();
        while let Some(r) = records.next_view() {
            views.push(Rec::of_view(&r.unwrap()));
        }
        assert_eq!(views, got, "next_view from {at}");
        views.clear();
        let mut records = self.log().read_from(at).unwrap();
        records
            .try_for_each_view(|r| {
                views.push(Rec::of_view(&r));
                Ok::<(), Error>(())
            })
            .unwrap();
        assert_eq!(views, got, "try_for_each_view from {at}");
        assert!(records.next_view().is_none(), "the read is over");
    }

    fn check_read_max_bytes(&self, at: u64, max: usize) {
        let m = &self.model;
        let result = self.log().read_max_bytes(at, max);
        if at < m.log_start || at > m.leo {
            assert!(matches!(result, Err(Error::OffsetOutOfRange { .. })));
            return;
        }
        let mut records = result.unwrap();
        let got: Vec<Rec> = records.by_ref().map(|r| Rec::of(&r.unwrap())).collect();
        let end = got.last().map_or(at, |r| r.offset + 1);
        assert_eq!(records.next_offset(), end.max(at));
        assert_eq!(got, &m.from(at)[..got.len()], "read_max_bytes({at}, {max})");
        if at == m.leo {
            assert!(got.is_empty());
            return;
        }
        // Whole batches from the one holding `at`, as many as fit after the first.
        let mut want_end = None;
        let mut budget = Some(max);
        for batch in m.batches.iter().filter(|b| b.offsets.end > at) {
            let first = want_end.is_none();
            match (batch.size, budget) {
                (Some(size), Some(left)) => {
                    if !first && size > left {
                        break;
                    }
                    budget = Some(left.saturating_sub(size));
                    want_end = Some(batch.offsets.end);
                }
                _ => {
                    // Size unknown (after a crash): only the first batch is certain.
                    budget = None;
                    if first {
                        want_end = Some(batch.offsets.end);
                    }
                }
            }
        }
        let want_end = want_end.unwrap();
        if budget.is_some() {
            assert_eq!(end, want_end, "read_max_bytes({at}, {max}) end");
        } else {
            assert!(
                end >= want_end,
                "read_max_bytes({at}, {max}) returned a partial batch"
            );
            assert!(
                m.batches.iter().any(|b| b.offsets.end == end),
                "read_max_bytes({at}, {max}) ended inside a batch at {end}"
            );
        }
    }

    fn truncate(&mut self, at: u64) {
        let got = self.log().truncate_to(at).unwrap();
        let m = &mut self.model;
        if at >= m.leo {
            assert_eq!(got, m.leo);
            return;
        }
        if at < m.log_start {
            assert_eq!(got, at);
            m.records.clear();
            m.batches.clear();
            m.log_start = at;
            m.leo = at;
            m.flushed = m.flushed.min(at);
            return;
        }
        let batch = m.batch_holding(at).unwrap().offsets.clone();
        if batch.start < m.log_start {
            // The batch holding `at` straddles the log start: the log must end up empty,
            // with its start no later than before and its end equal to its start.
            let log = self.log.as_ref().unwrap();
            let (start, end) = (log.log_start_offset(), log.log_end_offset());
            assert!(
                start <= end,
                "truncate_to({at}) into the batch {batch:?} straddling log start {}: log start {start} > log end {end}",
                m.log_start
            );
            assert_eq!(got, end);
            assert_eq!(start, end, "nothing may remain");
            assert!(batch.start <= start && start <= m.log_start);
            m.records.clear();
            m.batches.clear();
            m.log_start = start;
            m.leo = end;
            m.flushed = m.flushed.min(end);
            return;
        }
        assert_eq!(
            got, batch.start,
            "truncate_to({at}) removes the batch {batch:?}"
        );
        m.cut_to(batch.start);
    }

    fn delete_before(&mut self, at: u64) {
        let result = self.log().delete_records_before(at);
        let m = &mut self.model;
        if at > m.leo {
            assert!(
                matches!(result, Err(Error::OffsetOutOfRange { requested, .. }) if requested == at),
                "delete_records_before({at}) above HW {}: {result:?}",
                m.leo
            );
            return;
        }
        if at <= m.log_start {
            assert_eq!(result.unwrap(), m.log_start);
            return;
        }
        assert_eq!(result.unwrap(), at);
        // Every segment wholly below the new log start is gone.
        let segments = self.log.as_ref().unwrap().segments();
        for pair in segments.windows(2) {
            assert!(
                pair[1].base_offset() > at,
                "segment {} lies wholly below the new log start {at}",
                pair[0].base_offset()
            );
        }
        m.log_start = at;
        m.records.retain(|r| r.offset >= at);
        m.batches.retain(|b| b.offsets.end > at);
    }

    fn check(&self, op: &Op) {
        let log = self.log();
        let m = &self.model;
        let state = (
            log.log_start_offset(),
            log.log_end_offset(),
            log.high_watermark(),
        );
        assert_eq!(
            state,
            (m.log_start, m.leo, m.leo),
            "(start, end, HW) after {op:?}"
        );
        // Segments tile the offsets: ordered, the first starts at or below the log start,
        // and the last ends at the log end.
        let segments = log.segments();
        assert!(!segments.is_empty());
        assert!(segments[0].base_offset() <= m.log_start, "after {op:?}");
        for pair in segments.windows(2) {
            assert!(
                pair[0].next_offset() <= pair[1].base_offset(),
                "after {op:?}"
            );
        }
        assert_eq!(
            segments.last().unwrap().next_offset(),
            m.leo,
            "after {op:?}"
        );
        assert_eq!(
            log.size_bytes(),
            segments.iter().map(|s| s.size_bytes()).sum::<u64>()
        );
        // Only the active segment keeps disk blocks reserved past its end.
        for segment in &segments[..segments.len() - 1] {
            assert_eq!(
                self.storage.reserved_past_end(segment.log_path()),
                0,
                "{} after {op:?}",
                segment.log_path().display()
            );
        }
        let got: Vec<Rec> = log
            .read_from(m.log_start)
            .unwrap()
            .map(|r| Rec::of(&r.unwrap()))
            .collect();
        assert_eq!(got, m.records, "read_from(log start) after {op:?}");
    }
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
    fn partition_matches_a_vec_of_records(
        setup in setup(),
        ops in proptest::collection::vec(op(), 30..80),
    ) {
        let mut h = Harness::new(setup);
        h.check(&Op::Flush);
        for op in &ops {
            h.apply(op);
            h.check(op);
        }
        // Finally a clean reopen must bring back exactly the model.
        h.apply(&Op::Reopen);
        h.check(&Op::Reopen);
    }
}
