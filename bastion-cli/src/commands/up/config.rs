//! The tunnels file of `bastion up -f FILE` (see the README's "Many tunnels from one file"):
//! parsed, checked before any network call, and compared with the running set on reload.
//!
//! ```toml
//! [defaults]                 # any per-tunnel option but name, port and the target
//! bind = "127.0.0.1"
//!
//! [[tunnel]]
//! name = "web"
//! bastion = "/subscriptions/.../bastionHosts/hub"   # or a name with resource-group
//! target-resource-id = "/subscriptions/.../virtualMachines/web1"
//! resource-port = 22
//! port = 2201
//!
//! [[tunnel]]
//! name = "aks-dev"
//! aks = { name = "dev", resource-group = "dev-rg" }
//! port = 8443
//! kubeconfig-out = "~/.kube/bastion-dev.yaml"
//! ```
//!
//! Keys are the long options of `bastion tunnel` and `bastion aks` without their dashes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use bastion_arm::ResourceId;
use bastion_core::Target;
use serde::Deserialize;

use crate::cli::KubeAuth;
use crate::exit::{CliError, CliResult};

/// The keys `[defaults]` takes, for `bastion up --help` and the errors.
pub const DEFAULT_KEYS: &str = "bind, idle-timeout, max-frame-size, max-connections, prewarm, subscription, bastion, resource-group, bastion-endpoint, allow-any-port, admin, skip-checks, kube-auth";

/// A parsed and checked tunnels file.
#[derive(Debug, Clone, PartialEq)]
pub struct UpFile {
    /// The tunnels, in file order, with the defaults applied.
    pub tunnels: Vec<TunnelSpec>,
}

/// One `[[tunnel]]`, defaults applied and paths made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    /// `name`: unique in the file.
    pub name: String,
    /// `port` (0: a free one).
    pub port: u16,
    /// `bind`.
    pub bind: IpAddr,
    /// `idle-timeout`, seconds.
    pub idle_timeout: Option<u64>,
    /// `max-frame-size`, bytes.
    pub max_frame_size: Option<usize>,
    /// `max-connections`.
    pub max_connections: Option<usize>,
    /// `prewarm`: sessions kept connected ahead of need (0: none).
    pub prewarm: usize,
    /// What it reaches.
    pub kind: Kind,
}

/// What a tunnel reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A resource id or an IP address behind a Bastion (as `bastion tunnel`).
    Route(RouteSpec),
    /// An AKS cluster's API server (as `bastion aks`).
    Aks(AksSpec),
}

/// The Bastion and target of a `bastion tunnel`-like entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `bastion`: a name (with `resource-group`) or a resource id.
    pub bastion: Option<String>,
    /// `resource-group`: the Bastion's.
    pub resource_group: Option<String>,
    /// `subscription`.
    pub subscription: Option<String>,
    /// `bastion-endpoint`: skip the ARM lookup.
    pub bastion_endpoint: Option<String>,
    /// `target-resource-id`.
    pub target_resource_id: Option<String>,
    /// `target-ip-address`.
    pub target_ip_address: Option<IpAddr>,
    /// `resource-port`.
    pub resource_port: u16,
    /// `allow-any-port`.
    pub allow_any_port: bool,
}

/// An `aks = { ... }` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AksSpec {
    /// `aks.name`.
    pub name: String,
    /// `aks.resource-group`.
    pub resource_group: String,
    /// `aks.subscription`, else `subscription`.
    pub subscription: Option<String>,
    /// `bastion`: a name or a resource id (default: discovered).
    pub bastion: Option<String>,
    /// `admin`.
    pub admin: bool,
    /// `skip-checks`.
    pub skip_checks: bool,
    /// `context`: the context (and cluster entry) name in the kubeconfig.
    pub context: Option<String>,
    /// `kubeconfig-out`, absolute (default: a temporary file).
    pub kubeconfig_out: Option<PathBuf>,
    /// `kube-auth`: how kubectl authenticates to an AAD cluster (`bastion` or `kubelogin`).
    pub kube_auth: KubeAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDefaults {
    bind: Option<IpAddr>,
    idle_timeout: Option<u64>,
    max_frame_size: Option<usize>,
    max_connections: Option<usize>,
    prewarm: Option<usize>,
    subscription: Option<String>,
    bastion: Option<String>,
    resource_group: Option<String>,
    bastion_endpoint: Option<String>,
    allow_any_port: Option<bool>,
    admin: Option<bool>,
    skip_checks: Option<bool>,
    kube_auth: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTunnel {
    name: String,
    port: Option<u16>,
    bind: Option<IpAddr>,
    idle_timeout: Option<u64>,
    max_frame_size: Option<usize>,
    max_connections: Option<usize>,
    prewarm: Option<usize>,
    subscription: Option<String>,
    bastion: Option<String>,
    resource_group: Option<String>,
    bastion_endpoint: Option<String>,
    target_resource_id: Option<String>,
    target_ip_address: Option<String>,
    resource_port: Option<u16>,
    allow_any_port: Option<bool>,
    aks: Option<RawAks>,
    admin: Option<bool>,
    skip_checks: Option<bool>,
    context: Option<String>,
    #[serde(alias = "kubeconfig")]
    kubeconfig_out: Option<String>,
    kube_auth: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAks {
    name: String,
    resource_group: String,
    subscription: Option<String>,
}

/// Reads and checks `path`. Every error is one line naming the file (and the tunnel and key).
pub fn load(path: &Path) -> CliResult<UpFile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "cannot read the tunnels file {}: {e}",
            path.display()
        ))
        .hint("check the path given with -f and its permissions")
    })?;
    parse(&text, path)
}

/// Parses and checks the text of the tunnels file at `path` (relative `kubeconfig-out` paths
/// are taken from the file's directory).
pub fn parse(text: &str, path: &Path) -> CliResult<UpFile> {
    let file = path.display().to_string();
    let table: toml::Table = toml::from_str(text).map_err(|e| syntax_error(&file, text, &e))?;
    let mut defaults = RawDefaults::default();
    let mut raw = Vec::new();
    for (key, value) in table {
        match key.as_str() {
            "defaults" => {
                defaults = value.try_into().map_err(|e: toml::de::Error| {
                    CliError::usage(format!("{file}: [defaults]: {}", serde_message(&e)))
                        .hint(format!("[defaults] takes {DEFAULT_KEYS}"))
                })?;
            }
            "tunnel" => {
                let toml::Value::Array(items) = value else {
                    return Err(CliError::usage(format!(
                        "{file}: `tunnel` must be a list of tables"
                    ))
                    .hint("write each tunnel as a [[tunnel]] section"));
                };
                for (i, item) in items.into_iter().enumerate() {
                    let shown = match item.get("name").and_then(toml::Value::as_str) {
                        Some(name) => format!("tunnel '{name}'"),
                        None => format!("tunnel #{}", i + 1),
                    };
                    let t: RawTunnel = item.try_into().map_err(|e: toml::de::Error| {
                        CliError::usage(format!("{file}: {shown}: {}", serde_message(&e))).hint(
                            "fix the key (the keys are those of `bastion up --help`), then run again",
                        )
                    })?;
                    raw.push(t);
                }
            }
            other => {
                return Err(CliError::usage(format!("{file}: unknown key `{other}`"))
                    .hint("the file holds a [defaults] table and [[tunnel]] sections"));
            }
        }
    }
    if raw.is_empty() {
        return Err(CliError::usage(format!("{file}: no tunnel"))
            .hint("add a [[tunnel]] section with a name, a target and a port"));
    }
    let base = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut tunnels = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ports: HashMap<u16, String> = HashMap::new();
    let mut kubeconfigs: HashMap<PathBuf, String> = HashMap::new();
    for (i, t) in raw.into_iter().enumerate() {
        let spec = resolve(&file, &base, &defaults, t)?;
        if let Some(first) = names.insert(spec.name.clone(), i) {
            return Err(CliError::usage(format!(
                "{file}: tunnel '{}' is defined twice (tunnels #{} and #{})",
                spec.name,
                first + 1,
                i + 1
            ))
            .hint("give each [[tunnel]] a name of its own"));
        }
        if spec.port != 0
            && let Some(other) = ports.insert(spec.port, spec.name.clone())
        {
            return Err(CliError::usage(format!(
                "{file}: tunnel '{}': port {} is already the port of tunnel '{other}'",
                spec.name, spec.port
            ))
            .hint("give each tunnel a port of its own (or port = 0 for a free one)"));
        }
        if let Kind::Aks(aks) = &spec.kind
            && let Some(out) = &aks.kubeconfig_out
            && let Some(other) = kubeconfigs.insert(out.clone(), spec.name.clone())
        {
            return Err(CliError::usage(format!(
                "{file}: tunnel '{}': kubeconfig-out {} is already the kubeconfig of tunnel '{other}'",
                spec.name,
                out.display()
            ))
            .hint("give each AKS tunnel a kubeconfig file of its own"));
        }
        tunnels.push(spec);
    }
    Ok(UpFile { tunnels })
}

/// A TOML syntax error as one line: `FILE:LINE:COLUMN: message`.
fn syntax_error(file: &str, text: &str, e: &toml::de::Error) -> CliError {
    let at = e
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
            format!(":{line}:{column}")
        })
        .unwrap_or_default();
    let mut msg = serde_message(e);
    // Name the key: "duplicate key" alone does not say which.
    if let Some(span) = e.span()
        && let Some(key) = text.get(span)
        && !key.contains('\n')
        && !key.trim().is_empty()
    {
        msg = format!("{msg} `{}`", key.trim());
    }
    CliError::usage(format!("{file}{at}: {msg}")).hint("fix the TOML syntax there, then run again")
}

/// The message of a TOML / serde error, on one line, keys named as in the file.
fn serde_message(e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    // serde says "field"; the file has keys.
    msg.replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
}

/// One raw entry checked, with the defaults applied.
fn resolve(file: &str, base: &Path, d: &RawDefaults, t: RawTunnel) -> CliResult<TunnelSpec> {
    let name = t.name.trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(
            CliError::usage(format!("{file}: invalid tunnel name {:?}", t.name))
                .hint("use letters, digits, '-', '_' and '.' only"),
        );
    }
    let bad = |key: &str, what: String, fix: &str| {
        CliError::usage(format!("{file}: tunnel '{name}': {key}: {what}")).hint(fix.to_owned())
    };
    if t.max_connections.or(d.max_connections) == Some(0) {
        return Err(bad(
            "max-connections",
            "must be at least 1".into(),
            "leave it out for the default (256), or give a positive number",
        ));
    }
    let Some(port) = t.port else {
        return Err(
            CliError::usage(format!("{file}: tunnel '{name}': missing key `port`"))
                .hint("give the local port (0 for a free one)"),
        );
    };
    let targets = [
        t.target_resource_id.is_some(),
        t.target_ip_address.is_some(),
        t.aks.is_some(),
    ];
    match targets.iter().filter(|x| **x).count() {
        0 => {
            return Err(
                CliError::usage(format!("{file}: tunnel '{name}': no target")).hint(
                    "set one of target-resource-id, target-ip-address or aks = { name, resource-group }",
                ),
            );
        }
        1 => {}
        _ => {
            return Err(
                CliError::usage(format!("{file}: tunnel '{name}': more than one target"))
                    .hint("set only one of target-resource-id, target-ip-address and aks"),
            );
        }
    }
    let kind = if let Some(aks) = t.aks {
        for (key, set) in [
            ("resource-port", t.resource_port.is_some()),
            ("resource-group", t.resource_group.is_some()),
            ("bastion-endpoint", t.bastion_endpoint.is_some()),
            ("allow-any-port", t.allow_any_port.is_some()),
        ] {
            if set {
                return Err(bad(
                    key,
                    "does not apply to an AKS tunnel".into(),
                    "remove it (the cluster's resource group goes in aks = { resource-group = ... })",
                ));
            }
        }
        let kubeconfig_out = match t.kubeconfig_out.as_deref().map(str::trim) {
            None => None,
            Some("") => {
                return Err(bad(
                    "kubeconfig-out",
                    "empty path".into(),
                    "give a file path, or leave the key out for a temporary kubeconfig",
                ));
            }
            Some(p) => {
                let p = absolute(base, p)
                    .map_err(|e| bad("kubeconfig-out", e, "give an absolute path, or set HOME"))?;
                if p.is_dir() {
                    return Err(bad(
                        "kubeconfig-out",
                        format!("{} is a directory", p.display()),
                        "give a file path",
                    ));
                }
                let dir = p.parent().unwrap_or(Path::new("/"));
                if !dir.is_dir() {
                    return Err(bad(
                        "kubeconfig-out",
                        format!("the directory {} does not exist", dir.display()),
                        "create it, or choose another path",
                    ));
                }
                Some(p)
            }
        };
        if let Some(c) = &t.context
            && c.trim().is_empty()
        {
            return Err(bad(
                "context",
                "empty name".into(),
                "give a context name, or leave the key out",
            ));
        }
        let kube_auth = match t
            .kube_auth
            .as_deref()
            .or(d.kube_auth.as_deref())
            .map(str::trim)
        {
            None | Some("bastion") => KubeAuth::Bastion,
            Some("kubelogin") => KubeAuth::Kubelogin,
            Some(other) => {
                return Err(bad(
                    "kube-auth",
                    format!("unknown value {other:?}"),
                    "write kube-auth = \"bastion\" (the default) or \"kubelogin\"",
                ));
            }
        };
        let (cluster, rg) = (aks.name.trim(), aks.resource_group.trim());
        if cluster.is_empty() || rg.is_empty() {
            return Err(bad(
                "aks",
                "name and resource-group must not be empty".into(),
                "write aks = { name = \"CLUSTER\", resource-group = \"RG\" }",
            ));
        }
        Kind::Aks(AksSpec {
            name: cluster.to_owned(),
            resource_group: rg.to_owned(),
            subscription: non_empty(aks.subscription)
                .or_else(|| non_empty(t.subscription.clone()))
                .or_else(|| non_empty(d.subscription.clone())),
            bastion: non_empty(t.bastion).or_else(|| non_empty(d.bastion.clone())),
            admin: t.admin.or(d.admin).unwrap_or(false),
            skip_checks: t.skip_checks.or(d.skip_checks).unwrap_or(false),
            context: non_empty(t.context),
            kubeconfig_out,
            kube_auth,
        })
    } else {
        for (key, set) in [
            ("kubeconfig-out", t.kubeconfig_out.is_some()),
            ("context", t.context.is_some()),
            ("admin", t.admin.is_some()),
            ("skip-checks", t.skip_checks.is_some()),
            ("kube-auth", t.kube_auth.is_some()),
        ] {
            if set {
                return Err(bad(
                    key,
                    "applies to AKS tunnels only".into(),
                    "remove it, or give the tunnel an aks = { name, resource-group } target",
                ));
            }
        }
        let Some(resource_port) = t.resource_port else {
            return Err(CliError::usage(format!(
                "{file}: tunnel '{name}': missing key `resource-port`"
            ))
            .hint("give the port on the target, e.g. resource-port = 22"));
        };
        if resource_port == 0 {
            return Err(bad(
                "resource-port",
                "0 is not a port".into(),
                "give the target's port, from 1 to 65535",
            ));
        }
        let target_resource_id = non_empty(t.target_resource_id);
        if let Some(id) = &target_resource_id {
            Target::resource(id, resource_port).map_err(|e| {
                bad(
                    "target-resource-id",
                    e.to_string(),
                    "give the target's full ARM resource id",
                )
            })?;
        }
        let target_ip_address = match t.target_ip_address.as_deref().map(str::trim) {
            None => None,
            Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| {
                bad(
                    "target-ip-address",
                    format!("{ip:?} is not an IP address"),
                    "give an IPv4 or IPv6 literal such as 10.0.0.4",
                )
            })?),
        };
        let route = RouteSpec {
            bastion: non_empty(t.bastion).or_else(|| non_empty(d.bastion.clone())),
            resource_group: non_empty(t.resource_group)
                .or_else(|| non_empty(d.resource_group.clone())),
            subscription: non_empty(t.subscription).or_else(|| non_empty(d.subscription.clone())),
            bastion_endpoint: non_empty(t.bastion_endpoint)
                .or_else(|| non_empty(d.bastion_endpoint.clone())),
            target_resource_id,
            target_ip_address,
            resource_port,
            allow_any_port: t.allow_any_port.or(d.allow_any_port).unwrap_or(false),
        };
        check_bastion(&route).map_err(|(key, what, fix)| bad(key, what, fix))?;
        Kind::Route(route)
    };
    Ok(TunnelSpec {
        name,
        port,
        bind: t.bind.or(d.bind).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        idle_timeout: t.idle_timeout.or(d.idle_timeout),
        max_frame_size: t.max_frame_size.or(d.max_frame_size),
        max_connections: t.max_connections.or(d.max_connections),
        prewarm: t.prewarm.or(d.prewarm).unwrap_or(0),
        kind,
    })
}

/// Which Bastion a route names, checked without ARM.
fn check_bastion(r: &RouteSpec) -> Result<(), (&'static str, String, &'static str)> {
    if r.bastion_endpoint.is_some() && r.target_ip_address.is_none() {
        return Ok(());
    }
    let Some(bastion) = &r.bastion else {
        return Err((
            "bastion",
            "no Bastion given".into(),
            "set bastion (a resource id, or a name with resource-group), or bastion-endpoint",
        ));
    };
    if bastion.starts_with('/') {
        let id = ResourceId::parse(bastion).map_err(|e| {
            (
                "bastion",
                e.to_string(),
                "give the Bastion's full resource id, or its name with resource-group",
            )
        })?;
        if !id.is_type("Microsoft.Network/bastionHosts") {
            return Err((
                "bastion",
                format!("{bastion:?} is not a Bastion resource id"),
                "give an id of type Microsoft.Network/bastionHosts",
            ));
        }
    } else if r.resource_group.is_none() {
        return Err((
            "resource-group",
            format!("the Bastion '{bastion}' needs its resource group"),
            "set resource-group, or give bastion as the Bastion's full resource id",
        ));
    }
    Ok(())
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `~/x` from HOME, a relative path from `base`.
fn absolute(base: &Path, p: &str) -> Result<PathBuf, String> {
    if p == "~" || p.starts_with("~/") {
        let home = std::env::var_os("HOME")
            .filter(|h| Path::new(h).is_absolute())
            .ok_or_else(|| format!("{p}: HOME is not set to an absolute path"))?;
        return Ok(Path::new(&home).join(p.trim_start_matches('~').trim_start_matches('/')));
    }
    let p = Path::new(p);
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::path::absolute(base.join(p)).map_err(|e| e.to_string())?
    })
}

/// What a reload changes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// In the new file only.
    pub added: Vec<String>,
    /// In the old set only.
    pub removed: Vec<String>,
    /// In both, with different settings.
    pub changed: Vec<String>,
    /// In both, the same.
    pub unchanged: Vec<String>,
}

/// Compares the running tunnels with a newly read file.
pub fn diff<'a>(old: impl IntoIterator<Item = &'a TunnelSpec>, new: &UpFile) -> Diff {
    let old: Vec<&TunnelSpec> = old.into_iter().collect();
    let mut d = Diff::default();
    for o in &old {
        match new.tunnels.iter().find(|n| n.name == o.name) {
            None => d.removed.push(o.name.clone()),
            Some(n) if n == *o => d.unchanged.push(o.name.clone()),
            Some(_) => d.changed.push(o.name.clone()),
        }
    }
    for n in &new.tunnels {
        if !old.iter().any(|o| o.name == n.name) {
            d.added.push(n.name.clone());
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM: &str =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
    const BASTION: &str =
        "/subscriptions/s/resourceGroups/hub/providers/Microsoft.Network/bastionHosts/hub";

    fn parse_str(text: &str) -> CliResult<UpFile> {
        parse(text, Path::new("/tmp/tunnels.toml"))
    }

    fn err(text: &str) -> String {
        let e = parse_str(text).unwrap_err();
        assert_eq!(e.code.status(), 2);
        assert!(e.hint.is_some(), "{e}");
        e.to_string()
    }

    fn example() -> String {
        format!(
            r#"
[defaults]
bind = "127.0.0.1"
idle-timeout = 600

[[tunnel]]
name = "web"
bastion = "{BASTION}"
target-resource-id = "{VM}"
resource-port = 22
port = 2201

[[tunnel]]
name = "ip"
bastion = "hub"
resource-group = "hub-rg"
target-ip-address = "10.0.0.4"
resource-port = 3389
port = 0
idle-timeout = 0

[[tunnel]]
name = "aks-dev"
aks = {{ name = "dev", resource-group = "dev-rg" }}
port = 8443
kubeconfig = "dev.yaml"
context = "dev"
admin = true
kube-auth = "kubelogin"
"#
        )
    }

    #[test]
    fn the_example_parses_with_defaults_applied() {
        let f = parse(&example(), Path::new("/tmp/tunnels.toml")).unwrap();
        assert_eq!(f.tunnels.len(), 3);
        let web = &f.tunnels[0];
        assert_eq!(
            (web.name.as_str(), web.port, web.idle_timeout),
            ("web", 2201, Some(600))
        );
        let Kind::Route(r) = &web.kind else { panic!() };
        assert_eq!(r.target_resource_id.as_deref(), Some(VM));
        assert_eq!(r.resource_port, 22);
        let Kind::Route(ip) = &f.tunnels[1].kind else {
            panic!()
        };
        assert_eq!(ip.target_ip_address, Some("10.0.0.4".parse().unwrap()));
        assert_eq!(f.tunnels[1].idle_timeout, Some(0));
        let Kind::Aks(aks) = &f.tunnels[2].kind else {
            panic!()
        };
        assert_eq!(
            aks.kubeconfig_out.as_deref(),
            Some(Path::new("/tmp/dev.yaml"))
        );
        assert!(aks.admin && !aks.skip_checks);
        assert_eq!(aks.kube_auth, KubeAuth::Kubelogin);
        assert_eq!(aks.context.as_deref(), Some("dev"));
    }

    #[test]
    fn unknown_keys_are_named_with_their_tunnel() {
        let text = example().replace("port = 2201", "prot = 2201");
        let e = err(&text);
        assert!(
            e.starts_with("/tmp/tunnels.toml: tunnel 'web': unknown key `prot`"),
            "{e}"
        );
        let e = err("[defaults]\nbnd = \"::1\"\n");
        assert!(e.contains("[defaults]: unknown key `bnd`"), "{e}");
        let e = err("[[tunnels]]\nname = \"x\"\n");
        assert!(e.contains("unknown key `tunnels`"), "{e}");
    }

    #[test]
    fn duplicates_are_refused() {
        let text = example().replace("name = \"ip\"", "name = \"web\"");
        let e = err(&text);
        assert!(
            e.contains("tunnel 'web' is defined twice (tunnels #1 and #2)"),
            "{e}"
        );
        let text = example().replace("port = 8443", "port = 2201");
        let e = err(&text);
        assert!(
            e.contains("tunnel 'aks-dev': port 2201 is already the port of tunnel 'web'"),
            "{e}"
        );
        // Several free ports are fine.
        let text = example().replace("port = 8443", "port = 0");
        assert!(parse_str(&text).is_ok());
    }

    #[test]
    fn bad_entries_name_the_key_and_the_fix() {
        let e = err("[[tunnel]\nname = 1\n");
        assert!(e.starts_with("/tmp/tunnels.toml:1:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = err("[[tunnel]]\nname = \"a\"\nport = 1\n");
        assert!(e.contains("tunnel 'a': no target"), "{e}");
        let e = err(&format!(
            "[[tunnel]]\nname = \"a\"\nport = 1\ntarget-resource-id = \"{VM}\"\nresource-port = 22\n"
        ));
        assert!(e.contains("tunnel 'a': bastion: no Bastion given"), "{e}");
        let e = err(&format!(
            "[[tunnel]]\nname = \"a\"\nport = 1\nbastion = \"hub\"\ntarget-resource-id = \"{VM}\"\nresource-port = 22\n"
        ));
        assert!(e.contains("resource-group: the Bastion 'hub' needs"), "{e}");
        let e = err("[[tunnel]]\nname = \"a\"\nport = 70000\n");
        assert!(e.contains("tunnel 'a'"), "{e}");
        let e = err(
            "[[tunnel]]\nname = \"a\"\nport = 1\naks = { name = \"c\", resource-group = \"g\" }\nresource-port = 22\n",
        );
        assert!(
            e.contains("resource-port: does not apply to an AKS tunnel"),
            "{e}"
        );
        let e = err(&format!(
            "[[tunnel]]\nname = \"a\"\nport = 1\nbastion-endpoint = \"b.test\"\ntarget-resource-id = \"{VM}\"\nresource-port = 22\nadmin = true\n"
        ));
        assert!(e.contains("admin: applies to AKS tunnels only"), "{e}");
        let e = err(
            "[[tunnel]]\nname = \"a\"\nport = 1\naks = { name = \"c\", resource-group = \"g\" }\nkubeconfig-out = \"/nonexistent-dir/x\"\n",
        );
        assert!(
            e.contains("kubeconfig-out: the directory /nonexistent-dir does not exist"),
            "{e}"
        );
        let e = err("[[tunnel]]\nname = \"a b\"\n");
        assert!(e.contains("invalid tunnel name \"a b\""), "{e}");
        let e = err("# nothing\n");
        assert!(e.contains("no tunnel"), "{e}");
    }

    #[test]
    fn diff_sorts_added_removed_changed_unchanged() {
        let old = parse_str(&example()).unwrap();
        let text = example()
            .replace("name = \"ip\"", "name = \"ip2\"")
            .replace("port = 2201", "port = 2202");
        let new = parse_str(&text).unwrap();
        let d = diff(&old.tunnels, &new);
        assert_eq!(d.added, ["ip2"]);
        assert_eq!(d.removed, ["ip"]);
        assert_eq!(d.changed, ["web"]);
        assert_eq!(d.unchanged, ["aks-dev"]);
        // A changed default changes the tunnels that take it.
        let new = parse_str(&example().replace("idle-timeout = 600", "idle-timeout = 60")).unwrap();
        let d = diff(&old.tunnels, &new);
        assert_eq!(d.changed, ["web", "aks-dev"]);
        assert_eq!(d.unchanged, ["ip"]);
    }
}
