//! Editing a user's kubeconfig file in place without ever losing it (see
//! docs/arm-and-aks.md#kubeconfig-rewrite).
//!
//! Before the file is touched, an [`InPlaceStore`] (a private 0700 state directory) receives:
//!
//! 1. a **marker** (`<key>.json`): the file as given and as resolved (symlinks followed),
//!    whether it existed, its mode and owner, a SHA-256 of the content about to be written, and
//!    the pid. It is created exclusively (two processes can never both own one file) and stays
//!    locked with `flock(2)` for as long as the editing process lives;
//! 2. a **backup** (`<key>.backup`, 0600): the file's exact bytes.
//!
//! Both are written to a temporary file, synced and then linked or renamed into place, and the
//! directory is synced; only then is the user's file replaced, the same way (a temporary file
//! in its own directory with its mode and owner, synced, renamed over the target, the directory
//! synced). A symlink is followed: the file it points at is edited, the link itself stays.
//!
//! [`InPlaceEdit::restore`] puts the exact bytes, mode and owner back (or removes a file that
//! did not exist), then deletes the backup and the marker, in that order. A process killed at
//! any point leaves a marker whose lock is free: [`InPlaceStore::recover`] (run by the next
//! `bastion aks`, or `bastion aks --restore-kubeconfig`) finds it and does the same restore.
//! Should the file hold neither what was written nor the original (someone changed it
//! meanwhile), that version is saved next to the marker before the original is put back, so
//! nothing is lost.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::KubeconfigError;

/// The marker format's version.
const MARKER_VERSION: u32 = 1;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KubeconfigError + '_ {
    move |source| KubeconfigError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The directory of `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// fsync of a directory, so that a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> Result<(), KubeconfigError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Takes the exclusive lock of `file` without waiting: `Ok(false)` when another open file
/// description holds it (a live process).
fn try_lock(file: &File, path: &Path) -> Result<bool, KubeconfigError> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(false),
        Err(e) => Err(KubeconfigError::Io {
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory (named
/// `.{name}.bastion-*.tmp`) with `mode` and, when given, `owner` (uid, gid), written, synced,
/// renamed over `path`, the directory synced. A reader sees the old file or the new one.
fn write_atomic_bytes(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), KubeconfigError> {
    write_atomic_impl(path, bytes, mode, owner, false)
}

fn write_atomic_impl(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    create_new: bool,
) -> Result<(), KubeconfigError> {
    let io = io_err(path);
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(path))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)
        .map_err(io)?;
    if let Some((uid, gid)) = owner {
        let meta = tmp.as_file().metadata().map_err(io_err(path))?;
        if (meta.uid(), meta.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid)).map_err(|e| {
                KubeconfigError::CannotEditInPlace {
                    path: path.to_owned(),
                    reason: format!("its owner {uid}:{gid} cannot be kept ({e})"),
                }
            })?;
        }
    }
    // After chown, which may clear set-id bits.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(path))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    if create_new {
        tmp.persist_noclobber(path)
    } else {
        tmp.persist(path)
    }
    .map_err(|e| io_err(path)(e.error))?;
    sync_dir(&dir)
}

/// `.{file name}.bastion-`: the prefix of the temporary files written next to `path`.
fn temp_prefix(path: &Path) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(path.file_name().unwrap_or_else(|| "kubeconfig".as_ref()));
    prefix.push(".bastion-");
    prefix
}

/// Removes temporary files an interrupted atomic write of `path` may have left beside it.
fn remove_stale_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let bytes = name.as_bytes();
        if bytes.starts_with(prefix.as_bytes()) && bytes.ends_with(b".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// What the marker of an in-place edit records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    version: u32,
    /// The path as the user gave it (possibly a symlink).
    given: PathBuf,
    /// The file actually edited: `given` with every symlink resolved.
    target: PathBuf,
    /// Whether the file existed (if not, restoring removes it).
    existed: bool,
    /// Its permission bits.
    mode: u32,
    /// Its owner.
    uid: u32,
    /// Its group.
    gid: u32,
    /// SHA-256 (hex) of the content written in its place.
    written_sha256: String,
    /// The process that made the edit.
    pid: u32,
    /// When, in seconds since the epoch.
    created: u64,
}

/// How a file was put back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreAction {
    /// Its original bytes, mode and owner were written back.
    Rewritten,
    /// It did not exist before, so it was removed.
    Removed,
    /// It was already as it had been (the edit had not happened yet, or was already undone).
    AlreadyIntact,
}

/// A file put back as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// The path as given (possibly a symlink).
    pub given: PathBuf,
    /// The file restored (symlinks resolved).
    pub target: PathBuf,
    /// What was done.
    pub action: RestoreAction,
    /// Where the version found in the file was saved, when it was neither the original nor
    /// what the edit wrote (changed by someone meanwhile). 0600, in the state directory.
    pub changed_copy: Option<PathBuf>,
    /// The process that made the edit.
    pub pid: u32,
}

/// The result of looking at one marker during [`InPlaceStore::recover`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Recovery {
    /// The editing process was gone; the file is back as it was.
    Restored(Restored),
    /// The editing process is still running (it holds the lock): left alone.
    InUse {
        /// The path as given.
        given: PathBuf,
        /// Its pid.
        pid: u32,
    },
    /// The restore failed; the marker and backup stay for another attempt.
    Failed {
        /// The marker.
        marker: PathBuf,
        /// Why.
        error: KubeconfigError,
    },
}

/// Where in-place edits keep their markers and backups: a private (0700) directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlaceStore {
    dir: PathBuf,
}

impl InPlaceStore {
    /// The store in `dir` (created, 0700, when first needed).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$XDG_STATE_HOME/bastion/kubeconfig-edits`, else
    /// `$HOME/.local/state/bastion/kubeconfig-edits`; `None` when neither is an absolute path.
    pub fn default_dir() -> Option<PathBuf> {
        let absolute = |var: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let base = absolute("XDG_STATE_HOME")
            .or_else(|| absolute("HOME").map(|h| h.join(".local").join("state")))?;
        Some(base.join("bastion").join("kubeconfig-edits"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ensure_dir(&self) -> Result<(), KubeconfigError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_err(&self.dir))?;
        let meta = fs::metadata(&self.dir).map_err(io_err(&self.dir))?;
        if meta.mode() & 0o077 != 0 {
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err(&self.dir))?;
        }
        Ok(())
    }

    /// The marker and backup names of `target`: a digest of its resolved path.
    fn paths(&self, target: &Path) -> (PathBuf, PathBuf) {
        let key = &sha256_hex(target.as_os_str().as_bytes())[..32];
        (
            self.dir.join(format!("{key}.json")),
            self.dir.join(format!("{key}.backup")),
        )
    }

    /// Edits the kubeconfig at `path` in place: `make` gets its current bytes (`None`: no such
    /// file) and returns the new content. The backup and marker are made durable before the
    /// file is replaced; the returned [`InPlaceEdit`] puts it back. A stale edit of the same
    /// file (its process gone) is restored first; a live one is an error.
    ///
    /// Refused: a directory or other non-regular file, a symlink to a missing file, a file with
    /// several hard links (replacing it would split them), a path that is not UTF-8.
    pub fn edit(
        &self,
        path: &Path,
        make: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, KubeconfigError>,
    ) -> Result<InPlaceEdit, KubeconfigError> {
        let cannot = |reason: &str| KubeconfigError::CannotEditInPlace {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if path.to_str().is_none() {
            return Err(cannot("its path is not UTF-8"));
        }
        let target = resolve(path)?;
        self.ensure_dir()?;
        let (marker_path, backup_path) = self.paths(&target);
        // An edit of this file left by a process that is gone is undone first.
        match self.recover_one(&marker_path) {
            None | Some(Recovery::Restored(_)) => {}
            Some(Recovery::InUse { pid, .. }) => {
                return Err(KubeconfigError::EditInProgress {
                    path: path.to_owned(),
                    pid,
                });
            }
            Some(Recovery::Failed { error, .. }) => return Err(error),
        }
        let original = read_original(path, &target)?;
        let (existed, mode, uid, gid) = match &original {
            Some((_, meta)) => (true, meta.mode() & 0o7777, meta.uid(), meta.gid()),
            None => (false, 0o600, 0, 0),
        };
        let new = make(original.as_ref().map(|(b, _)| b.as_slice()))?;
        let marker = Marker {
            version: MARKER_VERSION,
            given: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
            target: target.clone(),
            existed,
            mode,
            uid,
            gid,
            written_sha256: sha256_hex(&new),
            pid: std::process::id(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let lock = self.create_marker(&marker, &marker_path)?;
        let edit = InPlaceEdit {
            store: self.clone(),
            marker,
            marker_path,
            backup_path,
            lock: Some(lock),
        };
        match edit.apply(original, &new) {
            Ok(()) => Ok(edit),
            Err(e) => {
                // The file was not replaced: drop what was recorded for it.
                edit.discard();
                Err(e)
            }
        }
    }

    /// Creates `marker_path` exclusively, already locked: it is locked before it gets its
    /// name, so no one ever sees it unlocked while this process lives.
    fn create_marker(&self, marker: &Marker, marker_path: &Path) -> Result<File, KubeconfigError> {
        let json = serde_json::to_vec_pretty(marker)
            .map_err(|e| KubeconfigError::Serialize(e.to_string()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".marker-")
            .suffix(".tmp")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(&self.dir)
            .map_err(io_err(&self.dir))?;
        try_lock(tmp.as_file(), tmp.path())?;
        tmp.write_all(&json).map_err(io_err(marker_path))?;
        tmp.as_file().sync_all().map_err(io_err(marker_path))?;
        match tmp.persist_noclobber(marker_path) {
            Ok(file) => {
                sync_dir(&self.dir)?;
                Ok(file)
            }
            // Another process started an edit of the same file just now.
            Err(e) if e.error.kind() == ErrorKind::AlreadyExists => {
                let pid = File::open(marker_path)
                    .ok()
                    .and_then(|mut f| read_marker(&mut f, marker_path).ok())
                    .map_or(0, |m| m.pid);
                Err(KubeconfigError::EditInProgress {
                    path: marker.given.clone(),
                    pid,
                })
            }
            Err(e) => Err(io_err(marker_path)(e.error)),
        }
    }

    /// Restores every file whose in-place edit was interrupted (its process is gone), and
    /// removes leftovers of interrupted marker writes. Edits of live processes are reported and
    /// left alone. Nothing to do (or no directory) gives an empty list.
    pub fn recover(&self) -> Vec<Recovery> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        let mut out = Vec::new();
        for path in names {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(".json") {
                out.extend(self.recover_one(&path));
            } else if name.starts_with(".marker-") && name.ends_with(".tmp") {
                // A marker never linked into place: stale once its lock is free.
                if let Ok(f) = File::open(&path)
                    && try_lock(&f, &path).unwrap_or(false)
                {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        out
    }

    /// Restores the edit recorded by the marker at `marker_path`, if its process is gone.
    /// `None` when the marker is gone (restored by another process meanwhile).
    fn recover_one(&self, marker_path: &Path) -> Option<Recovery> {
        let failed = |error| {
            Some(Recovery::Failed {
                marker: marker_path.to_owned(),
                error,
            })
        };
        let mut file = match File::open(marker_path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => return failed(io_err(marker_path)(e)),
        };
        let marker = match read_marker(&mut file, marker_path) {
            Ok(m) => m,
            Err(e) => return failed(e),
        };
        match try_lock(&file, marker_path) {
            Ok(true) => {}
            Ok(false) => {
                return Some(Recovery::InUse {
                    given: marker.given,
                    pid: marker.pid,
                });
            }
            Err(e) => return failed(e),
        }
        // Locked: make sure it is still the marker in place, not one already removed.
        let same = match (file.metadata(), fs::metadata(marker_path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            return None;
        }
        let backup_path = marker_path.with_extension("backup");
        remove_stale_temps(&marker.target);
        remove_stale_temps(&backup_path);
        match self.restore_marker(&marker, marker_path, &backup_path) {
            Ok(r) => Some(Recovery::Restored(r)),
            Err(e) => failed(e),
        }
    }

    /// Puts `marker.target` back from `backup_path`, then removes the backup and the marker.
    fn restore_marker(
        &self,
        marker: &Marker,
        marker_path: &Path,
        backup_path: &Path,
    ) -> Result<Restored, KubeconfigError> {
        let target = &marker.target;
        let current = match fs::symlink_metadata(target) {
            Ok(meta) if meta.is_file() => Some((fs::read(target).map_err(io_err(target))?, meta)),
            Ok(_) => {
                return Err(KubeconfigError::CannotEditInPlace {
                    path: target.clone(),
                    reason: "it is no longer a regular file; restore it by hand from the backup"
                        .to_owned(),
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(target)(e)),
        };
        let original = if marker.existed {
            match fs::read(backup_path) {
                Ok(b) => Some(b),
                // The backup is made durable before the file is replaced, and removed only
                // after it is restored: without it, the file was never (or is no longer) edited.
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return self.finish_marker(marker, marker_path, backup_path, None, None);
                }
                Err(e) => return Err(io_err(backup_path)(e)),
            }
        } else {
            None
        };
        // A version that is neither what we wrote nor the original is someone's change: keep it.
        let changed_copy = match &current {
            Some((bytes, _))
                if sha256_hex(bytes) != marker.written_sha256
                    && original.as_deref() != Some(bytes.as_slice()) =>
            {
                Some(self.save_changed(marker_path, bytes)?)
            }
            _ => None,
        };
        let action = match (&original, &current) {
            (Some(orig), Some((bytes, meta)))
                if orig == bytes
                    && meta.mode() & 0o7777 == marker.mode
                    && (meta.uid(), meta.gid()) == (marker.uid, marker.gid) =>
            {
                None
            }
            (Some(orig), _) => {
                write_atomic_bytes(target, orig, marker.mode, Some((marker.uid, marker.gid)))?;
                Some(RestoreAction::Rewritten)
            }
            (None, Some(_)) => {
                fs::remove_file(target).map_err(io_err(target))?;
                sync_dir(&parent_dir(target))?;
                Some(RestoreAction::Removed)
            }
            (None, None) => None,
        };
        self.finish_marker(marker, marker_path, backup_path, action, changed_copy)
    }

    /// The last step of a restore: the backup, then the marker (the commit point) removed.
    fn finish_marker(
        &self,
        marker: &Marker,
        marker_path: &Path,
        backup_path: &Path,
        action: Option<RestoreAction>,
        changed_copy: Option<PathBuf>,
    ) -> Result<Restored, KubeconfigError> {
        match fs::remove_file(backup_path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(backup_path)(e)),
        }
        sync_dir(&self.dir)?;
        match fs::remove_file(marker_path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(marker_path)(e)),
        }
        sync_dir(&self.dir)?;
        Ok(Restored {
            given: marker.given.clone(),
            target: marker.target.clone(),
            action: action.unwrap_or(RestoreAction::AlreadyIntact),
            changed_copy,
            pid: marker.pid,
        })
    }

    /// Saves a changed version found in an edited file: `<key>.changed-<seconds>` (0600).
    fn save_changed(&self, marker_path: &Path, bytes: &[u8]) -> Result<PathBuf, KubeconfigError> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let stem = marker_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut n = 0u32;
        loop {
            let path = self.dir.join(if n == 0 {
                format!("{stem}.changed-{secs}")
            } else {
                format!("{stem}.changed-{secs}-{n}")
            });
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(bytes).map_err(io_err(&path))?;
                    f.sync_all().map_err(io_err(&path))?;
                    sync_dir(&self.dir)?;
                    return Ok(path);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
    }
}

fn read_marker(file: &mut File, path: &Path) -> Result<Marker, KubeconfigError> {
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(io_err(path))?;
    let marker: Marker = serde_json::from_slice(&text).map_err(|e| KubeconfigError::BadMarker {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if marker.version != MARKER_VERSION {
        return Err(KubeconfigError::BadMarker {
            path: path.to_owned(),
            reason: format!("version {} is not {MARKER_VERSION}", marker.version),
        });
    }
    Ok(marker)
}

/// `path` with its symlinks resolved (for a missing file: its directory resolved).
fn resolve(path: &Path) -> Result<PathBuf, KubeconfigError> {
    let cannot = |reason: String| KubeconfigError::CannotEditInPlace {
        path: path.to_owned(),
        reason,
    };
    match fs::symlink_metadata(path) {
        Ok(link_meta) => fs::canonicalize(path).map_err(|e| {
            if link_meta.file_type().is_symlink() {
                cannot(format!(
                    "it is a symlink whose target cannot be resolved ({e})"
                ))
            } else {
                io_err(path)(e)
            }
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let name = path
                .file_name()
                .ok_or_else(|| cannot("it names no file".to_owned()))?;
            let dir = fs::canonicalize(parent_dir(path)).map_err(io_err(path))?;
            Ok(dir.join(name))
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// The bytes and metadata of `target` (resolved from `path`), `None` when it does not exist.
/// Only a regular file with a single link can be replaced safely.
fn read_original(
    path: &Path,
    target: &Path,
) -> Result<Option<(Vec<u8>, fs::Metadata)>, KubeconfigError> {
    let cannot = |reason: String| KubeconfigError::CannotEditInPlace {
        path: path.to_owned(),
        reason,
    };
    let meta = match fs::metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(target)(e)),
    };
    if !meta.is_file() {
        return Err(cannot("it is not a regular file".to_owned()));
    }
    if meta.nlink() > 1 {
        return Err(cannot(format!(
            "it has {} hard links, which replacing it would split",
            meta.nlink()
        )));
    }
    let bytes = fs::read(target).map_err(io_err(target))?;
    Ok(Some((bytes, meta)))
}

/// A kubeconfig edited in place by this process. [`InPlaceEdit::restore`] puts it back; if this
/// is dropped without that, the restore is attempted on drop, and if the process dies first,
/// [`InPlaceStore::recover`] does it on the next run.
#[derive(Debug)]
pub struct InPlaceEdit {
    store: InPlaceStore,
    marker: Marker,
    marker_path: PathBuf,
    backup_path: PathBuf,
    /// The marker, open and locked (`flock`): the lock says this process is alive.
    lock: Option<File>,
}

impl InPlaceEdit {
    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.marker.given
    }

    /// The file edited (symlinks resolved).
    pub fn target(&self) -> &Path {
        &self.marker.target
    }

    /// Whether the file existed before the edit.
    pub fn existed(&self) -> bool {
        self.marker.existed
    }

    /// Its permission bits before the edit (kept by the edit).
    pub fn mode(&self) -> u32 {
        self.marker.mode
    }

    /// The backup of its original bytes (absent when it did not exist).
    pub fn backup_path(&self) -> &Path {
        &self.backup_path
    }

    /// The marker recording the edit.
    pub fn marker_path(&self) -> &Path {
        &self.marker_path
    }

    /// Backup, then the new content in place.
    fn apply(
        &self,
        original: Option<(Vec<u8>, fs::Metadata)>,
        new: &[u8],
    ) -> Result<(), KubeconfigError> {
        let target = &self.marker.target;
        if let Some((bytes, meta)) = &original {
            write_atomic_bytes(&self.backup_path, bytes, 0o600, None)?;
            // The file must still be what was read, or a change made meanwhile would be lost.
            let now = fs::metadata(target).map_err(io_err(target))?;
            let unchanged = now.ino() == meta.ino()
                && now.len() == meta.len()
                && fs::read(target).map_err(io_err(target))? == *bytes;
            if !unchanged {
                return Err(KubeconfigError::CannotEditInPlace {
                    path: self.marker.given.clone(),
                    reason: "it changed while being read; try again".to_owned(),
                });
            }
            write_atomic_bytes(
                target,
                new,
                self.marker.mode,
                Some((self.marker.uid, self.marker.gid)),
            )
        } else {
            // Created, never replacing a file that appeared meanwhile.
            write_atomic_impl(target, new, 0o600, None, true)
        }
    }

    /// Forgets an edit that never replaced the file: backup and marker removed.
    fn discard(mut self) {
        let _ = fs::remove_file(&self.backup_path);
        let _ = fs::remove_file(&self.marker_path);
        let _ = sync_dir(&self.store.dir);
        self.lock = None;
    }

    /// Puts the file back exactly as it was (bytes, mode, owner; removed if it did not exist),
    /// then removes the backup and the marker. A version found that is neither the original
    /// nor what was written is saved first (see [`Restored::changed_copy`]). On error the
    /// marker and backup stay, for [`InPlaceStore::recover`].
    pub fn restore(mut self) -> Result<Restored, KubeconfigError> {
        self.restore_now()
    }

    fn restore_now(&mut self) -> Result<Restored, KubeconfigError> {
        let Some(lock) = self.lock.take() else {
            return Err(KubeconfigError::CannotEditInPlace {
                path: self.marker.given.clone(),
                reason: "it was already restored".to_owned(),
            });
        };
        let result = self
            .store
            .restore_marker(&self.marker, &self.marker_path, &self.backup_path);
        drop(lock);
        result
    }
}

impl Drop for InPlaceEdit {
    fn drop(&mut self) {
        if self.lock.is_some()
            && let Err(e) = self.restore_now()
        {
            tracing::warn!(
                "could not restore {}: {e}; run `bastion aks --restore-kubeconfig`",
                self.marker.given.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const ORIGINAL: &[u8] =
        b"# my own kubeconfig, formatted my way\napiVersion: v1\nkind: Config\nclusters: []\n";
    const EDITED: &[u8] = b"apiVersion: v1\nclusters:\n- name: tunnel\n";

    struct Setup {
        _root: tempfile::TempDir,
        store: InPlaceStore,
        kube: PathBuf,
    }

    fn setup() -> Setup {
        let root = tempfile::tempdir().unwrap();
        let store = InPlaceStore::new(root.path().join("state").join("edits"));
        let kube_dir = root.path().join("kube");
        fs::create_dir(&kube_dir).unwrap();
        let kube = kube_dir.join("config");
        Setup {
            _root: root,
            store,
            kube,
        }
    }

    fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
        fs::write(path, bytes).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    fn edit_to(store: &InPlaceStore, path: &Path, new: &'static [u8]) -> InPlaceEdit {
        store.edit(path, |_| Ok(new.to_vec())).unwrap()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// A marker as a dead process would have left it: the lock released without a restore.
    fn crash(mut edit: InPlaceEdit) {
        edit.lock = None;
        std::mem::forget(edit);
    }

    #[test]
    fn edit_keeps_a_backup_and_a_locked_marker_then_restores_byte_for_byte() {
        let s = setup();
        write_mode(&s.kube, ORIGINAL, 0o644);
        let seen = std::cell::RefCell::new(None);
        let edit = s
            .store
            .edit(&s.kube, |orig| {
                *seen.borrow_mut() = orig.map(<[u8]>::to_vec);
                Ok(EDITED.to_vec())
            })
            .unwrap();
        assert_eq!(seen.borrow().as_deref(), Some(ORIGINAL));
        assert_eq!(fs::read(&s.kube).unwrap(), EDITED);
        // Mode kept while edited.
        assert_eq!(mode_of(&s.kube), 0o644);
        // Backup: exact bytes, 0600; marker: JSON naming the file; state dir 0700.
        assert_eq!(fs::read(edit.backup_path()).unwrap(), ORIGINAL);
        assert_eq!(mode_of(edit.backup_path()), 0o600);
        assert_eq!(mode_of(edit.marker_path()), 0o600);
        assert_eq!(mode_of(s.store.dir()), 0o700);
        let marker: Marker =
            serde_json::from_slice(&fs::read(edit.marker_path()).unwrap()).unwrap();
        assert_eq!(marker.target, fs::canonicalize(&s.kube).unwrap());
        assert!(marker.existed);
        assert_eq!(marker.mode, 0o644);
        assert_eq!(marker.pid, std::process::id());
        assert_eq!(marker.written_sha256, sha256_hex(EDITED));
        // While this process lives, recovery leaves it alone.
        let r = s.store.recover();
        assert!(
            matches!(&r[..], [Recovery::InUse { pid, .. }] if *pid == std::process::id()),
            "{r:?}"
        );
        assert_eq!(fs::read(&s.kube).unwrap(), EDITED);

        let restored = edit.restore().unwrap();
        assert_eq!(restored.action, RestoreAction::Rewritten);
        assert_eq!(restored.changed_copy, None);
        assert_eq!(fs::read(&s.kube).unwrap(), ORIGINAL);
        assert_eq!(mode_of(&s.kube), 0o644);
        assert!(
            names_in(s.store.dir()).is_empty(),
            "{:?}",
            names_in(s.store.dir())
        );
        // No temporary file left next to the user's file.
        assert_eq!(names_in(s.kube.parent().unwrap()), ["config"]);
    }

    #[test]
    fn a_crashed_edit_is_restored_by_recover() {
        let s = setup();
        write_mode(&s.kube, ORIGINAL, 0o640);
        let edit = edit_to(&s.store, &s.kube, EDITED);
        crash(edit);
        assert_eq!(fs::read(&s.kube).unwrap(), EDITED);
        // A leftover of an interrupted atomic write beside the file is cleaned up too.
        fs::write(s.kube.with_file_name(".config.bastion-XYZ.tmp"), b"half").unwrap();

        let r = s.store.recover();
        let [Recovery::Restored(restored)] = &r[..] else {
            panic!("{r:?}")
        };
        assert_eq!(restored.action, RestoreAction::Rewritten);
        assert_eq!(restored.given, s.kube);
        assert_eq!(fs::read(&s.kube).unwrap(), ORIGINAL);
        assert_eq!(mode_of(&s.kube), 0o640);
        assert!(names_in(s.store.dir()).is_empty());
        assert_eq!(names_in(s.kube.parent().unwrap()), ["config"]);
        // Nothing more to do.
        assert!(s.store.recover().is_empty());
    }

    #[test]
    fn a_symlink_is_followed_and_stays_a_symlink() {
        let s = setup();
        let real = s.kube.with_file_name("real-config");
        write_mode(&real, ORIGINAL, 0o644);
        symlink("real-config", &s.kube).unwrap();
        let edit = edit_to(&s.store, &s.kube, EDITED);
        assert_eq!(edit.target(), fs::canonicalize(&real).unwrap());
        assert!(
            fs::symlink_metadata(&s.kube)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), EDITED);
        crash(edit);

        let r = s.store.recover();
        assert!(matches!(&r[..], [Recovery::Restored(_)]), "{r:?}");
        assert!(
            fs::symlink_metadata(&s.kube)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_link(&s.kube).unwrap(), Path::new("real-config"));
        assert_eq!(fs::read(&real).unwrap(), ORIGINAL);
        assert_eq!(mode_of(&real), 0o644);
    }

    #[test]
    fn a_file_that_did_not_exist_is_removed_again() {
        let s = setup();
        let seen = std::cell::Cell::new(true);
        let edit = s
            .store
            .edit(&s.kube, |orig| {
                seen.set(orig.is_some());
                Ok(EDITED.to_vec())
            })
            .unwrap();
        assert!(!seen.get());
        assert!(!edit.existed());
        assert_eq!(fs::read(&s.kube).unwrap(), EDITED);
        assert_eq!(mode_of(&s.kube), 0o600);
        assert!(!edit.backup_path().exists());
        assert_eq!(edit.restore().unwrap().action, RestoreAction::Removed);
        assert!(!s.kube.exists());

        // The same after a crash.
        crash(edit_to(&s.store, &s.kube, EDITED));
        let r = s.store.recover();
        assert!(
            matches!(&r[..], [Recovery::Restored(x)] if x.action == RestoreAction::Removed),
            "{r:?}"
        );
        assert!(!s.kube.exists());
        assert!(names_in(s.store.dir()).is_empty());
    }

    #[test]
    fn a_version_changed_meanwhile_is_saved_before_the_original_comes_back() {
        let s = setup();
        write_mode(&s.kube, ORIGINAL, 0o600);
        let edit = edit_to(&s.store, &s.kube, EDITED);
        fs::write(&s.kube, b"someone else's change\n").unwrap();
        let restored = edit.restore().unwrap();
        assert_eq!(fs::read(&s.kube).unwrap(), ORIGINAL);
        let copy = restored.changed_copy.expect("the change is kept");
        assert_eq!(fs::read(&copy).unwrap(), b"someone else's change\n");
        assert_eq!(mode_of(&copy), 0o600);
        assert!(copy.starts_with(s.store.dir()));
    }

    #[test]
    fn a_crash_before_the_file_was_replaced_changes_nothing() {
        let s = setup();
        write_mode(&s.kube, ORIGINAL, 0o644);
        let edit = edit_to(&s.store, &s.kube, EDITED);
        // As if the process died after the marker, before the backup (and so before the file).
        fs::remove_file(edit.backup_path()).unwrap();
        fs::write(&s.kube, ORIGINAL).unwrap();
        let before = fs::metadata(&s.kube).unwrap().ino();
        crash(edit);
        let r = s.store.recover();
        assert!(
            matches!(&r[..], [Recovery::Restored(x)] if x.action == RestoreAction::AlreadyIntact),
            "{r:?}"
        );
        assert_eq!(fs::read(&s.kube).unwrap(), ORIGINAL);
        assert_eq!(
            fs::metadata(&s.kube).unwrap().ino(),
            before,
            "not rewritten"
        );
        assert!(names_in(s.store.dir()).is_empty());

        // After the backup but before the file: the original bytes are there, nothing to write.
        let edit = edit_to(&s.store, &s.kube, EDITED);
        write_mode(&s.kube, ORIGINAL, 0o644);
        crash(edit);
        let r = s.store.recover();
        assert!(
            matches!(&r[..], [Recovery::Restored(x)] if x.action == RestoreAction::AlreadyIntact && x.changed_copy.is_none()),
            "{r:?}"
        );
        assert_eq!(fs::read(&s.kube).unwrap(), ORIGINAL);
    }

    #[test]
    fn a_live_edit_of_the_same_file_is_refused_a_stale_one_restored_first() {
        let s = setup();
        write_mode(&s.kube, ORIGINAL, 0o644);
        let first = edit_to(&s.store, &s.kube, EDITED);
        // A second edit while the first is live: refused, nothing touched. (flock locks belong
        // to open file descriptions, so the same process is refused as another would be.)
        let e = s
            .store
            .edit(&s.kube, |_| Ok(b"second".to_vec()))
            .unwrap_err();
        assert!(
            matches!(&e, KubeconfigError::EditInProgress { pid, .. } if *pid == std::process::id()),
            "{e}"
        );
        assert_eq!(fs::read(&s.kube).unwrap(), EDITED);
        // Once the first is gone without a restore, the next edit restores it, then edits.
        crash(first);
        let second = s
            .store
            .edit(&s.kube, |orig| {
                assert_eq!(orig, Some(ORIGINAL));
                Ok(b"second".to_vec())
            })
            .unwrap();
        assert_eq!(fs::read(&s.kube).unwrap(), b"second");
        second.restore().unwrap();
        assert_eq!(fs::read(&s.kube).unwrap(), ORIGINAL);
    }

    #[test]
    fn drop_without_restore_restores() {
        let s = setup();
        write_mode(&s.kube, ORIGINAL, 0o644);
        drop(edit_to(&s.store, &s.kube, EDITED));
        assert_eq!(fs::read(&s.kube).unwrap(), ORIGINAL);
        assert!(names_in(s.store.dir()).is_empty());
    }

    #[test]
    fn a_failed_make_leaves_no_trace() {
        let s = setup();
        write_mode(&s.kube, ORIGINAL, 0o644);
        let e = s
            .store
            .edit(&s.kube, |_| Err(KubeconfigError::NotAMapping))
            .unwrap_err();
        assert!(matches!(e, KubeconfigError::NotAMapping));
        assert_eq!(fs::read(&s.kube).unwrap(), ORIGINAL);
        assert!(names_in(s.store.dir()).is_empty());
    }

    #[test]
    fn refused_paths() {
        let s = setup();
        let dir = s.kube.parent().unwrap();
        // A directory.
        let e = s.store.edit(dir, |_| Ok(Vec::new())).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // A dangling symlink.
        symlink("missing", &s.kube).unwrap();
        let e = s.store.edit(&s.kube, |_| Ok(Vec::new())).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        fs::remove_file(&s.kube).unwrap();
        // Hard links.
        fs::write(&s.kube, ORIGINAL).unwrap();
        fs::hard_link(&s.kube, dir.join("other-name")).unwrap();
        let e = s.store.edit(&s.kube, |_| Ok(Vec::new())).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        assert_eq!(fs::read(&s.kube).unwrap(), ORIGINAL);
        // None of these left anything in the state directory.
        assert!(names_in(s.store.dir()).is_empty());
    }

    #[test]
    fn an_unreadable_marker_is_reported_and_kept() {
        let s = setup();
        s.store.ensure_dir().unwrap();
        let bad = s.store.dir().join("0123.json");
        fs::write(&bad, b"{not json").unwrap();
        let r = s.store.recover();
        assert!(
            matches!(&r[..], [Recovery::Failed { marker, error: KubeconfigError::BadMarker { .. } }] if *marker == bad),
            "{r:?}"
        );
        assert!(bad.exists());
    }

    #[test]
    fn a_stale_marker_temp_is_removed_a_live_one_kept() {
        let s = setup();
        s.store.ensure_dir().unwrap();
        let stale = s.store.dir().join(".marker-abc.tmp");
        fs::write(&stale, b"{").unwrap();
        let live = s.store.dir().join(".marker-def.tmp");
        fs::write(&live, b"{").unwrap();
        let held = File::open(&live).unwrap();
        assert!(try_lock(&held, &live).unwrap());
        assert!(s.store.recover().is_empty());
        assert!(!stale.exists());
        assert!(live.exists());
    }

    #[test]
    fn default_dir_follows_xdg_then_home() {
        // Only checks the shape: the environment is the test process's.
        if let Some(d) = InPlaceStore::default_dir() {
            assert!(d.is_absolute());
            assert!(d.ends_with("bastion/kubeconfig-edits"));
        }
    }
}
