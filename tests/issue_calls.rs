//! The calls users write, exactly as issue 3 lists them: this file must keep compiling
//! and running unchanged.

use streamlog::{FlushPolicy, LogConfig, Partition, Record};

#[test]
fn the_storage_core_calls_compile_and_run_as_written() -> streamlog::Result<()> {
    // The snippet opens a relative path; run it inside a scratch directory.
    let scratch = tempfile::tempdir().map_err(|e| streamlog::Error::io("tempdir", e))?;
    std::env::set_current_dir(scratch.path())
        .map_err(|e| streamlog::Error::io(scratch.path(), e))?;

    let log = Partition::open("data/orders-0", LogConfig::default())?; // Send + Sync, &self methods
    let first: u64 = log.append(
        Record::new(b"hello".to_vec())
            .with_key(b"user-1".to_vec())
            .with_timestamp(1_700_000_000_000),
    )?;
    let offsets: std::ops::Range<u64> =
        log.append_batch(vec![Record::new(b"a".to_vec()), Record::new(b"b".to_vec())])?;
    for record in log.read_from(first)? {
        let record = record?; // offset() -> u64, timestamp() -> i64,
        let _ = (
            record.offset(),
            record.key(),
            record.value(),
            record.timestamp(),
        ); // key()/value() -> Option<&[u8]>
    }
    log.flush()?;
    let durable = LogConfig::default().flush_policy(FlushPolicy::Always); // builder setters named after fields

    // What the snippet implies, checked.
    assert_eq!((first, offsets), (0, 1..3));
    let read: Vec<_> = log.read_from(first)?.collect::<streamlog::Result<_>>()?;
    assert_eq!(read.len(), 3);
    assert_eq!(read[0].key(), Some(&b"user-1"[..]));
    assert_eq!(read[0].timestamp(), 1_700_000_000_000);
    assert_eq!(durable.flush_policy, FlushPolicy::Always);
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&log);
    Ok(())
}
