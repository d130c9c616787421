//! The kubeconfig `bastion aks` hands to kubectl, and what happens to the user's own.
//!
//! - By default: a private temporary file (0600, in a 0700 directory), removed on exit.
//! - `--kubeconfig-path FILE`: the same temporary file, listed first in `KUBECONFIG`, then FILE.
//!   kubectl merges the two: the tunnel's context is current and wins over entries of the same
//!   name, FILE's other contexts are there too. FILE is only read, never written.
//! - `--kubeconfig-path FILE --write-kubeconfig-in-place`: FILE itself gets the tunnel's
//!   entries merged in (for tools that ignore `KUBECONFIG`), crash-safely through
//!   [`InPlaceStore`]: backed up first, put back byte for byte on exit, or by the next run.
//! - `--kubeconfig-out FILE`: a file of its own, kept after exit.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use bastion_arm::{
    ClusterSelector, InPlaceEdit, InPlaceStore, Kubeconfig, KubeconfigError, Recovery,
    RestoreAction, Restored, RewriteRecord,
};
use serde_json::json;

use crate::cli::KubeAuth;
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code};
use crate::output::Output;

/// Where the kubeconfig goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A new file in the session's private temporary directory.
    Temporary(PathBuf),
    /// A new temporary file listed first in `KUBECONFIG`, then the user's file (read only).
    Layered {
        /// The temporary file.
        temp: PathBuf,
        /// The user's `--kubeconfig-path`.
        user: PathBuf,
    },
    /// The user's file itself, edited in place through the store, restored on exit.
    InPlace {
        /// The user's `--kubeconfig-path`.
        path: PathBuf,
        /// Where its backup and marker go.
        store: InPlaceStore,
    },
    /// A file kept after exit.
    Persist(PathBuf),
}

/// A written kubeconfig and how to undo it.
#[derive(Debug)]
pub struct KubeFile {
    /// The file whose current context is the tunnel's (for a built-in client).
    pub path: PathBuf,
    /// The value `KUBECONFIG` gets: `path`, or `path` then the user's file.
    pub env: OsString,
    destination: Destination,
    record: RewriteRecord,
    edit: Option<InPlaceEdit>,
}

/// Prepares the fetched credentials: the context (and its cluster) renamed to `context` if
/// given, then admin contexts renamed (as `az aks get-credentials --context` does), and, with
/// `aad`, an AAD cluster's kubelogin users set up for the credential in use (see
/// [`crate::commands::kube_token::configure_aad_users`]).
pub fn prepare(
    fetched: &str,
    admin: bool,
    context: Option<&str>,
    aad: Option<(&Context, KubeAuth)>,
    out: &Output,
) -> CliResult<Kubeconfig> {
    let mut kc = Kubeconfig::parse(fetched)?;
    if let Some(name) = context {
        kc.rename_context(name);
    }
    if admin {
        kc.rename_admin_contexts();
    }
    if let Some((ctx, kube_auth)) = aad {
        crate::commands::kube_token::configure_aad_users(ctx, kube_auth, &mut kc, out)?;
    }
    Ok(kc)
}

/// The user's kubeconfig at `path` parsed, `None` when it does not exist or is empty (kubectl
/// accepts both). Checked before any Azure call: kubectl would fail on a broken file anyway.
/// `flag` is the option that named the file, for the hints.
pub fn read_user_file(path: &Path, flag: &str) -> CliResult<Option<Kubeconfig>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CliError::usage(format!(
                "cannot read the kubeconfig {}: {e}",
                path.display()
            ))
            .hint(format!("check {flag} and the file's permissions")));
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    Kubeconfig::parse(&text).map(Some).map_err(|e| {
        CliError::usage(format!("{}: {e}", path.display()))
            .hint(format!("fix the file, or choose another {flag}"))
    })
}

/// The store of in-place edits, in the user's state directory.
pub fn store() -> CliResult<InPlaceStore> {
    InPlaceStore::default_dir()
        .map(InPlaceStore::new)
        .ok_or_else(|| {
            CliError::usage("no state directory for the kubeconfig backup")
                .hint("set HOME (or XDG_STATE_HOME) to an absolute path")
        })
}

fn in_place_error(e: KubeconfigError) -> CliError {
    match e {
        KubeconfigError::CannotEditInPlace { .. } => CliError::usage(e.to_string())
            .hint("drop --write-kubeconfig-in-place: with KUBECONFIG the file is never written"),
        KubeconfigError::EditInProgress { .. } => CliError::new(Code::Other, e.to_string())
            .hint("let that one finish, or drop --write-kubeconfig-in-place"),
        e => CliError::new(Code::Other, e.to_string())
            .hint("nothing was changed; check the file and its directory"),
    }
}

impl KubeFile {
    /// Writes `fetched` (pointed at `https://{host}:{port}/`, the tunnel's listening address:
    /// `localhost` unless `--bind` says otherwise) to `destination`.
    pub fn write(
        destination: Destination,
        fetched: Kubeconfig,
        host: &str,
        port: u16,
        out: &Output,
    ) -> CliResult<Self> {
        let cluster = fetched.resolve_cluster(ClusterSelector::CurrentContext)?;
        match &destination {
            Destination::Temporary(p) | Destination::Persist(p) => {
                let mut doc = fetched;
                let record =
                    doc.point_at_tunnel_on(ClusterSelector::Named(&cluster), host, port)?;
                doc.write(p)?;
                Ok(Self {
                    path: p.clone(),
                    env: p.clone().into_os_string(),
                    destination,
                    record,
                    edit: None,
                })
            }
            Destination::Layered { temp, user } => {
                let mut doc = fetched;
                let record =
                    doc.point_at_tunnel_on(ClusterSelector::Named(&cluster), host, port)?;
                let mut paths = vec![temp.clone()];
                match read_user_file(user, "--kubeconfig-path")? {
                    Some(theirs) => {
                        let shadowed = shadowed_names(&theirs, &doc);
                        if !shadowed.is_empty() {
                            out.info(format!(
                                "{} also has {}: the tunnel's entries of that name come first",
                                user.display(),
                                shadowed.join(", ")
                            ));
                        }
                        paths.push(user.clone());
                    }
                    None if user.exists() => paths.push(user.clone()),
                    None => out.info(format!(
                        "{} does not exist: KUBECONFIG has the tunnel's context alone",
                        user.display()
                    )),
                }
                let env = std::env::join_paths(&paths).map_err(|e| {
                    CliError::usage(format!(
                        "{} cannot be listed in KUBECONFIG: {e}",
                        user.display()
                    ))
                    .hint("use a kubeconfig path without ':'")
                })?;
                doc.write(temp)?;
                Ok(Self {
                    path: temp.clone(),
                    env,
                    destination,
                    record,
                    edit: None,
                })
            }
            Destination::InPlace { path, store } => {
                let mut record = None;
                let edit = store
                    .edit(path, |original| {
                        let text = original.map(String::from_utf8_lossy).unwrap_or_default();
                        let mut doc = if text.trim().is_empty() {
                            fetched
                        } else {
                            let mut base = Kubeconfig::parse(&text)?;
                            base.merge(&fetched);
                            base
                        };
                        record = Some(doc.point_at_tunnel_on(
                            ClusterSelector::Named(&cluster),
                            host,
                            port,
                        )?);
                        Ok(doc.to_yaml()?.into_bytes())
                    })
                    .map_err(in_place_error)?;
                let record = record.ok_or_else(|| {
                    CliError::new(Code::Other, "internal: the kubeconfig was not rewritten")
                })?;
                if edit.mode() & 0o077 != 0 {
                    out.warn(format!(
                        "{} keeps its mode {:04o} while edited: other users can read the cluster credentials in it until it is restored",
                        path.display(),
                        edit.mode()
                    ));
                }
                Ok(Self {
                    path: path.clone(),
                    env: path.clone().into_os_string(),
                    destination,
                    record,
                    edit: Some(edit),
                })
            }
        }
    }

    /// Whether this file is kept after exit.
    pub fn is_kept(&self) -> bool {
        matches!(self.destination, Destination::Persist(_))
    }

    /// What [`KubeFile::finish`] will do, for the cleanup line.
    pub fn cleanup_summary(&self) -> String {
        match &self.destination {
            Destination::Temporary(_) | Destination::Layered { .. } => {
                "kubeconfig removed".to_owned()
            }
            Destination::InPlace { path, .. } => format!("{} restored", path.display()),
            Destination::Persist(p) => format!("{} kept", p.display()),
        }
    }

    /// Undoes what [`KubeFile::write`] did: removes a temporary file, puts the user's file back
    /// byte for byte. Reports instead of failing.
    pub fn finish(mut self, out: &Output) {
        match &self.destination {
            Destination::Temporary(p) | Destination::Layered { temp: p, .. } => {
                if let Err(e) = std::fs::remove_file(p)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    out.warn(format!(
                        "could not remove the temporary kubeconfig {}: {e}",
                        p.display()
                    ));
                }
            }
            Destination::InPlace { path, .. } => {
                if let Some(edit) = self.edit.take() {
                    match edit.restore() {
                        Ok(restored) => report_restored(out, &restored, None),
                        Err(e) => out.warn(format!(
                            "could not restore {}: {e}; its backup is kept: run `bastion aks --restore-kubeconfig`",
                            path.display()
                        )),
                    }
                }
            }
            Destination::Persist(p) => out.info(format!(
                "Kept {} (it points at {}, which is closed now)",
                p.display(),
                self.record.tunnel_server
            )),
        }
    }
}

/// Cluster, context and user names of `tunnel` that `theirs` has too.
fn shadowed_names(theirs: &Kubeconfig, tunnel: &Kubeconfig) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, mine, other) in [
        ("cluster", tunnel.cluster_names(), theirs.cluster_names()),
        ("context", tunnel.context_names(), theirs.context_names()),
    ] {
        for name in mine.into_iter().filter(|n| other.contains(n)) {
            out.push(format!("{kind} '{name}'"));
        }
    }
    out
}

/// One line about a restored file. `pid`: the interrupted process it was restored for.
fn report_restored(out: &Output, r: &Restored, pid: Option<u32>) {
    let how = match r.action {
        RestoreAction::Rewritten => "put back byte for byte",
        RestoreAction::Removed => "removed (it did not exist before)",
        _ => "already as it was",
    };
    let text = match pid {
        Some(pid) => format!(
            "{}: {how}, after an interrupted bastion aks (pid {pid})",
            r.given.display()
        ),
        None => format!("{}: {how}", r.given.display()),
    };
    out.event(
        text,
        json!({"event": "kubeconfig_restored", "path": r.given.to_string_lossy(), "action": format!("{:?}", r.action), "pid": pid}),
    );
    if let Some(copy) = &r.changed_copy {
        out.warn(format!(
            "{} had been changed meanwhile; that version is saved as {}",
            r.given.display(),
            copy.display()
        ));
    }
}

/// What [`recover`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Files put back.
    pub restored: usize,
    /// Files edited in place by a `bastion aks` that is still running (path, pid): left alone.
    pub in_use: Vec<(PathBuf, u32)>,
    /// The first restore that failed.
    pub failure: Option<CliError>,
}

/// Restores every kubeconfig an interrupted `--write-kubeconfig-in-place` left edited (its
/// process is gone), each reported.
pub fn recover(out: &Output, store: &InPlaceStore) -> Recovered {
    let mut found = Recovered::default();
    for r in store.recover() {
        match r {
            Recovery::Restored(r) => {
                found.restored += 1;
                out.warn(format!(
                    "{} was left edited by a bastion aks that was killed (pid {})",
                    r.given.display(),
                    r.pid
                ));
                report_restored(out, &r, Some(r.pid));
            }
            Recovery::InUse { given, pid } => {
                tracing::info!(
                    "{} is edited in place by a running bastion aks (pid {pid})",
                    given.display()
                );
                found.in_use.push((given, pid));
            }
            Recovery::Failed { marker, error } => {
                let what = format!(
                    "could not restore the kubeconfig recorded in {}: {error}",
                    marker.display()
                );
                out.warn(&what);
                found.failure.get_or_insert_with(|| {
                    CliError::new(Code::Other, what).hint(
                        "restore the file from the backup beside that record (same name, .backup), then delete both",
                    )
                });
            }
            _ => {}
        }
    }
    found
}

/// `bastion aks --restore-kubeconfig`.
pub fn restore_only(out: &Output) -> CliResult<()> {
    let found = recover(out, &store()?);
    if let Some(e) = found.failure {
        return Err(e);
    }
    for (given, pid) in &found.in_use {
        out.warn(format!(
            "{} is edited in place by a running bastion aks (pid {pid}); it is put back when that one exits",
            given.display()
        ));
    }
    if found.restored == 0 && found.in_use.is_empty() {
        out.essential(
            "No kubeconfig left edited: nothing to restore",
            json!({"event": "kubeconfig_restored", "count": 0}),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bastion_arm::testing::{
        PRIVATE_CLUSTER_KUBECONFIG as FETCHED, USER_KUBECONFIG as EXISTING,
    };

    fn quiet() -> Output {
        Output::new(crate::cli::OutputFormat::Text, true)
    }

    #[test]
    fn temporary_file_points_at_the_tunnel_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let kc = prepare(FETCHED, false, None, None, &quiet()).unwrap();
        let file = KubeFile::write(
            Destination::Temporary(path.clone()),
            kc,
            "localhost",
            43157,
            &quiet(),
        )
        .unwrap();
        assert_eq!(file.env, path.as_os_str());
        let written = Kubeconfig::read(&path).unwrap();
        assert_eq!(written.server("myaks"), Some("https://localhost:43157/"));
        assert_eq!(
            written.tls_server_name("myaks"),
            Some("myaks.privatelink.eastus.azmk8s.io")
        );
        file.finish(&quiet());
        assert!(!path.exists());
    }

    #[test]
    fn user_file_is_listed_after_the_temporary_one_and_never_written() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("config");
        std::fs::write(&user, EXISTING).unwrap();
        let temp = dir.path().join("tmp-config");
        let kc = prepare(FETCHED, false, None, None, &quiet()).unwrap();
        let file = KubeFile::write(
            Destination::Layered {
                temp: temp.clone(),
                user: user.clone(),
            },
            kc,
            "localhost",
            5555,
            &quiet(),
        )
        .unwrap();
        assert_eq!(
            file.env,
            std::env::join_paths([&temp, &user]).unwrap(),
            "the tunnel's file first"
        );
        let during = Kubeconfig::read(&temp).unwrap();
        assert_eq!(during.server("myaks"), Some("https://localhost:5555/"));
        assert_eq!(during.current_context(), Some("myaks"));
        assert_eq!(std::fs::read_to_string(&user).unwrap(), EXISTING);
        file.finish(&quiet());
        assert!(!temp.exists());
        assert_eq!(std::fs::read_to_string(&user).unwrap(), EXISTING);
        // The user's stale `myaks` entry is named as shadowed.
        let theirs = Kubeconfig::parse(EXISTING).unwrap();
        let tunnel = Kubeconfig::parse(FETCHED).unwrap();
        assert_eq!(shadowed_names(&theirs, &tunnel), ["cluster 'myaks'"]);
    }

    #[test]
    fn a_missing_user_file_is_left_out_of_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("absent");
        let temp = dir.path().join("tmp-config");
        let kc = prepare(FETCHED, false, None, None, &quiet()).unwrap();
        let file = KubeFile::write(
            Destination::Layered {
                temp: temp.clone(),
                user: user.clone(),
            },
            kc,
            "localhost",
            5555,
            &quiet(),
        )
        .unwrap();
        assert_eq!(file.env, temp.as_os_str());
        file.finish(&quiet());
        assert!(!user.exists() && !temp.exists());
    }

    #[test]
    fn in_place_merges_then_puts_the_exact_bytes_back() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("config");
        std::fs::write(&user, EXISTING).unwrap();
        let store = InPlaceStore::new(dir.path().join("state"));
        let kc = prepare(FETCHED, false, None, None, &quiet()).unwrap();
        let file = KubeFile::write(
            Destination::InPlace {
                path: user.clone(),
                store: store.clone(),
            },
            kc,
            "localhost",
            5555,
            &quiet(),
        )
        .unwrap();
        assert_eq!(file.env, user.as_os_str());
        let during = Kubeconfig::read(&user).unwrap();
        assert_eq!(during.server("myaks"), Some("https://localhost:5555/"));
        assert_eq!(during.server("other"), Some("https://other.example:6443"));
        assert_eq!(during.current_context(), Some("myaks"));
        file.finish(&quiet());
        assert_eq!(std::fs::read_to_string(&user).unwrap(), EXISTING);
        assert_eq!(std::fs::read_dir(store.dir()).unwrap().count(), 0);
    }

    #[test]
    fn a_broken_user_file_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("config");
        std::fs::write(&user, "clusters: [\n").unwrap();
        let e = read_user_file(&user, "--kubeconfig-path").unwrap_err();
        assert_eq!(e.code, Code::Usage);
        std::fs::write(&user, "  \n").unwrap();
        assert!(
            read_user_file(&user, "--kubeconfig-path")
                .unwrap()
                .is_none()
        );
        assert!(
            read_user_file(&dir.path().join("absent"), "--kubeconfig-path")
                .unwrap()
                .is_none()
        );
    }
}
