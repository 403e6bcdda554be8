//! `dump_log`: prints the contents of streamlog segment files, like Kafka's `kafka-dump-log`.
//!
//! ```sh
//! cargo run --example dump_log -- [--verify] [--no-records] [--print-records] FILE...
//! ```
//!
//! - `NNNNNNNNNNNNNNNNNNNN.log`: each batch (position, base/last offset, record count, codec,
//!   whether its CRC-32C matches, timestamps, size) and, unless `--no-records`, each record
//!   (offset, timestamp, key and value lengths, a short printable preview of the value).
//! - `.index`: each entry as `offset = base + relative`, `position`.
//! - `.timeindex`: each entry as `timestamp`, `offset`.
//!
//! `--verify` prints nothing per entry: it scans each file and reports the first corrupt byte
//! (a bad header, a CRC mismatch, undecodable records, offsets going backwards, a torn tail)
//! and exits with status 1, or prints `ok: N batches, M records` (or `ok: N entries`).
//! The base offset comes from the file name. Files are read with `std::fs`; any I/O or
//! input error is reported and ends the program with status 1.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use streamlog::record::{
    BATCH_OVERHEAD, HEADER_SIZE_UP_TO_MAGIC, RecordBatch, RecordIter, TimestampType,
    next_batch_size,
};
use streamlog::segment::{SegmentFile, parse_segment_file_name};

/// Bytes of a value (or key) shown in a record's preview.
const PREVIEW_BYTES: usize = 32;
/// Batches larger than this are reported as corrupt rather than read into memory.
const MAX_BATCH_BYTES: usize = i32::MAX as usize;

const USAGE: &str = "usage: dump_log [--verify] [--no-records] [--print-records] FILE...
  FILE is a segment file named <20-digit base offset>.log, .index or .timeindex";

/// `println!` that ends the program quietly when stdout is closed (`dump_log ... | head`)
/// and with status 1 on any other write error, instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        emit(format_args!($($arg)*))
    };
}

fn emit(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("dump_log: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

struct Options {
    verify: bool,
    records: bool,
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args_os().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("dump_log: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut status = ExitCode::SUCCESS;
    for (i, path) in options.files.iter().enumerate() {
        if i > 0 {
            out!("");
        }
        out!("Dumping {}", path.display());
        match dump(path, &options) {
            Ok(Outcome::Ok) => {}
            Ok(Outcome::Corrupt) => status = ExitCode::FAILURE,
            Err(message) => {
                eprintln!("dump_log: {}: {message}", path.display());
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

fn parse_args(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Options, String> {
    let mut options = Options {
        verify: false,
        records: true,
        files: Vec::new(),
    };
    let mut only_files = false;
    for arg in args {
        match arg.to_str() {
            Some("--") if !only_files => only_files = true,
            Some("--verify") if !only_files => options.verify = true,
            Some("--print-records") if !only_files => options.records = true,
            Some("--no-records") if !only_files => options.records = false,
            Some("-h" | "--help") if !only_files => return Err("help requested".into()),
            Some(flag) if flag.starts_with('-') && !only_files => {
                return Err(format!("unknown option {flag}"));
            }
            _ => options.files.push(PathBuf::from(arg)),
        }
    }
    if options.files.is_empty() {
        return Err("no files given".into());
    }
    Ok(options)
}

/// What a dump found: everything readable, or corruption (already reported).
enum Outcome {
    Ok,
    Corrupt,
}

fn dump(path: &Path, options: &Options) -> Result<Outcome, String> {
    let (base, kind) = parse_segment_file_name(path)
        .ok_or("not a segment file: expected <20-digit base offset>.log, .index or .timeindex")?;
    let file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read metadata: {e}"))?
        .len();
    match kind {
        SegmentFile::Log => dump_log(&file, len, base, options),
        SegmentFile::Index => dump_index(&file, len, base, options),
        SegmentFile::TimeIndex => dump_time_index(&file, len, base, options),
    }
}

/// Reads up to `buf.len()` bytes at `position`; fewer only at the end of the file.
fn read_at(file: &File, buf: &mut [u8], position: u64) -> Result<usize, String> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], position + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read error at byte {position}: {e}")),
        }
    }
    Ok(done)
}

/// Reports the corruption that ends a scan at `position`.
fn corrupt(position: u64, reason: impl std::fmt::Display) -> Outcome {
    out!("corrupt at position {position}: {reason}");
    Outcome::Corrupt
}

fn dump_log(file: &File, len: u64, base: u64, options: &Options) -> Result<Outcome, String> {
    let (mut position, mut batches, mut records) = (0u64, 0u64, 0u64);
    let mut expected_next: Option<i64> = None;
    // Batches with a bad CRC or undecodable records, in a dump (not `--verify`).
    let mut invalid = 0u64;
    let mut buf = Vec::new();
    while position < len {
        // Size and format from the first 17 bytes; fewer than that left is a torn tail.
        let mut prefix = [0u8; HEADER_SIZE_UP_TO_MAGIC];
        let got = read_at(file, &mut prefix, position)?;
        let size = match next_batch_size(&prefix[..got]) {
            Ok(Some(size)) => size,
            Ok(None) => {
                return Ok(corrupt(
                    position,
                    format!(
                        "torn tail: {} bytes, too few for a batch header",
                        len - position
                    ),
                ));
            }
            Err(e) => return Ok(corrupt(position, format!("bad batch header: {e}"))),
        };
        if size > MAX_BATCH_BYTES || position + size as u64 > len {
            return Ok(corrupt(
                position,
                format!(
                    "torn tail: batch of {size} bytes but only {} bytes left in the file",
                    len - position
                ),
            ));
        }
        buf.resize(size, 0);
        if read_at(file, &mut buf, position)? < size {
            return Ok(corrupt(position, "file shrank while reading"));
        }
        let batch = match RecordBatch::parse(&buf) {
            Ok(batch) => batch,
            Err(e) => return Ok(corrupt(position, format!("bad batch header: {e}"))),
        };
        let h = *batch.header();
        let crc_ok = batch.ensure_valid();
        if !options.verify {
            let codec = h
                .compression()
                .map_or_else(|e| format!("invalid ({e})"), |c| format!("{c:?}"));
            let ts_type = match h.timestamp_type() {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            };
            out!(
                "baseOffset: {} lastOffset: {} count: {} position: {position} size: {size} \
                 magic: {} compresscodec: {codec} crc: {:#010x} isvalid: {} \
                 {ts_type} baseTimestamp: {} maxTimestamp: {} producerId: {} \
                 producerEpoch: {} baseSequence: {} isTransactional: {} isControl: {} \
                 partitionLeaderEpoch: {}",
                h.base_offset,
                h.last_offset(),
                h.records_count,
                h.magic,
                h.crc,
                crc_ok.is_ok(),
                h.base_timestamp,
                h.max_timestamp,
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.is_transactional(),
                h.is_control(),
                h.partition_leader_epoch,
            );
            if crc_ok.is_err() {
                invalid += 1;
            }
        }
        if options.verify {
            if let Err(e) = crc_ok {
                return Ok(corrupt(position, e));
            }
            if h.base_offset < 0 || (h.base_offset as u64) < base {
                return Ok(corrupt(
                    position,
                    format!(
                        "base offset {} is below the segment's base offset {base}",
                        h.base_offset
                    ),
                ));
            }
            if let Some(next) = expected_next.filter(|&next| h.base_offset < next) {
                return Ok(corrupt(
                    position,
                    format!(
                        "base offset {} goes backwards (previous batch ended before {next})",
                        h.base_offset
                    ),
                ));
            }
            if h.last_offset_delta < 0 {
                return Ok(corrupt(
                    position,
                    format!("negative last offset delta {}", h.last_offset_delta),
                ));
            }
        }
        expected_next = h.last_offset().checked_add(1);
        // Records: decoded for printing, and for verification.
        if options.verify || options.records {
            let decoded = batch.records_bytes();
            let section: &[u8] = match &decoded {
                Ok(section) => section,
                Err(e) if options.verify => {
                    return Ok(corrupt(position + BATCH_OVERHEAD as u64, e));
                }
                Err(e) => {
                    out!("| cannot decode the records: {e}");
                    invalid += 1;
                    &[]
                }
            };
            for record in RecordIter::new(&h, section) {
                match record {
                    Ok(r) => {
                        records += 1;
                        if !options.verify {
                            out!(
                                "| offset: {} timestamp: {} keySize: {} valueSize: {} \
                                 headers: {} key: {} value: {}",
                                r.offset(),
                                r.timestamp(),
                                r.key().map_or(-1, |k| k.len() as i64),
                                r.value().map_or(-1, |v| v.len() as i64),
                                r.header_count(),
                                preview(r.key()),
                                preview(r.value()),
                            );
                        }
                    }
                    Err(e) if options.verify => {
                        return Ok(corrupt(
                            position + BATCH_OVERHEAD as u64,
                            format!("records: {e}"),
                        ));
                    }
                    Err(e) => {
                        out!("| cannot decode a record: {e}");
                        invalid += 1;
                        break;
                    }
                }
            }
        } else {
            records += u64::try_from(h.records_count).unwrap_or(0);
        }
        batches += 1;
        position += size as u64;
    }
    if invalid > 0 {
        out!("{batches} batches, {records} records; {invalid} problem(s) found (see above)");
        return Ok(Outcome::Corrupt);
    }
    out!("ok: {batches} batches, {records} records");
    Ok(Outcome::Ok)
}

/// A short printable preview: `null`, or up to 32 bytes with non-printables escaped.
fn preview(bytes: Option<&[u8]>) -> String {
    let Some(bytes) = bytes else {
        return "null".into();
    };
    let mut out = String::from("\"");
    for &b in bytes.iter().take(PREVIEW_BYTES) {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    if bytes.len() > PREVIEW_BYTES {
        out.push_str("...");
    }
    out
}

/// Reads a whole index file (small: a few MiB at most).
fn read_index(file: &File, len: u64) -> Result<Vec<u8>, String> {
    let len = usize::try_from(len).map_err(|_| "index file too large".to_string())?;
    let mut bytes = vec![0u8; len];
    let got = read_at(file, &mut bytes, 0)?;
    bytes.truncate(got);
    Ok(bytes)
}

/// How many leading slots are entries: an all-zero slot past the first marks the
/// preallocated, unused space of an index that was not trimmed (still open, or crashed).
fn used_slots<const N: usize>(slots: &[[u8; N]]) -> usize {
    slots
        .iter()
        .enumerate()
        .position(|(i, s)| i > 0 && s.iter().all(|&b| b == 0))
        .unwrap_or(slots.len())
}

/// The first slot after `used` that is not all zeros: an entry after the unused space,
/// which `SparseIndex`'s sanity check refuses (entries are written without gaps).
fn entry_after_gap<const N: usize>(slots: &[[u8; N]], used: usize) -> Option<usize> {
    slots
        .iter()
        .skip(used)
        .position(|s| s.iter().any(|&b| b != 0))
        .map(|i| used + i)
}

fn slots<const N: usize>(bytes: &[u8]) -> Vec<[u8; N]> {
    bytes
        .chunks_exact(N)
        .filter_map(|c| c.try_into().ok())
        .collect()
}

fn dump_index(file: &File, len: u64, base: u64, options: &Options) -> Result<Outcome, String> {
    let bytes = read_index(file, len)?;
    let slots = slots::<8>(&bytes);
    let used = used_slots(&slots);
    let mut last: Option<(u64, u32)> = None;
    for (i, [r0, r1, r2, r3, p0, p1, p2, p3]) in slots.iter().take(used).copied().enumerate() {
        let relative = u32::from_be_bytes([r0, r1, r2, r3]);
        let position = u32::from_be_bytes([p0, p1, p2, p3]);
        let offset = base.saturating_add(u64::from(relative));
        if options.verify {
            let at = (i * 8) as u64;
            if relative > i32::MAX as u32 {
                return Ok(corrupt(
                    at,
                    format!("relative offset {relative} is negative"),
                ));
            }
            if let Some((o, p)) = last.filter(|&(o, p)| offset <= o || position < p) {
                return Ok(corrupt(
                    at,
                    format!("entry ({offset}, {position}) does not follow ({o}, {p})"),
                ));
            }
        } else {
            out!("offset: {offset} position: {position}");
        }
        last = Some((offset, position));
    }
    let gap = entry_after_gap(&slots, used);
    finish_index(options, bytes.len(), 8, (used, gap), slots.len())
}

fn dump_time_index(file: &File, len: u64, base: u64, options: &Options) -> Result<Outcome, String> {
    let bytes = read_index(file, len)?;
    let slots = slots::<12>(&bytes);
    let used = used_slots(&slots);
    let mut last: Option<(i64, u64)> = None;
    for (i, slot) in slots.iter().take(used).enumerate() {
        let [t0, t1, t2, t3, t4, t5, t6, t7, r0, r1, r2, r3] = *slot;
        let timestamp = i64::from_be_bytes([t0, t1, t2, t3, t4, t5, t6, t7]);
        let relative = u32::from_be_bytes([r0, r1, r2, r3]);
        let offset = base.saturating_add(u64::from(relative));
        if options.verify {
            let at = (i * 12) as u64;
            if relative > i32::MAX as u32 {
                return Ok(corrupt(
                    at,
                    format!("relative offset {relative} is negative"),
                ));
            }
            if let Some((t, o)) = last.filter(|&(t, o)| timestamp <= t || offset < o) {
                return Ok(corrupt(
                    at,
                    format!("entry ({timestamp}, {offset}) does not follow ({t}, {o})"),
                ));
            }
        } else {
            out!("timestamp: {timestamp} offset: {offset}");
        }
        last = Some((timestamp, offset));
    }
    let gap = entry_after_gap(&slots, used);
    finish_index(options, bytes.len(), 12, (used, gap), slots.len())
}

/// Reports what the entries (`used` of `slots`) leave to say: a length that is not a
/// whole number of entries, an entry (slot `gap`) after the unused space, the count.
fn finish_index(
    options: &Options,
    len: usize,
    entry: usize,
    (used, gap): (usize, Option<usize>),
    slots: usize,
) -> Result<Outcome, String> {
    if let Some(slot) = gap {
        let reason = format!("entry {slot} follows the unused (all-zero) slot {used}");
        if options.verify {
            return Ok(corrupt((slot * entry) as u64, reason));
        }
        out!("warning: {reason}");
    }
    if !len.is_multiple_of(entry) {
        let at = (len - len % entry) as u64;
        let reason = format!("length {len} is not a multiple of the {entry}-byte entry size");
        if options.verify {
            return Ok(corrupt(at, reason));
        }
        out!("warning: {reason}");
    }
    if used < slots {
        out!("({} unused preallocated slot(s) not shown)", slots - used);
    }
    out!("ok: {used} entries");
    Ok(Outcome::Ok)
}
