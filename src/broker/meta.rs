//! The data directory's identity, `<data>/meta.properties` (Kafka keeps a file of that
//! name in every log directory): `version=1` and `broker.id=<id>`, behind the checksum line
//! of [`super::store`]. Written on the first open; every later open checks that the broker
//! id matches, so two brokers never share a directory by mistake.

use std::path::Path;

use super::store;
use crate::error::{Error, Result};
use crate::storage::Storage;

/// File name of the broker metadata in the data directory.
pub(super) const META_FILE: &str = "meta.properties";

/// The metadata format this code writes and reads.
const VERSION: u32 = 1;

/// Writes `meta.properties` for `broker_id` in `data_dir` when there is none; otherwise
/// checks it: another broker id is [`Error::BrokerIdMismatch`], another version or a
/// damaged file [`Error::Corrupt`].
pub(super) fn check_or_write(storage: &dyn Storage, data_dir: &Path, broker_id: i32) -> Result<()> {
    let path = data_dir.join(META_FILE);
    if !storage.exists(&path) {
        let body = format!("version={VERSION}\nbroker.id={broker_id}\n");
        return store::write_durably(storage, &path, &body);
    }
    let corrupt = |reason: String| Error::Corrupt {
        path: path.clone(),
        position: 0,
        reason,
    };
    let body = store::read_checked(storage, &path)?;
    let (mut version, mut stored_id) = (None, None);
    for (name, value) in store::properties(&path, &body)? {
        match name.as_str() {
            "version" => version = value.parse::<u32>().ok(),
            "broker.id" => stored_id = value.parse::<i32>().ok(),
            _ => {}
        }
    }
    match (version, stored_id) {
        (Some(VERSION), Some(stored)) if stored == broker_id => Ok(()),
        (Some(VERSION), Some(stored)) => Err(Error::BrokerIdMismatch {
            path,
            stored,
            configured: broker_id,
        }),
        (Some(VERSION), None) => Err(corrupt("no valid `broker.id`".into())),
        (other, _) => Err(corrupt(format!(
            "metadata version {other:?}; this build reads version {VERSION}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn the_first_open_writes_the_id_and_later_opens_check_it() {
        let sim = SimStorage::new();
        let dir = Path::new("data");
        crate::storage::create_dir_all_durably(&sim, dir).unwrap();
        check_or_write(&sim, dir, 7).unwrap();
        check_or_write(&sim, dir, 7).unwrap();
        let err = check_or_write(&sim, dir, 8).unwrap_err();
        assert!(
            matches!(
                err,
                Error::BrokerIdMismatch {
                    stored: 7,
                    configured: 8,
                    ..
                }
            ),
            "{err}"
        );
        let text = String::from_utf8(sim.read_file(dir.join(META_FILE)).unwrap()).unwrap();
        assert!(text.contains("\nversion=1\nbroker.id=7\n"), "{text}");
    }

    #[test]
    fn an_unknown_version_is_corrupt() {
        let sim = SimStorage::new();
        let dir = Path::new("data");
        crate::storage::create_dir_all_durably(&sim, dir).unwrap();
        store::write_durably(&sim, &dir.join(META_FILE), "version=9\nbroker.id=0\n").unwrap();
        let err = check_or_write(&sim, dir, 0).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
}
