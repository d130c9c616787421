//! `bastion kube-token`: a kubectl exec credential plugin for AAD-enabled AKS clusters (see
//! docs/arm-and-aks.md#aad-clusters). It gets a token for the AKS AAD server
//! ([`AKS_AAD_SCOPE`]) from the same credential as every other command (`--auth`, `--tenant`,
//! `--identity-client-id`, the `AZURE_*` variables), keeps it in a private on-disk cache until
//! shortly before it expires, and prints an `ExecCredential` on stdout, and nothing else.
//!
//! Also here: how the kubeconfig of an AAD cluster is set up for it ([`configure_aad_users`]),
//! or for kubelogin with the login mode that matches `--auth` (`--kube-auth kubelogin`).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bastion_arm::{AKS_AAD_SCOPE, AKS_AAD_SERVER_ID, ExecPlugin, Kubeconfig, KubeloginLogin};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cli::{AuthMethod, KubeAuth, KubeTokenArgs};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome};
use crate::output::Output;

/// The `apiVersion` answered unless `KUBERNETES_EXEC_INFO` asks for v1beta1.
const EXEC_V1: &str = "client.authentication.k8s.io/v1";
const EXEC_V1BETA1: &str = "client.authentication.k8s.io/v1beta1";

/// A cached token is used while more than this many seconds of it remain: kubectl keeps an
/// `ExecCredential` until its `expirationTimestamp`, so a token handed out has at least this
/// long to live.
const REFRESH_MARGIN_SECS: i64 = 300;

/// The largest token file read (`--server-token-file`).
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// The variable naming the AKS token file for `--auth token`.
pub const KUBE_TOKEN_FILE_ENV: &str = "BASTION_KUBE_TOKEN_FILE";

/// Runs `bastion kube-token`.
pub async fn run(ctx: &Context, args: &KubeTokenArgs) -> CliResult<Outcome> {
    let api_version = exec_api_version(std::env::var("KUBERNETES_EXEC_INFO").ok().as_deref());
    let token = match ctx.auth() {
        AuthMethod::Token => token_from_file(args.server_token_file.as_deref())?,
        _ => {
            let cache = (!args.no_cache)
                .then(|| TokenCache::default_dir().map(TokenCache::new))
                .flatten();
            let key = cache_key(ctx);
            match cache.as_ref().and_then(|c| c.read(&key)) {
                Some(hit) => hit,
                None => {
                    let fresh = fetch(ctx).await?;
                    if let Some(cache) = &cache
                        && let Err(e) = cache.write(&key, &fresh)
                    {
                        tracing::debug!(error = %e, "the AKS token could not be cached");
                    }
                    fresh
                }
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", exec_credential(api_version, &token)).map_err(|e| {
        CliError::new(Code::Other, format!("cannot write the credential: {e}"))
            .hint("kubectl reads it from standard output; check that it is still open")
    })?;
    let _ = stdout.flush();
    Ok(Outcome::Success)
}

/// A token and when it expires (Unix seconds; `None`: unknown).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KubeToken {
    token: String,
    expires_on: Option<i64>,
}

impl std::fmt::Debug for KubeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeToken")
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl KubeToken {
    fn is_fresh(&self, now: i64) -> bool {
        self.expires_on
            .is_some_and(|exp| exp.saturating_sub(now) > REFRESH_MARGIN_SECS)
    }
}

/// The `apiVersion` kubectl asked for in `KUBERNETES_EXEC_INFO` (v1 or v1beta1); anything
/// else, unreadable or absent, gives v1.
fn exec_api_version(info: Option<&str>) -> &'static str {
    let asked = info
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|v| {
            v.get("apiVersion")
                .and_then(|a| a.as_str().map(str::to_owned))
        });
    match asked.as_deref() {
        Some(EXEC_V1BETA1) => EXEC_V1BETA1,
        _ => EXEC_V1,
    }
}

/// The `ExecCredential` kubectl reads.
fn exec_credential(api_version: &str, token: &KubeToken) -> serde_json::Value {
    let mut status = json!({ "token": token.token });
    if let Some(ts) = token
        .expires_on
        .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
    {
        status["expirationTimestamp"] = json!(ts);
    }
    json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": { "interactive": false },
        "status": status,
    })
}

/// A new token for the AKS AAD server from the `--auth` credential.
async fn fetch(ctx: &Context) -> CliResult<KubeToken> {
    let credential = ctx.credential()?;
    let token = credential
        .get_token(&[AKS_AAD_SCOPE], None)
        .await
        .map_err(|e| crate::exit::credential_error(&e.to_string()))?;
    Ok(KubeToken {
        token: token.token.secret().to_owned(),
        expires_on: Some(token.expires_on.unix_timestamp()),
    })
}

/// The claims of a JWT this needs (no signature check: the API server does that).
#[derive(Deserialize)]
struct Claims {
    aud: Option<serde_json::Value>,
    exp: Option<serde_json::Number>,
}

fn claims(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `--auth token`: the AKS token from `--server-token-file` / `BASTION_KUBE_TOKEN_FILE`. An
/// ARM token (the one `--auth token` holds) is refused with what to do instead.
fn token_from_file(path: Option<&Path>) -> CliResult<KubeToken> {
    let fix = format!(
        "give a token for the AKS API server (audience {AKS_AAD_SERVER_ID}) with --server-token-file FILE or {KUBE_TOKEN_FILE_ENV}, e.g. from `az account get-access-token --resource {AKS_AAD_SERVER_ID} --query accessToken -o tsv`, or use another --auth"
    );
    let Some(path) = path else {
        return Err(CliError::usage(
            "--auth token holds an ARM access token, which an AKS API server does not accept",
        )
        .hint(fix));
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TOKEN_FILE + 1).read_to_string(&mut text))
        .map_err(|e| {
            CliError::usage(format!(
                "cannot read the AKS token from {}: {e}",
                path.display()
            ))
            .hint(format!("check --server-token-file / {KUBE_TOKEN_FILE_ENV}"))
        })?;
    let token = text.trim();
    if token.is_empty() || text.len() as u64 > MAX_TOKEN_FILE {
        return Err(
            CliError::usage(format!("{} does not hold one access token", path.display())).hint(fix),
        );
    }
    let claims = claims(token);
    let aud = claims.as_ref().and_then(|c| match &c.aud {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str())
            .find(|a| is_aks(a))
            .or_else(|| list.iter().find_map(|v| v.as_str()))
            .map(str::to_owned),
        _ => None,
    });
    if let Some(aud) = aud.filter(|a| !is_aks(a)) {
        return Err(CliError::new(
            Code::Auth,
            format!(
                "the token in {} is for {aud}, not for the AKS API server",
                path.display()
            ),
        )
        .hint(fix));
    }
    let expires_on = claims
        .and_then(|c| c.exp)
        .and_then(|n| n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)));
    if expires_on.is_some_and(|e| e <= unix_now()) {
        return Err(CliError::new(
            Code::Auth,
            format!("the AKS token in {} has expired", path.display()),
        )
        .hint(format!("write a fresh one: {fix}")));
    }
    Ok(KubeToken {
        token: token.to_owned(),
        expires_on,
    })
}

/// Whether `aud` names the AKS AAD server (its app id, bare or as `api://`/`spn:`).
fn is_aks(aud: &str) -> bool {
    let aud = aud.trim_end_matches('/');
    let bare = aud
        .strip_prefix("api://")
        .or_else(|| aud.strip_prefix("spn:"))
        .unwrap_or(aud);
    bare.eq_ignore_ascii_case(AKS_AAD_SERVER_ID)
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// What identifies the token: the auth method, the cloud, the tenant and client id in use
/// (from the options or the `AZURE_*` variables the method reads), and the scope.
fn cache_key(ctx: &Context) -> String {
    use sha2::Digest as _;
    let (tenant, client) = match ctx.auth() {
        AuthMethod::Cli => (ctx.tenant().map(str::to_owned), None),
        AuthMethod::ManagedIdentity => (None, ctx.identity_client_id().map(str::to_owned)),
        AuthMethod::WorkloadIdentity | AuthMethod::ClientSecret => (
            non_empty_env("AZURE_TENANT_ID"),
            non_empty_env("AZURE_CLIENT_ID"),
        ),
        AuthMethod::Token => (None, None),
    };
    let material = format!(
        "v1\n{:?}\n{}\n{}\n{}\n{}\n{AKS_AAD_SCOPE}\n",
        ctx.auth(),
        ctx.cloud.arm_endpoint(),
        ctx.cloud.authority(),
        tenant.unwrap_or_default(),
        client.unwrap_or_default(),
    );
    let digest = sha2::Sha256::digest(material.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The on-disk token cache: one 0600 JSON file per key in a 0700 directory.
#[derive(Debug)]
struct TokenCache {
    dir: PathBuf,
}

impl TokenCache {
    fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// `$XDG_CACHE_HOME/bastion/kube-tokens`, else `~/.cache/bastion/kube-tokens`.
    fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|h| h.join(".cache"))
            })?;
        Some(base.join("bastion").join("kube-tokens"))
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The cached token for `key` if it is fresh, in a private directory we own.
    fn read(&self, key: &str) -> Option<KubeToken> {
        if !private_dir(&self.dir) {
            return None;
        }
        let text = std::fs::read(self.file(key)).ok()?;
        let token: KubeToken = serde_json::from_slice(&text).ok()?;
        token.is_fresh(unix_now()).then_some(token)
    }

    /// Writes `token` for `key` atomically (a 0600 temporary file in the same directory,
    /// synced, renamed over the old one).
    fn write(&self, key: &str, token: &KubeToken) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".kube-token-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        let body = serde_json::to_vec(token).map_err(std::io::Error::other)?;
        tmp.write_all(&body)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.file(key)).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Creates `dir` and its missing parents with mode 0700, and tightens `dir` itself to 0700.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        if !private_dir(dir) {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        if !private_dir(dir) {
            return Err(std::io::Error::other(format!(
                "{} is not a private directory of this user",
                dir.display()
            )));
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Whether `dir` is a real directory (not a link), owned by this user, mode 0700.
fn private_dir(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        std::fs::symlink_metadata(dir).is_ok_and(|m| {
            m.is_dir()
                && m.uid() == rustix::process::geteuid().as_raw()
                && m.permissions().mode() & 0o077 == 0
        })
    }
    #[cfg(not(unix))]
    dir.is_dir()
}

// ----- the kubeconfig side ----------------------------------------------------------------------

/// Sets up the users of an AAD cluster's kubeconfig (those that exec kubelogin) for the
/// credential in use: `--kube-auth bastion` (the default) puts this binary's `kube-token` in
/// place of kubelogin, with the global options in effect; `--kube-auth kubelogin` keeps
/// kubelogin with the `--login` mode matching `--auth`. A kubeconfig without kubelogin users
/// is left alone.
pub fn configure_aad_users(
    ctx: &Context,
    kube_auth: KubeAuth,
    kc: &mut Kubeconfig,
    out: &Output,
) -> CliResult<()> {
    if kc.kubelogin_users().is_empty() {
        return Ok(());
    }
    match kube_auth {
        KubeAuth::Bastion => {
            let plugin = plugin(ctx)?;
            let users = kc.use_exec_plugin(&plugin);
            out.info(format!(
                "AAD cluster: {} get{} tokens from `bastion kube-token --auth {}`",
                users.join(", "),
                if users.len() == 1 { "s" } else { "" },
                auth_name(ctx.auth())
            ));
            if ctx.auth() == AuthMethod::Token
                && !plugin.args.iter().any(|a| a == "--server-token-file")
            {
                out.warn(format!(
                    "--auth token holds an ARM token, which the cluster does not accept: set {KUBE_TOKEN_FILE_ENV} to a file with an AKS token (audience {AKS_AAD_SERVER_ID}) before running kubectl, or use another --auth"
                ));
            }
        }
        KubeAuth::Kubelogin => {
            let login = match ctx.auth() {
                AuthMethod::Cli => KubeloginLogin::AzureCli,
                AuthMethod::ManagedIdentity => KubeloginLogin::Msi {
                    client_id: ctx.identity_client_id().map(str::to_owned),
                },
                AuthMethod::WorkloadIdentity => KubeloginLogin::WorkloadIdentity,
                AuthMethod::ClientSecret => KubeloginLogin::ServicePrincipal,
                AuthMethod::Token => {
                    out.warn(
                        "kubelogin cannot use --auth token's ARM token: the kubeconfig uses kubelogin --login azurecli (your az login); drop --kube-auth kubelogin to use bastion kube-token instead",
                    );
                    KubeloginLogin::AzureCli
                }
            };
            let users = kc.convert_kubelogin(&login);
            if !users.is_empty() {
                out.info(format!(
                    "Converted {} to kubelogin --login {}",
                    users.join(", "),
                    login.as_str()
                ));
            }
            if login == KubeloginLogin::ServicePrincipal {
                out.info(
                    "kubelogin --login spn reads AZURE_CLIENT_ID and AZURE_CLIENT_SECRET from kubectl's environment",
                );
            }
        }
    }
    Ok(())
}

fn auth_name(auth: AuthMethod) -> &'static str {
    match auth {
        AuthMethod::Cli => "cli",
        AuthMethod::ManagedIdentity => "managed-identity",
        AuthMethod::WorkloadIdentity => "workload-identity",
        AuthMethod::ClientSecret => "client-secret",
        AuthMethod::Token => "token",
    }
}

/// The exec plugin: this binary (absolute path), `kube-token` and the global options in
/// effect that decide the token (never a secret: no `--token`).
fn plugin(ctx: &Context) -> CliResult<ExecPlugin> {
    let exe = std::env::current_exe().map_err(|e| {
        CliError::new(
            Code::Other,
            format!("cannot find the path of this bastion binary: {e}"),
        )
        .hint("run bastion by its full path, or pass --kube-auth kubelogin")
    })?;
    let mut args = vec![
        "kube-token".to_owned(),
        "--auth".to_owned(),
        auth_name(ctx.auth()).to_owned(),
    ];
    args.extend(ctx.plugin_args());
    if ctx.auth() == AuthMethod::Token
        && let Some(file) = non_empty_env(KUBE_TOKEN_FILE_ENV)
    {
        let file = std::path::absolute(&file).unwrap_or_else(|_| PathBuf::from(&file));
        args.push("--server-token-file".to_owned());
        args.push(file.display().to_string());
    }
    Ok(ExecPlugin {
        command: exe.display().to_string(),
        args,
        env: ctx
            .custom_authority()
            .map(|a| vec![("AZURE_AUTHORITY_HOST".to_owned(), a)])
            .unwrap_or_default(),
        install_hint: Some(
            "bastion is not at this path any more: run `bastion aks credentials` again to update the kubeconfig".to_owned(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", b(r#"{"alg":"none"}"#), b(claims))
    }

    #[test]
    fn exec_info_chooses_the_api_version_and_never_fails() {
        assert_eq!(exec_api_version(None), EXEC_V1);
        assert_eq!(exec_api_version(Some("not json")), EXEC_V1);
        assert_eq!(
            exec_api_version(Some(
                r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#
            )),
            EXEC_V1BETA1
        );
        assert_eq!(
            exec_api_version(Some(r#"{"apiVersion":"something/else"}"#)),
            EXEC_V1
        );
    }

    #[test]
    fn the_credential_has_the_token_and_its_expiry() {
        let c = exec_credential(
            EXEC_V1,
            &KubeToken {
                token: "t".into(),
                expires_on: Some(1_800_000_000),
            },
        );
        assert_eq!(c["kind"], "ExecCredential");
        assert_eq!(c["apiVersion"], EXEC_V1);
        assert_eq!(c["status"]["token"], "t");
        assert_eq!(c["status"]["expirationTimestamp"], "2027-01-15T08:00:00Z");
        let c = exec_credential(
            EXEC_V1,
            &KubeToken {
                token: "t".into(),
                expires_on: None,
            },
        );
        assert!(c["status"].get("expirationTimestamp").is_none());
    }

    #[test]
    fn freshness_keeps_a_margin() {
        let t = |exp| KubeToken {
            token: String::new(),
            expires_on: Some(exp),
        };
        assert!(t(1000 + REFRESH_MARGIN_SECS + 1).is_fresh(1000));
        assert!(!t(1000 + REFRESH_MARGIN_SECS).is_fresh(1000));
        assert!(!t(10).is_fresh(1000));
    }

    #[test]
    fn token_files_must_hold_an_unexpired_aks_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        let err = token_from_file(None).unwrap_err();
        assert!(err.to_string().contains("--server-token-file"), "{err}");
        std::fs::write(
            &file,
            jwt(r#"{"aud":"https://management.azure.com/","exp":4102444800}"#),
        )
        .unwrap();
        let err = token_from_file(Some(&file)).unwrap_err();
        assert_eq!(err.code, Code::Auth);
        assert!(err.to_string().contains("management.azure.com"), "{err}");
        std::fs::write(
            &file,
            jwt(&format!(r#"{{"aud":"{AKS_AAD_SERVER_ID}","exp":10}}"#)),
        )
        .unwrap();
        assert!(
            token_from_file(Some(&file))
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
        let good = jwt(&format!(
            r#"{{"aud":"{AKS_AAD_SERVER_ID}","exp":4102444800}}"#
        ));
        std::fs::write(&file, format!("{good}\n")).unwrap();
        let t = token_from_file(Some(&file)).unwrap();
        assert_eq!(t.token, good);
        assert_eq!(t.expires_on, Some(4_102_444_800));
    }

    #[test]
    fn the_cache_is_private_and_atomic() {
        use std::os::unix::fs::PermissionsExt as _;
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("bastion").join("kube-tokens");
        let cache = TokenCache::new(dir.clone());
        assert!(cache.read("k").is_none());
        let fresh = KubeToken {
            token: "tok".into(),
            expires_on: Some(unix_now() + 3600),
        };
        cache.write("k", &fresh).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(dir.parent().unwrap()), 0o700);
        assert_eq!(mode(&cache.file("k")), 0o600);
        assert_eq!(cache.read("k"), Some(fresh));
        // Only the token file: no temporary file left.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // A stale entry is a miss; a corrupt one too.
        let stale = KubeToken {
            token: "old".into(),
            expires_on: Some(unix_now() + 60),
        };
        cache.write("k", &stale).unwrap();
        assert!(cache.read("k").is_none());
        std::fs::write(cache.file("k"), "{not json").unwrap();
        assert!(cache.read("k").is_none());
        // A directory others can read is tightened before use, and ignored until then.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        cache.write("k", &stale).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(cache.read("k").is_none());
    }
}
