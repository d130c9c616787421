//! `bastion kube-token`, the exec credential plugin: its stdout is one `ExecCredential` with
//! an AKS AAD token (and nothing else), the token is cached privately until shortly before it
//! expires, `KUBERNETES_EXEC_INFO` is honoured, and a missing or wrong credential is one clean
//! error line on stderr.

use crate::aad;
use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use aad::AuthEnv;
use bastion_emulator::{AKS_SERVER_APP_ID, GrantKind, TestClaims, jwt};
use common::{ArmSandbox, assert_clean_error, assert_success, run_command};
use serde_json::Value;

/// Runs `bastion --auth METHOD kube-token ARGS...` and returns the ExecCredential it printed.
async fn kube_token(auth: &AuthEnv, method: &str, args: &[&str], info: Option<&str>) -> Value {
    let mut all = vec!["kube-token"];
    all.extend_from_slice(args);
    let mut cmd = auth.command(method, &all);
    if let Some(info) = info {
        cmd.env("KUBERNETES_EXEC_INFO", info);
    }
    exec_credential_of(cmd).await
}

/// Runs a `kube-token` command, checks that it printed one ExecCredential and nothing else.
async fn exec_credential_of(cmd: tokio::process::Command) -> Value {
    let out = run_command(cmd).await;
    let (stdout, stderr) = assert_success(&out);
    assert!(stderr.trim().is_empty(), "nothing on stderr: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "one line on stdout: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn aks_token_requests(s: &ArmSandbox) -> usize {
    s.sandbox
        .identity()
        .requests()
        .iter()
        .filter(|r| r.scope.starts_with(AKS_SERVER_APP_ID) && r.status == 200)
        .count()
}

const EXEC_INFO_V1: &str = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prints_an_exec_credential_and_the_second_run_uses_the_cache() {
    let s = ArmSandbox::start().await;
    let auth = AuthEnv::new(&s, "client-secret");
    let first = kube_token(&auth, "client-secret", &[], Some(EXEC_INFO_V1)).await;
    assert_eq!(first["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(first["kind"], "ExecCredential");
    let token = first["status"]["token"].as_str().unwrap();
    let claims = jwt::decode(token).unwrap();
    assert_eq!(claims.aud, AKS_SERVER_APP_ID);
    assert_eq!(claims.oid, aad::principal_of("client-secret"));
    let expiry = first["status"]["expirationTimestamp"].as_str().unwrap();
    let expiry =
        time::OffsetDateTime::parse(expiry, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert_eq!(expiry.unix_timestamp(), claims.exp);
    assert_eq!(aks_token_requests(&s), 1);

    // The cache: a private directory, one 0600 file, and no second request.
    let dir = auth.cache_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode(&files[0].path()), 0o600);
    let second = kube_token(&auth, "client-secret", &[], None).await;
    assert_eq!(second["status"]["token"], first["status"]["token"]);
    assert_eq!(aks_token_requests(&s), 1, "the second run asked again");

    // `--no-cache` asks again; another identity (a managed identity) has its own entry.
    kube_token(&auth, "client-secret", &["--no-cache"], None).await;
    assert_eq!(aks_token_requests(&s), 2);
    let mi = AuthEnv::new(&s, "managed-identity");
    let mut cmd = mi.command("managed-identity", &["kube-token"]);
    cmd.env("XDG_CACHE_HOME", auth.cache.path());
    let other = exec_credential_of(cmd).await;
    assert_ne!(other["status"]["token"], first["status"]["token"]);
    assert_eq!(aks_token_requests(&s), 3);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_close_to_its_expiry_is_fetched_again() {
    let s = ArmSandbox::start().await;
    // Two minutes: inside the five-minute margin, so never handed out from the cache.
    s.sandbox.identity().set_token_ttl(Duration::from_secs(120));
    let auth = AuthEnv::new(&s, "workload-identity");
    kube_token(&auth, "workload-identity", &[], None).await;
    kube_token(&auth, "workload-identity", &[], None).await;
    let issued = s.sandbox.identity().requests();
    assert_eq!(aks_token_requests(&s), 2, "{issued:?}");
    assert!(issued.iter().all(|r| r.kind == GrantKind::ClientAssertion));
    // A long-lived one again: cached from now on.
    s.sandbox
        .identity()
        .set_token_ttl(Duration::from_secs(3600));
    kube_token(&auth, "workload-identity", &[], None).await;
    kube_token(&auth, "workload-identity", &[], None).await;
    assert_eq!(aks_token_requests(&s), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_info_is_honoured_whatever_it_holds() {
    let s = ArmSandbox::start().await;
    let auth = AuthEnv::new(&s, "managed-identity");
    let beta = kube_token(
        &auth,
        "managed-identity",
        &[],
        Some(r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}"#),
    )
    .await;
    assert_eq!(beta["apiVersion"], "client.authentication.k8s.io/v1beta1");
    let garbage = kube_token(&auth, "managed-identity", &[], Some("{not json")).await;
    assert_eq!(garbage["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(garbage["status"]["token"], beta["status"]["token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_token_it_needs_an_aks_token_file() {
    let s = ArmSandbox::start().await;
    let auth = AuthEnv::new(&s, "client-secret");
    let dir = tempfile::tempdir().unwrap();
    // No AKS token: the ARM token of --auth token cannot be used.
    let mut cmd = common::command(&["--auth", "token", "kube-token"], &s.env());
    cmd.env("XDG_CACHE_HOME", auth.cache.path());
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("BASTION_KUBE_TOKEN_FILE"), "{line}");
    assert!(out.stdout.is_empty());
    // An ARM token in the file: refused, naming its audience.
    let file = dir.path().join("aks-token");
    std::fs::write(&file, s.sandbox.default_token()).unwrap();
    let mut cmd = common::command(&["--auth", "token", "kube-token"], &s.env());
    cmd.env("BASTION_KUBE_TOKEN_FILE", &file);
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 5);
    assert!(line.contains("https://management.azure.com/"), "{line}");
    assert!(out.stdout.is_empty());
    // An AKS token: printed as it is, with its expiry; no token endpoint involved.
    let aks = TestClaims::new(bastion_emulator::sandbox::TENANT, "alice")
        .audience(AKS_SERVER_APP_ID)
        .mint();
    std::fs::write(&file, format!("{aks}\n")).unwrap();
    let mut cmd = common::command(
        &[
            "--auth",
            "token",
            "kube-token",
            "--server-token-file",
            file.to_str().unwrap(),
        ],
        &s.env(),
    );
    cmd.env("XDG_CACHE_HOME", auth.cache.path());
    let out = run_command(cmd).await;
    let (stdout, _) = assert_success(&out);
    let cred: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(cred["status"]["token"], aks.as_str());
    assert!(cred["status"]["expirationTimestamp"].is_string());
    assert!(s.sandbox.identity().requests().is_empty());
    assert!(!auth.cache_dir().exists(), "a token file is never cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_is_one_clean_error() {
    let s = ArmSandbox::start().await;
    // client-secret without its variables.
    let auth = AuthEnv::new(&s, "none");
    let out = run_command(auth.command("client-secret", &["kube-token"])).await;
    let line = assert_clean_error(&out, 5);
    assert!(line.contains("AZURE_CLIENT_SECRET"), "{line}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    // A wrong secret: the issuer's refusal, still nothing on stdout and nothing cached.
    let mut env = AuthEnv::new(&s, "client-secret");
    for (k, v) in env.env.iter_mut() {
        if k == "AZURE_CLIENT_SECRET" {
            *v = "wrong".into();
        }
    }
    let out = run_command(env.command("client-secret", &["kube-token"])).await;
    // The credential error with its guide (what was tried, and the fixes), as for any command.
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("error: {}", common::CREDENTIAL_ERROR)),
        "{stderr}"
    );
    assert!(stderr.contains("AADSTS7000215"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert!(!env.cache_dir().exists() || std::fs::read_dir(env.cache_dir()).unwrap().count() == 0);
    assert!(
        !stderr.contains("wrong"),
        "the secret is not repeated: {stderr}"
    );
}
