//! `__consumer_offsets` (issue 5, S18): committed offsets and group metadata stored as
//! records in a compacted internal topic, byte-compatible with Kafka's, so that Kafka's
//! tools can read them.
//!
//! - [`OffsetsKey`] (`key.rs`), [`OffsetAndMetadata`] (`commit_value.rs`) and
//!   [`GroupMetadata`] (`group_value.rs`): the record formats, with their byte layouts in
//!   each file's doc; [`OffsetsRecord`] (`record.rs`) pairs a key with its value or a
//!   tombstone. Decoding is bounds-checked and returns [`RecordFormatError`] (`error.rs`);
//!   the primitives are in `wire.rs`.
//! - [`java_string_hash_code`] and [`partition_for_group`] (`hash.rs`): which partition
//!   holds a group.
//! - [`OffsetsStore`] (`store.rs`) over the broker's topic, configured by
//!   [`OffsetsConfig`] (`config.rs`); its in-memory cache (`cache.rs`) and Kafka's offset
//!   expiry rules (`expiry.rs`, [`GroupActivity`]).
//!
//! See ARCHITECTURE.md § `__consumer_offsets`.

mod cache;
mod commit_value;
mod config;
mod error;
mod expiry;
mod group_value;
mod hash;
mod key;
mod log;
mod record;
mod store;
mod wire;

pub use commit_value::{MAX_OFFSET_COMMIT_VALUE_VERSION, OffsetAndMetadata};
pub use config::{CONSUMER_OFFSETS_TOPIC, MAX_GROUP_ID_BYTES, OffsetsConfig};
pub use error::RecordFormatError;
pub use expiry::GroupActivity;
pub use group_value::{
    GROUP_METADATA_VALUE_VERSION, GroupMetadata, MAX_GROUP_METADATA_VALUE_VERSION, MemberMetadata,
};
pub use hash::{java_string_hash_code, partition_for_group};
pub use key::{GROUP_METADATA_KEY_VERSION, OFFSET_COMMIT_KEY_VERSION, OffsetsKey};
pub(crate) use log::OffsetsLog;
pub use record::OffsetsRecord;
pub use store::{ExpiryReport, LoadReport, OffsetsStore, validate_group_id};
