//! Global options turned into what the commands use: the cloud, the HTTPS settings shared by ARM
//! and the Bastion (extra CA, resolve overrides), the credential and the ARM client.

use std::io::{IsTerminal as _, Read as _};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use azure_core::credentials::TokenCredential;
use bastion_arm::{
    ArmClient, ArmClientConfig, Cloud, CredentialKind, HyperTransport, build_credential,
};
use bastion_core::{HttpsConfig, Secret};
use url::Url;

use crate::cli::{AuthMethod, GlobalOpts};
use crate::exit::{CliError, CliResult, Code};
use crate::output::Output;

/// How the CLI names itself in the `User-Agent`, after the library's name.
const APPLICATION: &str = concat!("bastion-cli/", env!("CARGO_PKG_VERSION"));

/// What every command gets: output, cloud, TLS trust, resolve overrides and credentials.
pub struct Context {
    /// Where to report.
    pub out: Output,
    /// The Azure cloud (or the emulator).
    pub cloud: Cloud,
    /// Extra trusted CA certificates (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// Host-to-address overrides.
    pub resolve: Vec<(String, IpAddr)>,
    auth: AuthMethod,
    token: Option<Secret>,
    tenant: Option<String>,
    identity_client_id: Option<String>,
    /// The global options that decide a token, as `bastion kube-token` arguments.
    plugin_args: Vec<String>,
    transport: OnceLock<HyperTransport>,
    credential: OnceLock<Arc<dyn TokenCredential>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("cloud", &self.cloud)
            .field("auth", &self.auth)
            .field("resolve", &self.resolve)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Reads the global options (files are read here, so bad paths fail before any network).
    /// `stdin_is_data`: the command's standard input is payload (`proxy`), so the token cannot
    /// be read from it.
    pub fn new(g: &GlobalOpts, out: Output, stdin_is_data: bool) -> CliResult<Self> {
        let cloud = match &g.arm_endpoint {
            Some(endpoint) => {
                let url = Url::parse(endpoint.trim()).map_err(|e| {
                    CliError::usage(format!("invalid --arm-endpoint {endpoint:?}: {e}"))
                        .hint("give an https URL such as https://management.azure.com/")
                })?;
                if url.scheme() != "https" {
                    return Err(CliError::usage(format!(
                        "invalid --arm-endpoint {endpoint:?}: it must use https"
                    ))
                    .hint("bearer tokens are never sent in clear text; use an https URL"));
                }
                custom_cloud(url)
            }
            None => Cloud::from_name(&g.cloud).ok_or_else(|| {
                CliError::usage(format!("unknown cloud {:?}", g.cloud))
                    .hint("use AzureCloud, AzureUSGovernment or AzureChinaCloud, or --arm-endpoint for a custom cloud")
            })?,
        };
        let ca_pem = match &g.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                CliError::usage(format!("cannot read the CA file {}: {e}", path.display()))
                    .hint("check --ca-file / BASTION_CA_FILE")
            })?),
            None => None,
        };
        let resolve = g
            .resolve
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_resolve(s))
            .collect::<CliResult<Vec<_>>>()?;
        let token = token(g, &out, stdin_is_data)?;
        let plugin_args = plugin_args(g)?;
        Ok(Self {
            out,
            cloud,
            ca_pem,
            resolve,
            auth: g.auth,
            token,
            tenant: g.tenant.clone(),
            identity_client_id: g.identity_client_id.clone(),
            plugin_args,
            transport: OnceLock::new(),
            credential: OnceLock::new(),
        })
    }

    /// A context for an emulated cloud: its ARM endpoint, CA, resolve overrides and a token.
    pub fn for_emulator(
        out: Output,
        arm_endpoint: Url,
        ca_pem: String,
        resolve: Vec<(String, IpAddr)>,
        token: String,
    ) -> Self {
        Self {
            out,
            cloud: Cloud::custom(arm_endpoint),
            ca_pem: Some(ca_pem.into_bytes()),
            resolve,
            auth: AuthMethod::Token,
            token: Some(Secret::new(token)),
            tenant: None,
            identity_client_id: None,
            plugin_args: Vec::new(),
            transport: OnceLock::new(),
            credential: OnceLock::new(),
        }
    }

    /// `--auth`.
    pub fn auth(&self) -> AuthMethod {
        self.auth
    }

    /// `--tenant`.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// `--identity-client-id`.
    pub fn identity_client_id(&self) -> Option<&str> {
        self.identity_client_id.as_deref()
    }

    /// The global options in effect that decide which token `bastion kube-token` gets, as its
    /// arguments after `--auth` (`--tenant`, `--identity-client-id`, `--cloud`,
    /// `--arm-endpoint`, `--ca-file` made absolute, `--resolve`). Never a secret.
    pub fn plugin_args(&self) -> Vec<String> {
        self.plugin_args.clone()
    }

    /// The Entra authority of a custom cloud, when `AZURE_AUTHORITY_HOST` set one.
    pub fn custom_authority(&self) -> Option<String> {
        match &self.cloud {
            Cloud::Custom {
                authority: Some(a), ..
            } => Some(a.as_str().trim_end_matches('/').to_owned()),
            _ => None,
        }
    }

    /// The token scope for ARM and the Bastion's `aztoken`.
    pub fn scope(&self) -> String {
        self.cloud.scope()
    }

    /// HTTPS settings for the Bastion data plane.
    pub fn https_config(&self) -> HttpsConfig {
        HttpsConfig {
            extra_root_ca_pem: self.ca_pem.clone(),
            resolve: self.resolve.clone(),
            application: Some(APPLICATION.to_owned()),
            ..HttpsConfig::default()
        }
    }

    /// ARM client settings: ARM's own timeouts and retries, with our trust, resolve overrides
    /// and `User-Agent`.
    pub fn arm_config(&self) -> ArmClientConfig {
        let mut config = ArmClientConfig::for_cloud(self.cloud.clone());
        config.https.extra_root_ca_pem = self.ca_pem.clone();
        config.https.resolve = self.resolve.clone();
        config.https.application = Some(APPLICATION.to_owned());
        config
    }

    fn transport(&self) -> CliResult<HyperTransport> {
        if let Some(t) = self.transport.get() {
            return Ok(t.clone());
        }
        let t = self.arm_config().transport().map_err(|e| {
            CliError::usage(e.to_string()).hint("check that --ca-file holds PEM certificates")
        })?;
        Ok(self.transport.get_or_init(|| t).clone())
    }

    /// The credential chosen with `--auth` (built once).
    pub fn credential(&self) -> CliResult<Arc<dyn TokenCredential>> {
        if let Some(c) = self.credential.get() {
            return Ok(Arc::clone(c));
        }
        let kind = match self.auth {
            AuthMethod::Cli => match &self.tenant {
                Some(t) => CredentialKind::AzureCli {
                    tenant_id: Some(t.clone()),
                },
                None => CredentialKind::DeveloperTools,
            },
            AuthMethod::ManagedIdentity => CredentialKind::ManagedIdentity {
                client_id: self.identity_client_id.clone(),
            },
            AuthMethod::WorkloadIdentity => CredentialKind::WorkloadIdentity,
            AuthMethod::ClientSecret => CredentialKind::ClientSecret,
            AuthMethod::Token => match self.token.as_ref().map(|t| t.expose().trim()) {
                Some(t) if !t.is_empty() => CredentialKind::StaticToken(t.to_owned()),
                _ => {
                    return Err(CliError::usage("--auth token needs an access token").hint(
                        "pass --token-file FILE (- for stdin) or set BASTION_TOKEN (e.g. from `az account get-access-token --query accessToken -o tsv`)",
                    ));
                }
            },
        };
        let transport = self.transport()?;
        // The shared transport also serves managed identity: it allows plain http to the
        // machine's own identity endpoints (loopback, IMDS) and nowhere else.
        let http: Arc<dyn azure_core::http::HttpClient> = Arc::new(transport);
        let cred = build_credential(&kind, &self.cloud, http).map_err(|e| {
            CliError::new(Code::Auth, e.to_string())
                .hint("choose another --auth method or set the variables it names")
        })?;
        Ok(Arc::clone(self.credential.get_or_init(|| cred)))
    }

    /// An ARM client for the cloud, sharing the credential's transport.
    pub fn arm_client(&self) -> CliResult<ArmClient> {
        let credential = self.credential()?;
        let transport = self.transport()?;
        Ok(ArmClient::with_http_client(
            self.arm_config(),
            credential,
            Arc::new(transport),
        )?)
    }
}

/// A custom cloud at `arm_endpoint`; its Entra authority is `AZURE_AUTHORITY_HOST` (the Azure
/// SDKs' variable) when that is an https URL, else the public cloud's.
fn custom_cloud(arm_endpoint: Url) -> Cloud {
    let authority = non_empty_env("AZURE_AUTHORITY_HOST")
        .and_then(|a| Url::parse(a.trim()).ok())
        .filter(|u| u.scheme() == "https");
    match authority {
        Some(authority) => Cloud::Custom {
            arm_endpoint,
            scope: Cloud::AzureCloud.scope(),
            authority: Some(authority),
        },
        None => Cloud::custom(arm_endpoint),
    }
}

/// See [`Context::plugin_args`].
fn plugin_args(g: &GlobalOpts) -> CliResult<Vec<String>> {
    let mut args = Vec::new();
    let mut push = |flag: &str, value: String| {
        args.push(flag.to_owned());
        args.push(value);
    };
    if let Some(t) = &g.tenant {
        push("--tenant", t.clone());
    }
    if let Some(c) = &g.identity_client_id {
        push("--identity-client-id", c.clone());
    }
    if !g.cloud.eq_ignore_ascii_case("AzureCloud") {
        push("--cloud", g.cloud.clone());
    }
    if let Some(e) = &g.arm_endpoint {
        push("--arm-endpoint", e.trim().to_owned());
    }
    if let Some(ca) = &g.ca_file {
        let abs = std::path::absolute(ca).map_err(|e| {
            CliError::usage(format!("cannot resolve the CA file {}: {e}", ca.display()))
                .hint("check --ca-file / BASTION_CA_FILE")
        })?;
        push("--ca-file", abs.display().to_string());
    }
    for r in g.resolve.iter().filter(|r| !r.trim().is_empty()) {
        push("--resolve", r.trim().to_owned());
    }
    Ok(args)
}

/// The largest token file read: ARM tokens are a few KiB.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// The warning printed when the token is on the command line (always, even with `-q`).
pub const TOKEN_ON_COMMAND_LINE: &str = "--token puts the access token in the process list, where other users of this machine can read it; use --token-file FILE (- for stdin) or BASTION_TOKEN instead";

/// The access token for `--auth token`, from the first of: `--token` (with a warning: it is in
/// the process list), `--token-file` / `BASTION_TOKEN_FILE`, `BASTION_TOKEN`. A file is read
/// only for `--auth token`.
fn token(g: &GlobalOpts, out: &Output, stdin_is_data: bool) -> CliResult<Option<Secret>> {
    if let Some(token) = &g.token {
        out.warn_always(TOKEN_ON_COMMAND_LINE);
        return Ok(Some(token.clone()));
    }
    let file = g
        .token_file
        .clone()
        .or_else(|| non_empty_env("BASTION_TOKEN_FILE").map(Into::into));
    match file {
        Some(path) if g.auth == AuthMethod::Token => {
            read_token_file(&path, stdin_is_data).map(Some)
        }
        Some(_) => Ok(None),
        None => Ok(non_empty_env("BASTION_TOKEN").map(Secret::new)),
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The token in `path` (`-`: standard input, to its end), trimmed; bounded in size.
fn read_token_file(path: &Path, stdin_is_data: bool) -> CliResult<Secret> {
    let from_stdin = path.as_os_str() == "-";
    let shown = if from_stdin {
        "standard input".to_owned()
    } else {
        path.display().to_string()
    };
    let mut text = String::new();
    let read = if from_stdin {
        if stdin_is_data {
            return Err(CliError::usage(
                "--token-file - cannot be used with `proxy`: its standard input is the tunnel's data",
            )
            .hint("give the token in a file (--token-file FILE) or in BASTION_TOKEN"));
        }
        if std::io::stdin().is_terminal() {
            return Err(CliError::usage(
                "--token-file - reads the token from standard input, which is a terminal",
            )
            .hint("pipe the token in, e.g. `az account get-access-token --query accessToken -o tsv | bastion --token-file - ...`"));
        }
        std::io::stdin()
            .lock()
            .take(MAX_TOKEN_FILE + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_TOKEN_FILE + 1).read_to_string(&mut text))
    };
    read.map_err(|e| {
        CliError::usage(format!("cannot read the token from {shown}: {e}"))
            .hint("check --token-file / BASTION_TOKEN_FILE")
    })?;
    if text.len() as u64 > MAX_TOKEN_FILE {
        return Err(CliError::usage(format!(
            "the token in {shown} is larger than {} KiB",
            MAX_TOKEN_FILE / 1024
        ))
        .hint("the file should hold only the access token"));
    }
    let token = text.trim();
    if token.is_empty() {
        return Err(CliError::usage(format!("no token in {shown}: it is empty")).hint(
            "write the access token into it, e.g. `az account get-access-token --query accessToken -o tsv`",
        ));
    }
    Ok(Secret::new(token))
}

/// `HOST=IP` (also `HOST:IP` when unambiguous, and curl's `HOST:PORT:IP`).
fn parse_resolve(s: &str) -> CliResult<(String, IpAddr)> {
    let bad = || {
        CliError::usage(format!("invalid --resolve {s:?}"))
            .hint("write HOST=IP, e.g. bst-1234.bastion.azure.com=127.0.0.1")
    };
    let s = s.trim();
    let (host, ip) = if let Some((h, ip)) = s.split_once('=') {
        (h, ip)
    } else {
        // curl style HOST:PORT:IP (the port is ignored: every port of HOST goes to IP).
        let mut parts = s.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(_port), Some(ip)) => (h, ip),
            _ => return Err(bad()),
        }
    };
    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let host = host.trim().to_ascii_lowercase();
    if host.is_empty() || !bastion_core::is_dns_name(&host) {
        return Err(bad());
    }
    Ok((host, ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  eyJ.token.sig\n").unwrap();
        assert_eq!(
            read_token_file(&file, false).unwrap().expose(),
            "eyJ.token.sig"
        );
        std::fs::write(&file, "\n  \n").unwrap();
        let err = read_token_file(&file, false).unwrap_err();
        assert_eq!(err.code, Code::Usage);
        assert!(err.what.contains("empty"), "{err}");
        std::fs::write(&file, "x".repeat(MAX_TOKEN_FILE as usize + 1)).unwrap();
        assert!(
            read_token_file(&file, false)
                .unwrap_err()
                .what
                .contains("larger")
        );
        let err = read_token_file(&dir.path().join("missing"), false).unwrap_err();
        assert!(err.what.contains("cannot read the token"), "{err}");
        let err = read_token_file(Path::new("-"), true).unwrap_err();
        assert!(err.what.contains("proxy"), "{err}");
        // The error never contains the token itself.
        std::fs::write(&file, "x".repeat(MAX_TOKEN_FILE as usize + 1)).unwrap();
        assert!(
            !read_token_file(&file, false)
                .unwrap_err()
                .to_string()
                .contains("xxxx")
        );
    }

    #[test]
    fn resolve_overrides_parse() {
        assert_eq!(
            parse_resolve("Bst.Example.Test=127.0.0.1").unwrap(),
            ("bst.example.test".into(), "127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            parse_resolve("a.test:443:::1").unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert!(parse_resolve("nonsense").is_err());
        assert!(parse_resolve("host=notanip").is_err());
    }
}
