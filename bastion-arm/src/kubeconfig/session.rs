//! A private directory for one process's temporary files (the temporary kubeconfig of
//! `bastion aks`; the CLI also keeps an `.rdp` file or an ssh certificate in one), removed on
//! drop, and swept by a later process when the one that made it was killed before it could
//! remove it.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The lock file inside a session directory: locked (`flock`) for as long as its process lives.
const LOCK_NAME: &str = ".lock";

/// A 0700 temporary directory holding a `flock`ed `.lock` file for the life of this value
/// (and so of the process): removed with its content on drop, and by
/// [`SessionDir::sweep_stale`] after a `SIGKILL`.
#[derive(Debug)]
pub struct SessionDir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl SessionDir {
    /// Creates `{parent}/{prefix}XXXXXX` with mode 0700 and takes its lock. The lock file is
    /// locked before it is given its name, so a sweeper never sees a live directory unlocked.
    pub fn create_in(parent: &Path, prefix: &str) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)?;
        let tmp = tempfile::Builder::new()
            .prefix(".lock-")
            .tempfile_in(dir.path())?;
        flock(tmp.as_file(), FlockOperation::NonBlockingLockExclusive)?;
        let lock = tmp
            .persist(dir.path().join(LOCK_NAME))
            .map_err(|e| e.error)?;
        Ok(Self { dir, _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Removes every `{parent}/{prefix}*` directory whose lock is free (its process is gone),
    /// with what it holds. Directories without a lock file, not ours, or in use are left alone.
    /// Returns the directories removed.
    pub fn sweep_stale(parent: &Path, prefix: &str) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(parent) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(prefix) {
                continue;
            }
            let path = entry.path();
            // Not a symlink to somewhere else: a real directory.
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let Ok(lock) = File::open(path.join(LOCK_NAME)) else {
                continue;
            };
            if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok()
                && fs::remove_dir_all(&path).is_ok()
            {
                removed.push(path);
            }
            drop(lock);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;

    #[test]
    fn private_locked_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let session = SessionDir::create_in(parent.path(), "bastion-aks-").unwrap();
        let path = session.path().to_owned();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o700);
        assert!(path.join(LOCK_NAME).exists());
        // Live: not swept.
        assert!(SessionDir::sweep_stale(parent.path(), "bastion-aks-").is_empty());
        assert!(path.exists());
        drop(session);
        assert!(!path.exists());
    }

    #[test]
    fn a_dead_process_directory_is_swept_others_are_not() {
        let parent = tempfile::tempdir().unwrap();
        // A session whose process died: its lock released, its files left.
        let dead = SessionDir::create_in(parent.path(), "bastion-aks-").unwrap();
        let dead_path = dead.dir.path().to_owned();
        fs::write(dead_path.join("config"), "token: secret\n").unwrap();
        let SessionDir { dir, _lock } = dead;
        let _ = dir.keep();
        drop(_lock);
        // A live one, an unrelated directory with the prefix but no lock, another prefix.
        let live = SessionDir::create_in(parent.path(), "bastion-aks-").unwrap();
        let unlocked = parent.path().join("bastion-aks-nolock");
        fs::create_dir(&unlocked).unwrap();
        let other = SessionDir::create_in(parent.path(), "other-").unwrap();
        let SessionDir {
            dir: other_dir,
            _lock: other_lock,
        } = other;
        let other_path = other_dir.keep();
        drop(other_lock);

        let removed = SessionDir::sweep_stale(parent.path(), "bastion-aks-");
        assert_eq!(removed, vec![dead_path.clone()]);
        assert!(!dead_path.exists());
        assert!(live.path().exists());
        assert!(unlocked.exists());
        assert!(other_path.exists());
    }
}
