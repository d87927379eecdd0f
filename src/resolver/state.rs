//! The record of what `enable` replaced, kept under [`STATE_DIR`]: `state.toml` (a
//! versioned serde struct: the mode, pathdns's address, what the target was, the
//! directories `enable` created), `original` (the replaced file's bytes or symlink target)
//! and `written` (the bytes `enable` wrote, to tell later whether someone changed them).
//!
//! Owns: writing, reading and forgetting that record, and reading the key=value `state`
//! file of version 1 that earlier packages wrote (so that an upgraded host can still be
//! disabled). Must not: touch the target file itself.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{remove_if_present, write_atomic, Entry};
use super::{io_error, Host, Mode, ResolverError, STATE_DIR};

/// The record itself, written last: its presence means `original` and `written` are
/// complete.
const STATE_FILE: &str = "state.toml";
/// Version 1's record (key=value lines), read but never written.
const LEGACY_STATE_FILE: &str = "state";
/// The version this build writes; a record of a higher one is refused, never guessed at.
const STATE_VERSION: u32 = 2;

/// What `enable` saved, read back.
#[derive(Debug)]
pub(super) struct State {
    pub(super) mode: Mode,
    pub(super) nameserver: IpAddr,
    pub(super) original: Entry,
    pub(super) written: Vec<u8>,
    /// Directories `enable` created, relative to the root, parents first.
    pub(super) created: Vec<String>,
}

/// `state.toml`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    mode: Mode,
    nameserver: IpAddr,
    original: Original,
    #[serde(default)]
    created: Vec<String>,
}

/// What the target was; its bytes (or symlink target) are in the `original` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum Original {
    Absent,
    File { mode: u32, uid: u32, gid: u32 },
    Symlink,
}

/// Only the version, read first, so that a newer record is refused with a clear message
/// rather than a field error.
#[derive(Debug, Deserialize)]
struct VersionOnly {
    version: u32,
}

impl Host {
    pub(super) fn write_state(&self, state: &State) -> Result<(), ResolverError> {
        let dir = self.path(STATE_DIR);
        let original = match &state.original {
            Entry::Absent => Original::Absent,
            Entry::File {
                bytes,
                mode,
                uid,
                gid,
            } => {
                write_atomic(&dir.join("original"), bytes, 0o600)?;
                Original::File {
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                }
            }
            Entry::Symlink { target } => {
                let target = target.as_os_str().as_encoded_bytes();
                write_atomic(&dir.join("original"), target, 0o600)?;
                Original::Symlink
            }
        };
        let record = StateFile {
            version: STATE_VERSION,
            mode: state.mode,
            nameserver: state.nameserver,
            original,
            created: state.created.clone(),
        };
        let path = dir.join(STATE_FILE);
        let body = toml::to_string(&record).map_err(|err| ResolverError::State {
            path: path.display().to_string(),
            problem: err.to_string(),
        })?;
        let text = format!(
            "# What `pathdns resolver enable` replaced; `pathdns resolver disable` puts it back.\n\
             # Do not edit.\n{body}"
        );
        write_atomic(&dir.join("written"), &state.written, 0o600)?;
        write_atomic(&path, text.as_bytes(), 0o600)?;
        remove_if_present(&dir.join(LEGACY_STATE_FILE))
    }

    pub(super) fn read_state(&self) -> Result<Option<State>, ResolverError> {
        let dir = self.path(STATE_DIR);
        let path = dir.join(STATE_FILE);
        match read_if_present(&path)? {
            Some(text) => parse_state(&dir, &path, &text).map(Some),
            None => match read_if_present(&dir.join(LEGACY_STATE_FILE))? {
                Some(text) => legacy::parse(&dir, &dir.join(LEGACY_STATE_FILE), &text).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Removes the saved state and the directories `enable` created (when empty).
    pub(super) fn forget(&self, state: &State) -> Result<(), ResolverError> {
        let dir = self.path(STATE_DIR);
        for name in [STATE_FILE, LEGACY_STATE_FILE, "original", "written"] {
            remove_if_present(&dir.join(name))?;
        }
        for created in state.created.iter().rev() {
            // Only when empty: someone else may have put files there since.
            let _ = fs::remove_dir(self.path(created));
        }
        Ok(())
    }
}

fn parse_state(dir: &Path, path: &Path, text: &str) -> Result<State, ResolverError> {
    let bad = |problem: String| ResolverError::State {
        path: path.display().to_string(),
        problem,
    };
    let version: VersionOnly = toml::from_str(text).map_err(|err| bad(one_line(&err)))?;
    if version.version > STATE_VERSION {
        return Err(bad(format!(
            "written by a newer pathdns (state version {}, this one reads up to {STATE_VERSION}); \
             run that version's `pathdns resolver disable`, or put {}/original back by hand",
            version.version, STATE_DIR
        )));
    }
    let record: StateFile = toml::from_str(text).map_err(|err| bad(one_line(&err)))?;
    let original = match record.original {
        Original::Absent => Entry::Absent,
        Original::File { mode, uid, gid } => Entry::File {
            bytes: read_saved(dir, "original")?,
            mode,
            uid,
            gid,
        },
        Original::Symlink => Entry::Symlink {
            target: saved_symlink(dir, path)?,
        },
    };
    Ok(State {
        mode: record.mode,
        nameserver: record.nameserver,
        original,
        written: read_saved(dir, "written")?,
        created: safe_created(record.created),
    })
}

/// Created directories are removed on disable: only absolute paths without `..`.
fn safe_created(created: Vec<String>) -> Vec<String> {
    created
        .into_iter()
        .filter(|dir| dir.starts_with('/') && !dir.contains(".."))
        .collect()
}

fn saved_symlink(dir: &Path, state_path: &Path) -> Result<PathBuf, ResolverError> {
    let bytes = read_saved(dir, "original")?;
    let target = String::from_utf8(bytes).map_err(|_| ResolverError::State {
        path: state_path.display().to_string(),
        problem: "the saved symlink target is not UTF-8".to_owned(),
    })?;
    Ok(PathBuf::from(target))
}

fn read_saved(dir: &Path, name: &str) -> Result<Vec<u8>, ResolverError> {
    let file = dir.join(name);
    fs::read(&file).map_err(io_error(&file))
}

fn read_if_present(path: &Path) -> Result<Option<String>, ResolverError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error(path)(err)),
    }
}

/// A TOML error as one line (its default rendering quotes the file over several).
fn one_line(err: &toml::de::Error) -> String {
    match err.span() {
        Some(span) => format!("{} (at byte {})", err.message(), span.start),
        None => err.message().to_owned(),
    }
}

/// Version 1: `key=value` lines, written by packages before the versioned struct.
mod legacy {
    use std::path::{Path, PathBuf};

    use super::{read_saved, safe_created, State};
    use crate::resolver::files::Entry;
    use crate::resolver::{Mode, ResolverError};

    pub(super) fn parse(dir: &Path, path: &Path, text: &str) -> Result<State, ResolverError> {
        let bad = |problem: String| ResolverError::State {
            path: path.display().to_string(),
            problem,
        };
        let fields = key_values(text).map_err(&bad)?;
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| *v)
                .ok_or_else(|| bad(format!("no {key}=")))
        };
        if get("version")? != "1" {
            return Err(bad(format!("version {} is not 1", get("version")?)));
        }
        let mode = match get("mode")? {
            "plain" => Mode::Plain,
            "resolved" => Mode::Resolved,
            other => return Err(bad(format!("unknown mode {other:?}"))),
        };
        let nameserver = get("nameserver")?
            .parse()
            .map_err(|_| bad("nameserver= is not an IP address".to_owned()))?;
        let number = |key: &str, radix: u32| {
            u32::from_str_radix(get(key)?, radix)
                .map_err(|_| bad(format!("{key}= is not a number")))
        };
        let original = match get("original")? {
            "absent" => Entry::Absent,
            "file" => Entry::File {
                bytes: read_saved(dir, "original")?,
                mode: number("original_mode", 8)?,
                uid: number("original_uid", 10)?,
                gid: number("original_gid", 10)?,
            },
            "symlink" => Entry::Symlink {
                target: PathBuf::from(
                    String::from_utf8(read_saved(dir, "original")?)
                        .map_err(|_| bad("the saved symlink target is not UTF-8".to_owned()))?,
                ),
            },
            other => return Err(bad(format!("unknown original {other:?}"))),
        };
        let created = fields
            .iter()
            .filter(|(k, _)| *k == "created")
            .map(|(_, v)| (*v).to_owned())
            .collect();
        Ok(State {
            mode,
            nameserver,
            original,
            written: read_saved(dir, "written")?,
            created: safe_created(created),
        })
    }

    fn key_values(text: &str) -> Result<Vec<(&str, &str)>, String> {
        let mut fields = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {line:?} is not key=value"))?;
            fields.push((key, value));
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_with_state_dir() -> (tempfile::TempDir, Host, PathBuf) {
        let root = tempfile::tempdir().expect("temp dir");
        let host = Host::new(root.path());
        let dir = host.path(STATE_DIR);
        fs::create_dir_all(&dir).expect("state dir");
        (root, host, dir)
    }

    #[test]
    fn a_written_state_reads_back_the_same() {
        let (_root, host, dir) = host_with_state_dir();
        let state = State {
            mode: Mode::Plain,
            nameserver: "127.0.0.1".parse().unwrap(),
            original: Entry::File {
                bytes: b"nameserver 10.0.0.2\n".to_vec(),
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
            written: b"nameserver 127.0.0.1\n".to_vec(),
            created: vec!["/var/lib/pathdns".into(), "../escape".into()],
        };
        host.write_state(&state).unwrap();
        let text = fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert!(text.contains("version = 2"), "{text}");
        let back = host.read_state().unwrap().expect("a state");
        assert_eq!(back.mode, Mode::Plain);
        assert_eq!(back.nameserver, state.nameserver);
        assert_eq!(back.original, state.original);
        assert_eq!(back.written, state.written);
        assert_eq!(back.created, ["/var/lib/pathdns"]);
        host.forget(&back).unwrap();
        assert!(host.read_state().unwrap().is_none());
    }

    #[test]
    fn a_version_1_state_of_an_earlier_package_is_read() {
        let (_root, host, dir) = host_with_state_dir();
        fs::write(
            dir.join("original"),
            b"../run/systemd/resolve/stub-resolv.conf",
        )
        .unwrap();
        fs::write(dir.join("written"), b"x").unwrap();
        fs::write(
            dir.join(LEGACY_STATE_FILE),
            "# Do not edit.\nversion=1\nmode=resolved\nnameserver=127.0.0.1\noriginal=symlink\ncreated=/etc/systemd/resolved.conf.d\n",
        )
        .unwrap();
        let state = host.read_state().unwrap().expect("a state");
        assert_eq!(state.mode, Mode::Resolved);
        assert_eq!(
            state.original,
            Entry::Symlink {
                target: "../run/systemd/resolve/stub-resolv.conf".into()
            }
        );
        assert_eq!(state.created, ["/etc/systemd/resolved.conf.d"]);
        // Rewriting it leaves only the new record.
        host.write_state(&state).unwrap();
        assert!(!dir.join(LEGACY_STATE_FILE).exists());
        assert_eq!(
            host.read_state().unwrap().expect("a state").mode,
            Mode::Resolved
        );
    }

    #[test]
    fn a_newer_or_corrupt_state_is_an_error_that_says_so() {
        let (_root, host, dir) = host_with_state_dir();
        fs::write(dir.join(STATE_FILE), "version = 3\nmode = \"plain\"\n").unwrap();
        let err = host.read_state().unwrap_err().to_string();
        assert!(err.contains("newer pathdns"), "{err}");
        fs::write(dir.join(STATE_FILE), "version = 2\nmode = \"sideways\"\n").unwrap();
        let err = host.read_state().unwrap_err().to_string();
        assert!(err.contains("state.toml"), "{err}");
    }
}
