//! The kubeconfig `bastion aks` hands to kubectl: a private temporary file (removed on exit),
//! the user's `--kubeconfig-path` (merged, edited in place, restored on exit), or
//! `--kubeconfig-out` (kept).

use std::path::PathBuf;

use bastion_arm::{ClusterSelector, Kubeconfig, RewriteRecord};

use crate::exit::CliResult;
use crate::output::Output;

/// Where the kubeconfig goes.
#[derive(Debug, Clone)]
pub enum Destination {
    /// A new file in the session's private temporary directory.
    Temporary(PathBuf),
    /// The user's file: merged into, edited in place, restored on exit.
    InPlace(PathBuf),
    /// A file kept after exit.
    Persist(PathBuf),
}

/// A written kubeconfig and how to undo it.
#[derive(Debug)]
pub struct KubeFile {
    /// The file `KUBECONFIG` points at.
    pub path: PathBuf,
    destination: Destination,
    record: RewriteRecord,
}

/// Prepares the fetched credentials: admin contexts renamed, devicecode logins converted to
/// `--login azurecli` (what `kubelogin convert-kubeconfig -l azurecli` does).
pub fn prepare(fetched: &str, admin: bool, out: &Output) -> CliResult<Kubeconfig> {
    let mut kc = Kubeconfig::parse(fetched)?;
    if admin {
        kc.rename_admin_contexts();
    }
    if kc.uses_devicecode() {
        let users = kc.convert_devicecode_to_azurecli();
        out.info(format!(
            "Converted {} to kubelogin --login azurecli",
            users.join(", ")
        ));
    }
    Ok(kc)
}

impl KubeFile {
    /// Writes `fetched` (pointed at `https://localhost:{port}/`) to `destination`.
    pub fn write(destination: Destination, fetched: Kubeconfig, port: u16) -> CliResult<Self> {
        let cluster = fetched.resolve_cluster(ClusterSelector::CurrentContext)?;
        let (path, mut doc) = match &destination {
            Destination::Temporary(p) | Destination::Persist(p) => (p.clone(), fetched),
            Destination::InPlace(p) => (p.clone(), fetched.merged_into_file(p)?),
        };
        let record = doc.point_at_tunnel(ClusterSelector::Named(&cluster), port)?;
        doc.write(&path)?;
        Ok(Self {
            path,
            destination,
            record,
        })
    }

    /// Whether this file is removed or restored on exit.
    pub fn is_kept(&self) -> bool {
        matches!(self.destination, Destination::Persist(_))
    }

    /// Undoes what [`KubeFile::write`] did: removes a temporary file, restores `server` and
    /// `tls-server-name` in the user's file. Reports instead of failing.
    pub fn finish(self, out: &Output) {
        match &self.destination {
            Destination::Temporary(p) => {
                if let Err(e) = std::fs::remove_file(p)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    out.warn(format!(
                        "could not remove the temporary kubeconfig {}: {e}",
                        p.display()
                    ));
                }
            }
            Destination::InPlace(p) => match Kubeconfig::restore_file(p, &self.record) {
                Ok(true) => out.info(format!(
                    "Restored the server of cluster '{}' in {}",
                    self.record.cluster,
                    p.display()
                )),
                Ok(false) => out.warn(format!(
                    "{} was changed meanwhile; cluster '{}' was left as it is",
                    p.display(),
                    self.record.cluster
                )),
                Err(e) => out.warn(format!("could not restore {}: {e}", p.display())),
            },
            Destination::Persist(p) => out.info(format!(
                "Kept {} (it points at {}, which is closed now)",
                p.display(),
                self.record.tunnel_server
            )),
        }
    }
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
        let kc = prepare(FETCHED, false, &quiet()).unwrap();
        let file = KubeFile::write(Destination::Temporary(path.clone()), kc, 43157).unwrap();
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
    fn user_file_is_merged_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, EXISTING).unwrap();
        let kc = prepare(FETCHED, false, &quiet()).unwrap();
        let file = KubeFile::write(Destination::InPlace(path.clone()), kc, 5555).unwrap();
        let during = Kubeconfig::read(&path).unwrap();
        assert_eq!(during.server("myaks"), Some("https://localhost:5555/"));
        assert_eq!(during.server("other"), Some("https://other.example:6443"));
        assert_eq!(during.current_context(), Some("myaks"));
        file.finish(&quiet());
        let after = Kubeconfig::read(&path).unwrap();
        assert_eq!(
            after.server("myaks"),
            Some("https://myaks.privatelink.eastus.azmk8s.io:443")
        );
        assert_eq!(after.server("other"), Some("https://other.example:6443"));
    }
}
