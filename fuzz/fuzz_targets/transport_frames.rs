//! Fuzz target `transport_frames`: arbitrary bytes as a transport envelope frame. Runs
//! `decode_envelope` (and `decode` on the bytes after the two broker ids); nothing may
//! panic. Whatever decodes must re-encode to exactly the input (the codec is canonical)
//! and decode again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamlog::replication::transport::{
    ENVELOPE_HEADER_BYTES, decode, decode_envelope, encode, encode_envelope,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = decode_envelope(data) {
        let bytes = encode_envelope(&envelope).expect("a decoded envelope encodes");
        assert_eq!(bytes, data, "re-encoding changed the frame");
        let again = decode_envelope(&bytes).expect("a re-encoded envelope decodes");
        assert_eq!(again, envelope);
    }
    if let Some(frame) = data.get(ENVELOPE_HEADER_BYTES..) {
        if let Ok(message) = decode(frame) {
            let bytes = encode(&message).expect("a decoded message encodes");
            assert_eq!(bytes, frame, "re-encoding changed the frame");
        }
    }
});
