//! The last good addresses on disk: what was discovered and verified, so that a restart
//! answers them before the first discovery (and while the discovery server is silent).
//!
//! Owns: the state file's format ([`FORMAT`]), where it lives ([`default_path`]: systemd's
//! `StateDirectory=`, else `/var/lib/pathdns/discovery`), reading it leniently ([`load`]: a missing
//! file is an empty state, a corrupt one or one from a newer pathdns is an error the caller
//! warns about and ignores) and writing it atomically ([`save`]: a temporary file renamed
//! over the old one, so a crash leaves the old file or the new one, never half of one).
//! Must not: decide what is good (the runner writes only verified addresses).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::answer::usable_address;

/// The state file's format version; a file with a higher one is ignored (a downgrade
/// must not misread what a newer pathdns wrote).
pub const FORMAT: u32 = 1;

/// The file's name in the state directory.
pub const FILE_NAME: &str = "discovered.json";

/// Where the unit's `StateDirectory=pathdns/discovery` is reached, and the directory
/// pathdns uses without systemd (`pathdns check` and `doctor` read it from here).
pub const DEFAULT_DIR: &str = "/var/lib/pathdns/discovery";

/// One asked name's last good addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learned {
    /// Sorted, each verified by the name's probes.
    pub addresses: Vec<IpAddr>,
    /// The discovery server that gave them.
    pub server: String,
    /// When they were last confirmed (discovered again, or first verified).
    pub confirmed_unix_ms: u64,
}

/// Every asked name's last good addresses, by name (lower case, no trailing dot).
pub type LearnedMap = BTreeMap<String, Learned>;

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: u32,
    /// The pathdns version that wrote it, for people.
    written_by: String,
    names: LearnedMap,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path} is not a pathdns state file ({error}); ignored")]
    Corrupt { path: String, error: String },
    #[error("{path} is from a newer pathdns (format {found}, this one reads {FORMAT}); ignored")]
    Newer { path: String, found: u32 },
    #[error("cannot write {path}: {error}")]
    Write { path: String, error: std::io::Error },
}

/// `$STATE_DIRECTORY/discovered.json` (systemd sets it for `StateDirectory=`; the first
/// entry if it lists several), else `/var/lib/pathdns/discovery/discovered.json`.
pub fn default_path() -> PathBuf {
    let dir = std::env::var_os("STATE_DIRECTORY")
        .and_then(|dirs| {
            std::env::split_paths(&dirs)
                .next()
                .filter(|dir| !dir.as_os_str().is_empty())
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
    dir.join(FILE_NAME)
}

/// The last good addresses in `path`. Entries whose addresses are not usable targets
/// (a hand-edited file) are dropped with the rest kept; an empty list drops the entry.
pub fn load(path: &Path) -> Result<LearnedMap, StateError> {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(LearnedMap::new()),
        Err(error) => return Err(StateError::Read { path: shown, error }),
    };
    let corrupt = |error: String| StateError::Corrupt {
        path: shown.clone(),
        error,
    };
    // The format is read first, so that a newer file is named as such, not as corrupt.
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| corrupt(err.to_string()))?;
    let found = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| corrupt("no `format` number".into()))?;
    if found > u64::from(FORMAT) {
        return Err(StateError::Newer {
            path: shown,
            found: u32::try_from(found).unwrap_or(u32::MAX),
        });
    }
    let file: StateFile = serde_json::from_value(value).map_err(|err| corrupt(err.to_string()))?;
    Ok(file
        .names
        .into_iter()
        .filter_map(|(name, mut learned)| {
            learned
                .addresses
                .retain(|addr| usable_address(*addr).is_ok());
            (!learned.addresses.is_empty()).then_some((name, learned))
        })
        .collect())
}

/// Writes `learned` to `path` atomically (a temporary file in the same directory, synced,
/// renamed over the old one).
pub fn save(path: &Path, learned: &LearnedMap) -> Result<(), StateError> {
    let failed = |error: std::io::Error| StateError::Write {
        path: path.display().to_string(),
        error,
    };
    let file = StateFile {
        format: FORMAT,
        written_by: format!("pathdns {}", env!("CARGO_PKG_VERSION")),
        names: learned.clone(),
    };
    let mut text = serde_json::to_vec_pretty(&file)
        .map_err(|err| failed(std::io::Error::other(err.to_string())))?;
    text.push(b'\n');
    if let Some(dir) = path.parent() {
        // systemd's StateDirectory= makes it; without systemd, the first save does.
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let temporary = path.with_extension("json.tmp");
    let mut out = std::fs::File::create(&temporary).map_err(failed)?;
    out.write_all(&text).map_err(failed)?;
    out.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(addrs: &[&str]) -> Learned {
        Learned {
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            server: "10.0.5.53:53".into(),
            confirmed_unix_ms: 1,
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pathdns-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn what_is_saved_is_loaded_back() {
        let path = temp_dir("roundtrip").join(FILE_NAME);
        let mut map = LearnedMap::new();
        map.insert("a.example".into(), learned(&["10.94.205.198"]));
        save(&path, &map).unwrap();
        assert_eq!(load(&path).unwrap(), map);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_missing_file_is_an_empty_state() {
        let path = temp_dir("missing").join(FILE_NAME);
        assert!(load(&path).unwrap().is_empty());
    }

    #[test]
    fn corrupt_and_newer_files_are_errors_that_name_the_file() {
        let dir = temp_dir("bad");
        let path = dir.join(FILE_NAME);
        std::fs::write(&path, "{not json").unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(FILE_NAME), "{err}");
        std::fs::write(&path, r#"{"format": 99, "names": {"x": 1}}"#).unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, StateError::Newer { found: 99, .. }), "{err}");
        std::fs::write(
            &path,
            r#"{"format": 1, "written_by": "x", "names": {"a": {"addresses": "nope"}}}"#,
        )
        .unwrap();
        assert!(matches!(
            load(&path).unwrap_err(),
            StateError::Corrupt { .. }
        ));
    }

    #[test]
    fn unusable_addresses_in_a_hand_edited_file_are_dropped() {
        let path = temp_dir("edited").join(FILE_NAME);
        let mut map = LearnedMap::new();
        map.insert("a.example".into(), learned(&["127.0.0.1", "10.1.1.1"]));
        map.insert("b.example".into(), learned(&["169.254.1.1"]));
        save(&path, &map).unwrap();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(
            loaded["a.example"].addresses,
            vec!["10.1.1.1".parse::<IpAddr>().unwrap()]
        );
    }
}
