//! The host's files, inside a root directory: what a path is (file, symlink, nothing),
//! replacing a file atomically, putting the original back byte for byte (mode and owner
//! too), and following symlinks without leaving the root.
//!
//! Owns: every read and write of resolv.conf and the drop-in. Must not: decide what to
//! write (the modes do) or keep the record of it (state.rs).

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::{io_error, Host, ResolverError, RESOLV_CONF};

/// What a path is, without following a final symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Absent,
    File {
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        target: PathBuf,
    },
}

impl Entry {
    pub(super) fn describe(&self) -> String {
        match self {
            Entry::Absent => "absent".to_owned(),
            Entry::File { bytes, mode, .. } => {
                format!("a file ({} bytes, mode {:04o})", bytes.len(), mode)
            }
            Entry::Symlink { target } => format!("a symlink to {}", target.display()),
        }
    }
}

impl Host {
    /// The path as the host sees it (without the root).
    pub(super) fn shown(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rest) => format!("/{}", rest.display()),
            Err(_) => path.display().to_string(),
        }
    }

    /// Puts `original` back at `target`.
    pub(super) fn restore(&self, target: &str, original: &Entry) -> Result<(), ResolverError> {
        let path = self.path(target);
        match original {
            Entry::Absent => remove_if_present(&path),
            Entry::File {
                bytes,
                mode,
                uid,
                gid,
            } => {
                write_atomic(&path, bytes, *mode)?;
                let meta = fs::symlink_metadata(&path).map_err(io_error(&path))?;
                if meta.uid() != *uid || meta.gid() != *gid {
                    std::os::unix::fs::chown(&path, Some(*uid), Some(*gid))
                        .map_err(io_error(&path))?;
                }
                Ok(())
            }
            Entry::Symlink { target } => {
                let temp = temp_path(&path);
                let _ = fs::remove_file(&temp);
                std::os::unix::fs::symlink(target, &temp).map_err(io_error(&temp))?;
                fs::rename(&temp, &path).map_err(|err| {
                    let _ = fs::remove_file(&temp);
                    io_error(&path)(err)
                })
            }
        }
    }

    /// Creates the missing directories of `absolute` inside the root; returns them, parents
    /// first.
    pub(super) fn create_dirs(&self, absolute: &str) -> Result<Vec<String>, ResolverError> {
        let mut created = Vec::new();
        let mut current = String::new();
        for part in Path::new(absolute).components() {
            let Component::Normal(part) = part else {
                continue;
            };
            current.push('/');
            current.push_str(&part.to_string_lossy());
            let path = self.path(&current);
            match fs::symlink_metadata(&path) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&path).map_err(io_error(&path))?;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                        .map_err(io_error(&path))?;
                    created.push(current.clone());
                }
                Err(err) => return Err(io_error(&path)(err)),
            }
        }
        Ok(created)
    }

    pub(super) fn entry(&self, absolute: &str) -> Result<Entry, ResolverError> {
        let path = self.path(absolute);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Entry::Absent),
            Err(err) => return Err(io_error(&path)(err)),
        };
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(io_error(&path))?;
            return Ok(Entry::Symlink { target });
        }
        if !meta.is_file() {
            return Err(ResolverError::refused(
                format!("{absolute} is neither a file nor a symlink"),
                "make it a file or a symlink, then run this again",
                false,
            ));
        }
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        Ok(Entry::File {
            bytes,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }

    /// The host path a symlink at `link` (a host path) with `target` names, normalised,
    /// without the root: `../run/x` from `/etc/resolv.conf` is `/run/x`.
    pub(super) fn inside(&self, link: &Path, target: &Path) -> PathBuf {
        let joined = if target.is_absolute() {
            target.to_path_buf()
        } else {
            link.parent().unwrap_or(Path::new("/")).join(target)
        };
        let mut out = PathBuf::from("/");
        for part in joined.components() {
            match part {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(part) => out.push(part),
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        out
    }

    /// Reads a host path, following symlinks inside the root (at most 8).
    pub(super) fn read_following(&self, host_path: &Path) -> Option<Vec<u8>> {
        let mut current = host_path.to_path_buf();
        for _ in 0..8 {
            let path = self.path(&current.display().to_string());
            let meta = fs::symlink_metadata(&path).ok()?;
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).ok()?;
                current = self.inside(&current, &target);
                continue;
            }
            return fs::read(&path).ok();
        }
        None
    }

    /// Whether a plain-mode target still names pathdns as a nameserver.
    pub(super) fn points_at(&self, current: &Entry, nameserver: IpAddr) -> bool {
        let text = match current {
            Entry::Absent => return false,
            Entry::File { bytes, .. } => String::from_utf8_lossy(bytes).into_owned(),
            Entry::Symlink { target } => self
                .read_following(&self.inside(Path::new(RESOLV_CONF), target))
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default(),
        };
        crate::host::resolv_conf::parse(&text)
            .nameservers
            .contains(&nameserver)
    }
}

/// Whether `entry` is a file holding exactly `bytes`.
pub(super) fn holds(entry: &Entry, bytes: &[u8]) -> bool {
    matches!(entry, Entry::File { bytes: current, .. } if current == bytes)
}

pub(super) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.pathdns-new"))
}

/// Replaces `path` with `bytes` atomically (a new file renamed over it), with `mode`. When
/// `path` is a mount point (a container's bind-mounted resolv.conf), rewrites it in place.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ResolverError> {
    let temp = temp_path(path);
    let write = || -> io::Result<()> {
        let mut file = fs::File::create(&temp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(err) = write() {
        let _ = fs::remove_file(&temp);
        return Err(io_error(&temp)(err));
    }
    match fs::rename(&temp, path) {
        Ok(()) => Ok(()),
        Err(err) if err.raw_os_error() == Some(16) /* EBUSY: a mount point */ => {
            let _ = fs::remove_file(&temp);
            let mut file = fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .map_err(io_error(path))?;
            file.write_all(bytes).map_err(io_error(path))?;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_error(path))?;
            file.sync_all().map_err(io_error(path))
        }
        Err(err) => {
            let _ = fs::remove_file(&temp);
            Err(io_error(path)(err))
        }
    }
}

/// Removes a file; one that is not there is fine.
pub(super) fn remove_if_present(path: &Path) -> Result<(), ResolverError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(io_error(path)(err)),
    }
}
