//! The kubeconfig rewrite for a tunnel (see docs/arm-and-aks.md#kubeconfig-rewrite), merging
//! into a user's file, and the API server access a client of its own needs.
//!
//! The document is edited as a YAML value tree, never as text: CA data, users, exec plugins and
//! every field this module does not know survive a round trip (comments do not).
//! `insecure-skip-tls-verify` is never set: the API server's certificate is checked against its
//! real name through `tls-server-name`.

mod access;
mod exec;
#[cfg(unix)]
mod inplace;
mod merge;
#[cfg(unix)]
mod session;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use yaml_serde::{Mapping, Value};

pub use access::{ApiServerAccess, ClientCertificate, UserCredentials};
pub use exec::{AKS_AAD_SCOPE, AKS_AAD_SERVER_ID, EXEC_API_VERSION, ExecPlugin, KubeloginLogin};
#[cfg(unix)]
pub use inplace::{InPlaceEdit, InPlaceStore, Recovery, RestoreAction, Restored};
#[cfg(unix)]
pub use session::SessionDir;

/// A kubeconfig problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeconfigError {
    /// Not YAML, or not a mapping at the top.
    #[error("the kubeconfig is not valid YAML: {0}")]
    Parse(String),
    /// The document is not a kubeconfig (top level is not a mapping).
    #[error(
        "the kubeconfig is not a YAML mapping (expected apiVersion, clusters, contexts, users)"
    )]
    NotAMapping,
    /// No `current-context` to follow.
    #[error("the kubeconfig has no current-context; name the cluster to rewrite explicitly")]
    NoCurrentContext,
    /// `current-context` names a context that is not in `contexts`.
    #[error("the kubeconfig's current-context '{0}' is not in its contexts")]
    ContextNotFound(String),
    /// The context has no `cluster`.
    #[error("the kubeconfig context '{0}' names no cluster")]
    ContextWithoutCluster(String),
    /// The context has no `user`.
    #[error("the kubeconfig context '{0}' names no user")]
    ContextWithoutUser(String),
    /// The user is not in `users`.
    #[error("user '{0}' is not in the kubeconfig")]
    UserNotFound(String),
    /// A `*-data` field is not what it should be (standard base64 of PEM).
    #[error("the kubeconfig's {field} of '{entry}' is unusable: {reason}")]
    InvalidData {
        /// The cluster or user name.
        entry: String,
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The cluster is not in `clusters`.
    #[error("cluster '{name}' is not in the kubeconfig (clusters: {available})")]
    ClusterNotFound {
        /// The name looked for.
        name: String,
        /// The names present.
        available: String,
    },
    /// The cluster entry has no `server`.
    #[error("cluster '{0}' in the kubeconfig has no server")]
    NoServer(String),
    /// The server is not an https URL with a host.
    #[error(
        "cluster '{cluster}' has server {server:?}, which is not an https URL with a host name"
    )]
    InvalidServer {
        /// Cluster name.
        cluster: String,
        /// The server value.
        server: String,
    },
    /// Serialising failed.
    #[error("the kubeconfig could not be serialised: {0}")]
    Serialize(String),
    /// The file cannot be edited in place safely (see [`InPlaceStore::edit`]).
    #[error("{path} cannot be edited in place: {reason}")]
    CannotEditInPlace {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another process that is still running is editing this file in place.
    #[error("{path} is being edited in place by another running bastion (pid {pid})")]
    EditInProgress {
        /// The file.
        path: PathBuf,
        /// That process.
        pid: u32,
    },
    /// The record of an in-place edit cannot be read.
    #[error("the in-place edit record {path} is unreadable: {reason}")]
    BadMarker {
        /// The record.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or writing the file failed.
    #[error("kubeconfig file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Which cluster entry to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterSelector<'a> {
    /// The cluster the `current-context` points at (generated files).
    CurrentContext,
    /// The entry with exactly this `clusters[].name` (user-supplied files).
    Named(&'a str),
}

/// What a rewrite changed, so it can be undone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteRecord {
    /// The rewritten `clusters[].name`.
    pub cluster: String,
    /// The `server` before the rewrite.
    pub original_server: String,
    /// The `tls-server-name` before the rewrite (`None`: absent).
    pub original_tls_server_name: Option<String>,
    /// The `server` written: `https://localhost:{port}/`, or the address the tunnel listens on.
    pub tunnel_server: String,
    /// The `tls-server-name` written.
    pub tls_server_name: String,
    /// The `tls-server-name` entry exactly as it was (it may be present and not a string, e.g.
    /// `null`), so that `restore` gives back the document as it was.
    original_tls_entry: Option<Value>,
}

/// A parsed kubeconfig. Its `Debug` shows only the names of its entries, never their
/// content (tokens, keys, certificates).
#[derive(Clone, PartialEq)]
pub struct Kubeconfig {
    doc: Value,
}

impl std::fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<&str> = seq(&self.doc, "users").filter_map(name_of).collect();
        f.debug_struct("Kubeconfig")
            .field("current_context", &self.current_context())
            .field("clusters", &self.cluster_names())
            .field("contexts", &self.context_names())
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

fn key(k: &str) -> Value {
    Value::String(k.to_owned())
}

fn seq<'a>(doc: &'a Value, k: &str) -> impl Iterator<Item = &'a Value> {
    doc.get(k)
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
}

fn name_of(entry: &Value) -> Option<&str> {
    entry.get("name").and_then(Value::as_str)
}

/// The host of an https server URL, without port or IPv6 brackets.
fn server_host(server: &str) -> Option<String> {
    let url = url::Url::parse(server.trim()).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then(|| host.to_owned())
}

/// `https://localhost:{port}/`.
fn tunnel_server_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("https://[{host}]:{port}/")
    } else {
        format!("https://{host}:{port}/")
    }
}

impl Kubeconfig {
    /// Parses kubeconfig YAML.
    pub fn parse(text: &str) -> Result<Self, KubeconfigError> {
        let doc: Value =
            yaml_serde::from_str(text).map_err(|e| KubeconfigError::Parse(e.to_string()))?;
        if !doc.is_mapping() {
            return Err(KubeconfigError::NotAMapping);
        }
        if let Some(what) = unwritable(&doc) {
            return Err(KubeconfigError::Parse(format!(
                "it uses {what}, which a kubeconfig never needs"
            )));
        }
        Ok(Self { doc })
    }

    /// Reads and parses a kubeconfig file.
    pub fn read(path: &Path) -> Result<Self, KubeconfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Serialises back to YAML.
    pub fn to_yaml(&self) -> Result<String, KubeconfigError> {
        yaml_serde::to_string(&self.doc).map_err(|e| KubeconfigError::Serialize(e.to_string()))
    }

    /// The YAML value tree.
    pub fn as_value(&self) -> &Value {
        &self.doc
    }

    /// `current-context`, if set and non-empty.
    pub fn current_context(&self) -> Option<&str> {
        self.doc
            .get("current-context")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The `clusters[].name` values.
    pub fn cluster_names(&self) -> Vec<&str> {
        seq(&self.doc, "clusters").filter_map(name_of).collect()
    }

    /// The `contexts[].name` values.
    pub fn context_names(&self) -> Vec<&str> {
        seq(&self.doc, "contexts").filter_map(name_of).collect()
    }

    fn context(&self, name: &str) -> Option<&Value> {
        seq(&self.doc, "contexts")
            .find(|c| name_of(c) == Some(name))
            .and_then(|c| c.get("context"))
    }

    /// The cluster name `selector` designates (checked to exist).
    pub fn resolve_cluster(
        &self,
        selector: ClusterSelector<'_>,
    ) -> Result<String, KubeconfigError> {
        let name = match selector {
            ClusterSelector::Named(n) => n.to_owned(),
            ClusterSelector::CurrentContext => {
                let ctx_name = self
                    .current_context()
                    .ok_or(KubeconfigError::NoCurrentContext)?;
                let ctx = self
                    .context(ctx_name)
                    .ok_or_else(|| KubeconfigError::ContextNotFound(ctx_name.to_owned()))?;
                ctx.get("cluster")
                    .and_then(Value::as_str)
                    .ok_or_else(|| KubeconfigError::ContextWithoutCluster(ctx_name.to_owned()))?
                    .to_owned()
            }
        };
        if self.cluster_entry(&name).is_none() {
            return Err(KubeconfigError::ClusterNotFound {
                available: self.cluster_names().join(", "),
                name,
            });
        }
        Ok(name)
    }

    fn cluster_entry(&self, name: &str) -> Option<&Mapping> {
        seq(&self.doc, "clusters")
            .find(|c| name_of(c) == Some(name))
            .and_then(|c| c.get("cluster"))
            .and_then(Value::as_mapping)
    }

    fn cluster_entry_mut(&mut self, name: &str) -> Option<&mut Mapping> {
        self.doc
            .get_mut("clusters")
            .and_then(Value::as_sequence_mut)?
            .iter_mut()
            .find(|c| name_of(c) == Some(name))
            .and_then(|c| c.get_mut("cluster"))
            .and_then(Value::as_mapping_mut)
    }

    /// `server` of the named cluster.
    pub fn server(&self, cluster: &str) -> Option<&str> {
        self.cluster_entry(cluster)?
            .get("server")
            .and_then(Value::as_str)
    }

    /// `tls-server-name` of the named cluster.
    pub fn tls_server_name(&self, cluster: &str) -> Option<&str> {
        self.cluster_entry(cluster)?
            .get("tls-server-name")
            .and_then(Value::as_str)
    }

    /// Points the selected cluster at the local tunnel: `server: https://localhost:{port}/` and
    /// `tls-server-name` = the original server's host (an existing `tls-server-name` is kept, as
    /// it is what the certificate was already checked against). Everything else is untouched.
    pub fn point_at_tunnel(
        &mut self,
        selector: ClusterSelector<'_>,
        port: u16,
    ) -> Result<RewriteRecord, KubeconfigError> {
        self.point_at_tunnel_on(selector, "localhost", port)
    }

    /// [`Kubeconfig::point_at_tunnel`] for a tunnel listening on another address than
    /// `localhost`: `server: https://{listen_host}:{port}/` (an IPv6 address gets its brackets).
    pub fn point_at_tunnel_on(
        &mut self,
        selector: ClusterSelector<'_>,
        listen_host: &str,
        port: u16,
    ) -> Result<RewriteRecord, KubeconfigError> {
        let cluster = self.resolve_cluster(selector)?;
        let original_server = self
            .server(&cluster)
            .ok_or_else(|| KubeconfigError::NoServer(cluster.clone()))?
            .to_owned();
        let original_tls_server_name = self.tls_server_name(&cluster).map(str::to_owned);
        let host = server_host(&original_server).ok_or_else(|| KubeconfigError::InvalidServer {
            cluster: cluster.clone(),
            server: original_server.clone(),
        })?;
        let tls_server_name = original_tls_server_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or(host);
        let tunnel_server = tunnel_server_url(listen_host, port);
        let entry = self
            .cluster_entry_mut(&cluster)
            .ok_or_else(|| KubeconfigError::NoServer(cluster.clone()))?;
        let original_tls_entry = entry.get("tls-server-name").cloned();
        entry.insert(key("server"), Value::String(tunnel_server.clone()));
        entry.insert(
            key("tls-server-name"),
            Value::String(tls_server_name.clone()),
        );
        Ok(RewriteRecord {
            cluster,
            original_server,
            original_tls_server_name,
            tunnel_server,
            tls_server_name,
            original_tls_entry,
        })
    }

    /// Undoes [`Kubeconfig::point_at_tunnel`] on a (re-read) document: puts back the original
    /// `server` and `tls-server-name`. Returns `false` and changes nothing when the cluster is
    /// gone or its server is no longer the tunnel URL (the user changed it meanwhile).
    pub fn restore(&mut self, record: &RewriteRecord) -> bool {
        if self.server(&record.cluster) != Some(record.tunnel_server.as_str()) {
            return false;
        }
        let Some(entry) = self.cluster_entry_mut(&record.cluster) else {
            return false;
        };
        entry.insert(key("server"), Value::String(record.original_server.clone()));
        // The entry as it was, even when it was not a string (found by the
        // `kubeconfig_round_trip` fuzz target: a `tls-server-name: null` came back removed).
        match &record.original_tls_entry {
            Some(value) => {
                entry.insert(key("tls-server-name"), value.clone());
            }
            None => {
                entry.shift_remove("tls-server-name");
            }
        }
        true
    }

    /// Renames admin contexts as `az aks get-credentials --admin` does: a context whose user
    /// starts with `clusterAdmin` becomes `<name>-admin`, and `current-context` follows it.
    /// Returns the new names.
    pub fn rename_admin_contexts(&mut self) -> Vec<String> {
        let current = self.current_context().map(str::to_owned);
        let mut renamed = Vec::new();
        let mut new_current = None;
        if let Some(contexts) = self
            .doc
            .get_mut("contexts")
            .and_then(Value::as_sequence_mut)
        {
            for ctx in contexts.iter_mut() {
                let is_admin = ctx
                    .get("context")
                    .and_then(|c| c.get("user"))
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.starts_with("clusterAdmin"));
                let Some(name) = name_of(ctx).map(str::to_owned) else {
                    continue;
                };
                if !is_admin || name.ends_with("-admin") {
                    continue;
                }
                let new_name = format!("{name}-admin");
                if let Some(m) = ctx.as_mapping_mut() {
                    m.insert(key("name"), Value::String(new_name.clone()));
                }
                if current.as_deref() == Some(name.as_str()) {
                    new_current = Some(new_name.clone());
                }
                renamed.push(new_name);
            }
        }
        if let (Some(new_current), Some(m)) = (new_current, self.doc.as_mapping_mut()) {
            m.insert(key("current-context"), Value::String(new_current));
        }
        renamed
    }

    /// Whether any user execs kubelogin with `--login devicecode`.
    pub fn uses_devicecode(&self) -> bool {
        seq(&self.doc, "users").any(|u| {
            u.get("user").and_then(|u| u.get("exec")).is_some_and(|e| {
                is_kubelogin(e) && login_mode(&exec_args(e)).as_deref() == Some("devicecode")
            })
        })
    }

    /// Converts kubelogin exec users from `--login devicecode` to `--login azurecli` (what
    /// `kubelogin convert-kubeconfig -l azurecli` does): the mode is replaced and `--client-id`
    /// (unused by azurecli) removed; other arguments are kept. Returns the converted user names.
    pub fn convert_devicecode_to_azurecli(&mut self) -> Vec<String> {
        let mut converted = Vec::new();
        let Some(users) = self.doc.get_mut("users").and_then(Value::as_sequence_mut) else {
            return converted;
        };
        for user in users.iter_mut() {
            let name = name_of(user).unwrap_or_default().to_owned();
            let Some(exec) = user
                .get_mut("user")
                .and_then(|u| u.get_mut("exec"))
                .and_then(Value::as_mapping_mut)
            else {
                continue;
            };
            let exec_value = Value::Mapping(exec.clone());
            if !is_kubelogin(&exec_value) {
                continue;
            }
            let args = exec_args(&exec_value);
            if login_mode(&args).as_deref() != Some("devicecode") {
                continue;
            }
            let new_args = rewrite_args_for_azurecli(&args);
            exec.insert(
                key("args"),
                Value::Sequence(new_args.into_iter().map(Value::String).collect()),
            );
            converted.push(name);
        }
        converted
    }
}

fn is_kubelogin(exec: &Value) -> bool {
    exec.get("command")
        .and_then(Value::as_str)
        .is_some_and(|c| {
            let base = c
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or(c)
                .to_ascii_lowercase();
            base == "kubelogin" || base == "kubelogin.exe"
        })
}

fn exec_args(exec: &Value) -> Vec<String> {
    exec.get("args")
        .and_then(Value::as_sequence)
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => yaml_serde::to_string(other)
                        .map(|s| s.trim_end().to_owned())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The value of `--login`/`-l` (`--login X`, `--login=X`, `-l X`, `-l=X`), lowercased.
fn login_mode(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--login" || a == "-l" {
            return it.next().map(|v| v.to_ascii_lowercase());
        }
        if let Some(v) = a.strip_prefix("--login=").or_else(|| a.strip_prefix("-l=")) {
            return Some(v.to_ascii_lowercase());
        }
    }
    None
}

fn rewrite_args_for_azurecli(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--login" || a == "-l" {
            out.push(a.clone());
            out.push("azurecli".to_owned());
            i += 2;
        } else if a.starts_with("--login=") {
            out.push("--login=azurecli".to_owned());
            i += 1;
        } else if a.starts_with("-l=") {
            out.push("-l=azurecli".to_owned());
            i += 1;
        } else if a == "--client-id" {
            i += 2;
        } else if a.starts_with("--client-id=") {
            i += 1;
        } else {
            out.push(a.clone());
            i += 1;
        }
    }
    out
}

/// Writes `yaml` to `path` atomically with mode 0600: a temporary file in the same directory,
/// flushed and synced, then renamed over `path`. A reader sees the old file or the new one,
/// never a half-written one.
fn write_atomic(path: &Path, yaml: &str) -> Result<(), KubeconfigError> {
    write_atomic_with_mode(path, yaml, 0o600)
}

/// [`write_atomic`] with the file mode `mode` (Unix; ignored elsewhere).
fn write_atomic_with_mode(path: &Path, yaml: &str, mode: u32) -> Result<(), KubeconfigError> {
    let io = |source| KubeconfigError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".kubeconfig-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(yaml.as_bytes()).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

impl Kubeconfig {
    /// Serialises and writes to `path` atomically with mode 0600: a reader sees the old file or
    /// the new one, never a half-written one.
    pub fn write(&self, path: &Path) -> Result<(), KubeconfigError> {
        write_atomic(path, &self.to_yaml()?)
    }

    /// Writes over a user's kubeconfig as [`Kubeconfig::write`] does, but through symlinks (the
    /// file a link points at is replaced, the link stays) and keeping the existing file's mode
    /// (a new file gets 0600). Returns the path written.
    pub fn write_over(&self, path: &Path) -> Result<PathBuf, KubeconfigError> {
        let target = follow_links(path).map_err(|source| KubeconfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mode = existing_mode(&target).unwrap_or(0o600);
        write_atomic_with_mode(&target, &self.to_yaml()?, mode)?;
        Ok(target)
    }
}

/// `path` with every symlink in its last component followed (a dangling link yields the path
/// it points at, so that the file is created there).
fn follow_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_owned();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// The permission bits of an existing file.
#[cfg(unix)]
fn existing_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn existing_mode(_path: &Path) -> Option<u32> {
    None
}

/// What in `value`, if anything, kubeconfigs never use and the YAML writer cannot write back:
/// a tag (`!` alone parses but cannot be serialised) or a key that is a mapping or a list
/// (`? {a: b}`). Found by the `kubeconfig_round_trip` fuzz target; either would make an
/// in-place edit fail after the file was read.
fn unwritable(value: &Value) -> Option<&'static str> {
    match value {
        Value::Tagged(_) => Some("a YAML tag (`!…`)"),
        Value::Sequence(items) => items.iter().find_map(unwritable),
        Value::Mapping(map) => map.iter().find_map(|(k, v)| {
            if matches!(k, Value::Mapping(_) | Value::Sequence(_)) {
                return Some("a mapping or a list as a key");
            }
            unwritable(k).or_else(|| unwritable(v))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE_HOST: &str =
        "myaks-dns-aae7e0f0.5cef6058-b6b5-414d-8cb1-4bd14eb0b15c.privatelink.eastus.azmk8s.io";

    fn user_devicecode() -> String {
        format!(
            r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJU
    server: https://{PRIVATE_HOST}:443
    x-unknown-cluster-field: keep-me
  name: myaks
contexts:
- context:
    cluster: myaks
    user: clusterUser_aks-rg_myaks
  name: myaks
current-context: myaks
kind: Config
preferences: {{}}
users:
- name: clusterUser_aks-rg_myaks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - get-token
      - --environment
      - AzurePublicCloud
      - --server-id
      - 6dae42f8-4368-4678-94ff-3960e28e3630
      - --client-id
      - 80faf920-1908-4b52-b5ef-a8e7bedfc67a
      - --tenant-id
      - 33333333-3333-3333-3333-333333333333
      - --login
      - devicecode
      command: kubelogin
      env: null
      installHint: install kubelogin
      provideClusterInfo: false
x-top-level-extension:
  nested: [1, 2, 3]
"#
        )
    }

    const ADMIN: &str = r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJU
    server: https://myaks-dns-ee788a1f.hcp.eastus.azmk8s.io:443
  name: myaks
contexts:
- context:
    cluster: myaks
    user: clusterAdmin_aks-rg_myaks
  name: myaks
current-context: myaks
kind: Config
preferences: {}
users:
- name: clusterAdmin_aks-rg_myaks
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
    token: 0123456789abcdef
"#;

    const TOKEN_TWO_CLUSTERS: &str = r#"apiVersion: v1
clusters:
- cluster:
    server: https://other.example.com
  name: other
- cluster:
    certificate-authority-data: Q0E=
    server: https://myaks-dns-ee788a1f.hcp.eastus.azmk8s.io:443
  name: myaks
contexts:
- context: {cluster: other, user: u1}
  name: other-ctx
- context: {cluster: myaks, user: u2}
  name: aks-ctx
current-context: aks-ctx
kind: Config
users:
- name: u1
  user: {token: abc}
- name: u2
  user: {token: def}
"#;

    fn cluster_field<'a>(k: &'a Kubeconfig, name: &str, field: &str) -> Option<&'a Value> {
        k.cluster_entry(name).and_then(|m| m.get(field))
    }

    #[test]
    fn restore_puts_back_a_tls_server_name_that_was_not_a_string() {
        // What the fuzzer found: `tls-server-name: null` came back removed.
        let text = "clusters:\n- cluster: {server: 'https://a.example:6443', tls-server-name: null}\n  name: a\n";
        let original = Kubeconfig::parse(text).unwrap();
        let mut k = original.clone();
        let record = k
            .point_at_tunnel(ClusterSelector::Named("a"), 8443)
            .unwrap();
        assert_eq!(k.tls_server_name("a"), Some("a.example"));
        let mut reread = Kubeconfig::parse(&k.to_yaml().unwrap()).unwrap();
        assert!(reread.restore(&record));
        assert!(reread == original, "{}", reread.to_yaml().unwrap());
    }

    #[test]
    fn a_document_the_yaml_writer_cannot_write_back_is_refused() {
        // What the fuzzer found: parsed, then `to_yaml` failed on the bare `!` tag.
        let err = Kubeconfig::parse("r:\n ! r:\n    cl  clusters&d&d").unwrap_err();
        assert!(err.to_string().contains("YAML tag"), "{err}");
        let err = Kubeconfig::parse("clusters: !custom\n- name: a\n").unwrap_err();
        assert!(err.to_string().contains("YAML tag"), "{err}");
        // A mapping as a key: parsed, then not writable either.
        let err = Kubeconfig::parse("?\n    certificate-authority-data: Q0E2\n: htt").unwrap_err();
        assert!(err.to_string().contains("as a key"), "{err}");
        // Without them the same shapes parse, and are written back.
        let plain = Kubeconfig::parse("r:\n r:\n    cl  clusters&d&d").unwrap();
        assert!(plain.to_yaml().is_ok());
    }

    #[test]
    fn a_tunnel_on_another_address_is_named_by_it_and_restored() {
        for (host, server) in [
            ("127.0.0.2", "https://127.0.0.2:8443/"),
            ("::1", "https://[::1]:8443/"),
            ("[::1]", "https://[::1]:8443/"),
        ] {
            let mut k = Kubeconfig::parse(&user_devicecode()).unwrap();
            let before = k.clone();
            let rec = k
                .point_at_tunnel_on(ClusterSelector::CurrentContext, host, 8443)
                .unwrap();
            assert_eq!(k.server("myaks"), Some(server));
            assert_eq!(rec.tunnel_server, server);
            // The certificate is still checked against the cluster's name.
            assert_eq!(k.tls_server_name("myaks"), Some(PRIVATE_HOST));
            assert!(k.restore(&rec));
            assert_eq!(k, before, "{host}");
        }
    }

    #[test]
    fn rewrite_current_context_cluster_keeps_everything_else() {
        let mut k = Kubeconfig::parse(&user_devicecode()).unwrap();
        let before = k.clone();
        let rec = k
            .point_at_tunnel(ClusterSelector::CurrentContext, 43157)
            .unwrap();
        assert_eq!(rec.cluster, "myaks");
        assert_eq!(rec.original_server, format!("https://{PRIVATE_HOST}:443"));
        assert_eq!(k.server("myaks"), Some("https://localhost:43157/"));
        assert_eq!(k.tls_server_name("myaks"), Some(PRIVATE_HOST));
        assert_eq!(
            cluster_field(&k, "myaks", "certificate-authority-data").and_then(Value::as_str),
            Some("LS0tLS1CRUdJTiBDRVJU")
        );
        assert!(cluster_field(&k, "myaks", "insecure-skip-tls-verify").is_none());
        let yaml = k.to_yaml().unwrap();
        assert!(yaml.contains("x-unknown-cluster-field: keep-me"));
        assert!(yaml.contains("x-top-level-extension"));
        assert!(yaml.contains("installHint: install kubelogin"));
        assert!(!yaml.contains("insecure-skip-tls-verify"));
        // Round trip through text, then restore: identical to the original tree.
        let mut reread = Kubeconfig::parse(&yaml).unwrap();
        assert!(reread.restore(&rec));
        assert_eq!(reread, before);
    }

    #[test]
    fn rewrite_named_cluster_only() {
        let mut k = Kubeconfig::parse(TOKEN_TWO_CLUSTERS).unwrap();
        let rec = k
            .point_at_tunnel(ClusterSelector::Named("myaks"), 8443)
            .unwrap();
        assert_eq!(
            rec.tls_server_name,
            "myaks-dns-ee788a1f.hcp.eastus.azmk8s.io"
        );
        assert_eq!(k.server("other"), Some("https://other.example.com"));
        assert_eq!(k.server("myaks"), Some("https://localhost:8443/"));
        // Current context resolves through contexts to the same cluster.
        assert_eq!(
            k.resolve_cluster(ClusterSelector::CurrentContext).unwrap(),
            "myaks"
        );
        let e = k
            .point_at_tunnel(ClusterSelector::Named("nope"), 1)
            .unwrap_err();
        assert!(e.to_string().contains("clusters: other, myaks"), "{e}");
    }

    #[test]
    fn existing_tls_server_name_is_kept_and_restored() {
        let text = TOKEN_TWO_CLUSTERS.replace(
            "    server: https://other.example.com\n",
            "    server: https://10.0.0.4:6443\n    tls-server-name: api.internal\n",
        );
        let mut k = Kubeconfig::parse(&text).unwrap();
        let before = k.clone();
        let rec = k
            .point_at_tunnel(ClusterSelector::Named("other"), 9000)
            .unwrap();
        assert_eq!(k.tls_server_name("other"), Some("api.internal"));
        assert!(k.restore(&rec));
        assert_eq!(k, before);
    }

    #[test]
    fn restore_leaves_user_changes_alone() {
        let mut k = Kubeconfig::parse(ADMIN).unwrap();
        let rec = k
            .point_at_tunnel(ClusterSelector::CurrentContext, 5000)
            .unwrap();
        let mut changed = Kubeconfig::parse(
            &k.to_yaml()
                .unwrap()
                .replace("https://localhost:5000/", "https://elsewhere:1/"),
        )
        .unwrap();
        assert!(!changed.restore(&rec));
        assert_eq!(changed.server("myaks"), Some("https://elsewhere:1/"));
    }

    #[test]
    fn context_errors() {
        let no_ctx = ADMIN.replace("current-context: myaks\n", "");
        let k = Kubeconfig::parse(&no_ctx).unwrap();
        assert!(matches!(
            k.resolve_cluster(ClusterSelector::CurrentContext),
            Err(KubeconfigError::NoCurrentContext)
        ));
        let bad_ctx = ADMIN.replace("current-context: myaks", "current-context: ghost");
        let k = Kubeconfig::parse(&bad_ctx).unwrap();
        assert!(matches!(
            k.resolve_cluster(ClusterSelector::CurrentContext),
            Err(KubeconfigError::ContextNotFound(c)) if c == "ghost"
        ));
        let http = ADMIN.replace("https://myaks", "http://myaks");
        let mut k = Kubeconfig::parse(&http).unwrap();
        assert!(matches!(
            k.point_at_tunnel(ClusterSelector::CurrentContext, 1),
            Err(KubeconfigError::InvalidServer { .. })
        ));
        assert!(matches!(
            Kubeconfig::parse("- a\n- b\n"),
            Err(KubeconfigError::NotAMapping)
        ));
        assert!(matches!(
            Kubeconfig::parse("a: [\n"),
            Err(KubeconfigError::Parse(_))
        ));
    }

    #[test]
    fn admin_contexts_renamed_like_az() {
        let mut k = Kubeconfig::parse(ADMIN).unwrap();
        assert_eq!(k.rename_admin_contexts(), vec!["myaks-admin".to_owned()]);
        assert_eq!(k.current_context(), Some("myaks-admin"));
        assert_eq!(k.context_names(), vec!["myaks-admin"]);
        // The cluster name is unchanged, so the rewrite still resolves.
        let rec = k
            .point_at_tunnel(ClusterSelector::CurrentContext, 6443)
            .unwrap();
        assert_eq!(rec.cluster, "myaks");
        let yaml = k.to_yaml().unwrap();
        assert!(yaml.contains("client-certificate-data: Q0VSVA=="));
        assert!(yaml.contains("client-key-data: S0VZ"));
        // Idempotent; user contexts untouched.
        assert!(k.rename_admin_contexts().is_empty());
        let mut user = Kubeconfig::parse(TOKEN_TWO_CLUSTERS).unwrap();
        assert!(user.rename_admin_contexts().is_empty());
        assert_eq!(user.current_context(), Some("aks-ctx"));
    }

    #[test]
    fn devicecode_converted_to_azurecli() {
        let mut k = Kubeconfig::parse(&user_devicecode()).unwrap();
        assert!(k.uses_devicecode());
        assert_eq!(
            k.convert_devicecode_to_azurecli(),
            vec!["clusterUser_aks-rg_myaks"]
        );
        assert!(!k.uses_devicecode());
        let exec = &k.as_value()["users"][0]["user"]["exec"];
        let args: Vec<&str> = exec["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "get-token",
                "--environment",
                "AzurePublicCloud",
                "--server-id",
                "6dae42f8-4368-4678-94ff-3960e28e3630",
                "--tenant-id",
                "33333333-3333-3333-3333-333333333333",
                "--login",
                "azurecli"
            ]
        );
        assert_eq!(exec["command"].as_str(), Some("kubelogin"));
        assert_eq!(exec["installHint"].as_str(), Some("install kubelogin"));
        assert!(exec.get("env").is_some_and(Value::is_null));
        // Second run: nothing to do.
        assert!(k.convert_devicecode_to_azurecli().is_empty());
    }

    #[test]
    fn short_and_equals_login_forms() {
        assert_eq!(
            rewrite_args_for_azurecli(&[
                "get-token".into(),
                "-l".into(),
                "devicecode".into(),
                "--client-id=x".into()
            ]),
            ["get-token", "-l", "azurecli"]
        );
        assert_eq!(
            rewrite_args_for_azurecli(&[
                "--login=devicecode".into(),
                "--server-id".into(),
                "s".into()
            ]),
            ["--login=azurecli", "--server-id", "s"]
        );
        assert_eq!(
            login_mode(&["-l=DeviceCode".into()]).as_deref(),
            Some("devicecode")
        );
        assert_eq!(login_mode(&["get-token".into()]), None);
    }

    #[test]
    fn azurecli_and_non_kubelogin_users_untouched() {
        let azurecli = user_devicecode().replace("      - devicecode\n", "      - azurecli\n");
        let mut k = Kubeconfig::parse(&azurecli).unwrap();
        let before = k.clone();
        assert!(!k.uses_devicecode());
        assert!(k.convert_devicecode_to_azurecli().is_empty());
        assert_eq!(k, before);
        let other =
            user_devicecode().replace("command: kubelogin", "command: /usr/local/bin/other-plugin");
        let mut k = Kubeconfig::parse(&other).unwrap();
        assert!(k.convert_devicecode_to_azurecli().is_empty());
        let path = user_devicecode().replace("command: kubelogin", "command: /opt/bin/kubelogin");
        assert!(Kubeconfig::parse(&path).unwrap().uses_devicecode());
    }

    #[test]
    fn write_atomic_mode_0600_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "old: true\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let mut k = Kubeconfig::parse(ADMIN).unwrap();
        k.point_at_tunnel(ClusterSelector::CurrentContext, 7000)
            .unwrap();
        k.write(&path).unwrap();
        let back = Kubeconfig::read(&path).unwrap();
        assert_eq!(back, k);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config")]);
    }

    #[test]
    fn write_atomic_into_missing_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("config");
        let e = write_atomic(&path, "a: 1\n").unwrap_err();
        assert!(e.to_string().contains("missing"));
        assert!(!path.exists());
    }

    #[test]
    fn server_host_variants() {
        assert_eq!(server_host("https://a.b.c:443").as_deref(), Some("a.b.c"));
        assert_eq!(server_host("https://a.b.c").as_deref(), Some("a.b.c"));
        assert_eq!(server_host("https://[::1]:6443").as_deref(), Some("::1"));
        assert_eq!(server_host("http://a.b.c"), None);
        assert_eq!(server_host("not a url"), None);
    }
}
