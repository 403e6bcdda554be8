//! Removing a deleted topic's files: every `<topic>-<partition>/` directory, then the
//! consumer groups' committed offsets of the topic (through the group coordinator), then
//! the catalogue's `<topic>.deleting` marker. Runs after [`super::catalog::Catalog::mark_deleting`]
//! (from the delete itself, or from the next open after a crash), so every step may be
//! repeated: files and directories already gone are skipped.

use std::path::Path;

use super::catalog::Catalog;
use crate::error::Result;
use crate::group::offsets::CONSUMER_OFFSETS_TOPIC;
use crate::group::service::GroupService;
use crate::storage::Storage;
use crate::topic::partitions_on_disk;

/// Removes what is left of topic `name`'s partition directories, then the consumer
/// groups' committed offsets of it through `groups` (the open group service, `None` when
/// the broker has no `__consumer_offsets`: nothing can be stored then), then its marker.
/// The marker goes last, so a delete interrupted at any step (a crash, a failed append or
/// sync) is finished again — offsets included — by the next open or create of the name.
pub(super) fn finish(
    storage: &dyn Storage,
    catalog: &Catalog,
    data_dir: &Path,
    name: &str,
    groups: Option<&GroupService>,
) -> Result<()> {
    remove_partition_dirs(storage, data_dir, name)?;
    if let Some(groups) = groups
        && name != CONSUMER_OFFSETS_TOPIC
    {
        groups.delete_topic_offsets(name)?;
    }
    catalog.forget(storage, name)
}

/// Removes every `<name>-<p>` directory in `data_dir` and the files in it, highest
/// partition first, and makes the removals durable.
pub(super) fn remove_partition_dirs(
    storage: &dyn Storage,
    data_dir: &Path,
    name: &str,
) -> Result<()> {
    let count = partitions_on_disk(storage, data_dir, name)?;
    for partition in (0..count).rev() {
        let dir = data_dir.join(format!("{name}-{partition}"));
        if !storage.exists(&dir) {
            continue;
        }
        for file in storage.list_dir(&dir)? {
            storage.remove_file(&file)?;
        }
        storage.remove_dir(&dir)?;
    }
    storage.sync_dir(data_dir)
}
