//! Fuzz target `offsets_records`: arbitrary bytes decoded as `__consumer_offsets` keys and
//! values (offset commits and group metadata, every version). Nothing may panic or
//! allocate past the input; whatever decodes must re-encode, in its own version, to bytes
//! that decode to the same value.
//!
//! Input layout: `[split (1 byte), bytes...]`: the bytes are cut at `split` into a key and
//! a value; the value is also tried as a tombstone (null).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamlog::{GroupMetadata, OffsetAndMetadata, OffsetsKey, OffsetsRecord};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (key, value) = rest.split_at(usize::from(split).min(rest.len()));

    if let Ok(decoded) = OffsetsKey::decode(key) {
        let again = decoded.encode().expect("a decoded key re-encodes");
        assert_eq!(OffsetsKey::decode(&again).as_ref(), Ok(&decoded));
    }
    let _ = OffsetsRecord::decode(key, None);
    if let Ok(record) = OffsetsRecord::decode(key, Some(value)) {
        assert_eq!(record.key().group(), OffsetsKey::decode(key).expect("key").group());
    }

    let version = value
        .first_chunk::<2>()
        .map_or(0, |v| i16::from_be_bytes(*v));
    if let Ok(decoded) = OffsetAndMetadata::decode(value) {
        let again = decoded.encode_as(version).expect("re-encodes");
        assert_eq!(OffsetAndMetadata::decode(&again).as_ref(), Ok(&decoded));
    }
    if let Ok(decoded) = GroupMetadata::decode(value) {
        let again = decoded.encode_as(version).expect("re-encodes");
        assert_eq!(GroupMetadata::decode(&again).as_ref(), Ok(&decoded));
    }
});
