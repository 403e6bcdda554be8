//! Helpers shared by the bench files (`benches/log.rs`, `benches/topic.rs`): temporary
//! directories, untimed setup and teardown around a timed loop, and one group setting.

use std::time::{Duration, Instant};

use criterion::BenchmarkGroup;
use tempfile::TempDir;

/// A criterion group measured in wall time.
pub type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// A fresh temporary directory, removed on drop.
pub fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

/// Times `iters` calls of `step` on state made fresh (untimed) by `setup`; the state is
/// dropped (closing logs, removing files) after the clock stops.
pub fn timed<S>(iters: u64, setup: impl FnOnce() -> S, mut step: impl FnMut(&mut S)) -> Duration {
    let mut state = setup();
    let start = Instant::now();
    for _ in 0..iters {
        step(&mut state);
    }
    let elapsed = start.elapsed();
    drop(state);
    elapsed
}

/// Ten samples after half a second of warm-up, over `measurement_secs`.
pub fn configure(group: &mut Group<'_>, measurement_secs: u64) {
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(measurement_secs));
}
