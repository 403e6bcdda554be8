//! The topic catalogue: one file per topic in `<data>/__topics/`.
//!
//! - `<topic>.properties`: the topic's whole [`TopicConfig`] (Kafka names, `partitions=`
//!   included) behind the checksum line of [`super::store`], replaced atomically by
//!   [`Catalog::save`].
//! - `<topic>.deleting`: the same file renamed when a delete starts. From that rename on
//!   the topic is gone; whatever is left of its partition directories is removed by the
//!   delete itself or, after a crash, by the next open ([`Catalog::scan`] lists them).
//! - Names longer than 240 bytes (Kafka allows 249) take the suffixes `.p` and `.d`
//!   instead, so that every file name, the temporary `….tmp` included, fits the 255 bytes
//!   file systems allow.
//!
//! Why a file per topic rather than one catalogue: creating, altering or deleting a topic
//! rewrites or renames only that topic's small file, never a shared one, so there is no
//! read-modify-write of the whole catalogue and damage stays confined to one topic. Kafka
//! itself keeps per-topic state next to the data (in KRaft, `partition.metadata`); a
//! separate directory keeps the catalogue apart from the `<topic>-<partition>` directories.
//! (`__topics` can never clash with a partition directory: it has no `-<number>` suffix.)

use std::path::{Path, PathBuf};

use super::store;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::topic::{TopicConfig, validate_topic_name};

/// Directory of the catalogue inside the data directory.
pub(super) const CATALOG_DIR: &str = "__topics";

/// Suffix of a live topic's file.
const LIVE: &str = ".properties";

/// Suffix of a topic whose deletion started.
const DELETING: &str = ".deleting";

/// The longest topic name that takes the suffixes above: `<name>.properties.tmp` must fit
/// in a file name of 255 bytes.
const LONG_SUFFIXES_UP_TO: usize = 255 - LIVE.len() - store::TEMP_SUFFIX.len();

/// [`LIVE`] and [`DELETING`] for longer names.
const LIVE_SHORT: &str = ".p";
const DELETING_SHORT: &str = ".d";

/// What the catalogue holds on open.
#[derive(Debug, Default)]
pub(super) struct Scan {
    /// Live topics and their stored configs, by name.
    pub topics: Vec<(String, TopicConfig)>,
    /// Topics whose deletion started and may not have finished.
    pub deleting: Vec<String>,
}

/// The catalogue directory on a storage.
#[derive(Debug)]
pub(super) struct Catalog {
    dir: PathBuf,
}

impl Catalog {
    /// The catalogue of `data_dir`, its directory created when missing.
    pub(super) fn open(storage: &dyn Storage, data_dir: &Path) -> Result<Catalog> {
        let dir = data_dir.join(CATALOG_DIR);
        crate::storage::create_dir_all_durably(storage, &dir)?;
        Ok(Catalog { dir })
    }

    /// Reads every topic file, removing temporary files an interrupted write left.
    /// A file that fails its checksum, or holds an invalid config or topic name, is
    /// [`Error::Corrupt`] naming it.
    pub(super) fn scan(&self, storage: &dyn Storage) -> Result<Scan> {
        let mut scan = Scan::default();
        for path in storage.list_dir(&self.dir)? {
            if store::is_temp(&path) {
                storage.remove_file(&path)?;
                continue;
            }
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let long = |suffix| {
                file_name
                    .strip_suffix(suffix)
                    .filter(|name| name.len() > LONG_SUFFIXES_UP_TO)
            };
            if let Some(name) = file_name
                .strip_suffix(DELETING)
                .or_else(|| long(DELETING_SHORT))
            {
                scan.deleting.push(checked_name(&path, name)?);
            } else if let Some(name) = file_name.strip_suffix(LIVE).or_else(|| long(LIVE_SHORT)) {
                let name = checked_name(&path, name)?;
                let body = store::read_checked(storage, &path)?;
                let config = TopicConfig::from_properties(&body).map_err(|e| Error::Corrupt {
                    path: path.clone(),
                    position: 0,
                    reason: e.to_string(),
                })?;
                scan.topics.push((name, config));
            }
        }
        Ok(scan)
    }

    /// Stores `config` as topic `name`'s, atomically and durably.
    pub(super) fn save(
        &self,
        storage: &dyn Storage,
        name: &str,
        config: &TopicConfig,
    ) -> Result<()> {
        let body = config.to_properties();
        store::write_durably(storage, &self.live(name), &body)
    }

    /// Starts deleting `name`: its file is renamed to `<name>.deleting`, durably. From here
    /// on the topic no longer exists for the catalogue.
    pub(super) fn mark_deleting(&self, storage: &dyn Storage, name: &str) -> Result<()> {
        storage.rename(&self.live(name), &self.deleting(name))?;
        storage.sync_dir(&self.dir)
    }

    /// Whether a deletion of `name` started and has not finished.
    pub(super) fn is_deleting(&self, storage: &dyn Storage, name: &str) -> bool {
        storage.exists(&self.deleting(name))
    }

    /// Ends a deletion: removes `<name>.deleting`, durably.
    pub(super) fn forget(&self, storage: &dyn Storage, name: &str) -> Result<()> {
        storage.remove_file(&self.deleting(name))?;
        storage.sync_dir(&self.dir)
    }

    fn live(&self, name: &str) -> PathBuf {
        let suffix = if name.len() > LONG_SUFFIXES_UP_TO {
            LIVE_SHORT
        } else {
            LIVE
        };
        self.dir.join(format!("{name}{suffix}"))
    }

    fn deleting(&self, name: &str) -> PathBuf {
        let suffix = if name.len() > LONG_SUFFIXES_UP_TO {
            DELETING_SHORT
        } else {
            DELETING
        };
        self.dir.join(format!("{name}{suffix}"))
    }
}

/// `name` when it is a valid topic name; [`Error::Corrupt`] naming `path` otherwise.
fn checked_name(path: &Path, name: &str) -> Result<String> {
    validate_topic_name(name).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        position: 0,
        reason: e.to_string(),
    })?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn saved_topics_scan_back_and_deleting_ones_are_listed_apart() {
        let sim = SimStorage::new();
        let catalog = Catalog::open(&sim, Path::new("data")).unwrap();
        let config = TopicConfig::default().partitions(3).retention_ms(1000);
        catalog.save(&sim, "a.deleting", &config).unwrap();
        catalog.save(&sim, "b", &TopicConfig::default()).unwrap();
        catalog.mark_deleting(&sim, "b").unwrap();
        sim.write_file("data/__topics/c.properties.tmp", b"half");
        let scan = catalog.scan(&sim).unwrap();
        assert_eq!(scan.topics, [("a.deleting".to_owned(), config)]);
        assert_eq!(scan.deleting, ["b"]);
        assert!(catalog.is_deleting(&sim, "b"));
        assert!(!sim.exists(Path::new("data/__topics/c.properties.tmp")));
        catalog.forget(&sim, "b").unwrap();
        assert!(catalog.scan(&sim).unwrap().deleting.is_empty());
    }

    #[test]
    fn names_past_240_bytes_take_short_suffixes_and_scan_back() {
        let sim = SimStorage::new();
        let catalog = Catalog::open(&sim, Path::new("data")).unwrap();
        let longest = "x".repeat(249);
        let gone = format!("{}.p", "y".repeat(245));
        let short = "a.p";
        for name in [longest.as_str(), gone.as_str(), short] {
            catalog.save(&sim, name, &TopicConfig::default()).unwrap();
        }
        catalog.mark_deleting(&sim, &gone).unwrap();
        assert!(sim.exists(&Path::new("data/__topics").join(format!("{longest}.p"))));
        assert!(sim.exists(&Path::new("data/__topics").join(format!("{gone}.d"))));
        assert!(sim.exists(Path::new("data/__topics/a.p.properties")));
        let scan = catalog.scan(&sim).unwrap();
        let mut names: Vec<&str> = scan.topics.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, [short, longest.as_str()]);
        assert_eq!(scan.deleting, std::slice::from_ref(&gone));
        assert!(catalog.is_deleting(&sim, &gone));
    }

    #[test]
    fn a_bad_file_name_or_config_is_corrupt_naming_the_file() {
        let sim = SimStorage::new();
        let catalog = Catalog::open(&sim, Path::new("data")).unwrap();
        sim.write_file("data/__topics/a b.properties", b"");
        let err = catalog.scan(&sim).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        sim.remove_file(Path::new("data/__topics/a b.properties"))
            .unwrap();
        let path = Path::new("data/__topics/t.properties");
        store::write_durably(&sim, path, "partitions=0\n").unwrap();
        let err = catalog.scan(&sim).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path: p, .. } if p == path),
            "{err}"
        );
    }
}
