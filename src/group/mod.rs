//! Consumer groups (issue 5): committed offsets and group metadata stored in the internal
//! compacted topic `__consumer_offsets` ([`offsets`]).

pub mod offsets;
