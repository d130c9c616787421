//! Shared by the AAD cluster tests: the environment of each `--auth` method against the
//! sandbox's identity emulator, a fake `az`, and a private cache directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bastion_emulator::sandbox::{
    FULL_ACCESS_USER, MANAGED_IDENTITY_CLIENT_ID, MANAGED_IDENTITY_OID, SP_OID, TENANT,
    WORKLOAD_FEDERATED_TOKEN, WORKLOAD_OID,
};
use bastion_emulator::{AKS_SERVER_APP_ID, TestClaims};

use crate::common::ArmSandbox;

/// The `--auth` methods whose tokens the sandbox can issue (`cli` through [`FakeAz`]).
pub const METHODS: [&str; 4] = [
    "managed-identity",
    "client-secret",
    "workload-identity",
    "cli",
];

/// The AAD cluster's arguments: `LEADING... -n aadaks -g aks-rg ARGS...`.
pub fn aadaks_args<'a>(leading: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    let mut all = leading.to_vec();
    all.extend_from_slice(&["-n", "aadaks", "-g", "aks-rg"]);
    all.extend_from_slice(args);
    all
}

/// What a test needs to run `bastion --auth METHOD ...` against the sandbox: the environment
/// (the sandbox's, without its static token, plus the method's variables and a private
/// `XDG_CACHE_HOME`) and the temporary files behind it.
pub struct AuthEnv {
    /// The environment.
    pub env: Vec<(String, String)>,
    /// The private cache home (`XDG_CACHE_HOME`).
    pub cache: tempfile::TempDir,
    /// The fake az, for `cli`.
    pub az: Option<FakeAz>,
    _files: tempfile::TempDir,
}

impl AuthEnv {
    /// The environment for `method` (one of [`METHODS`]).
    pub fn new(s: &ArmSandbox, method: &str) -> Self {
        let files = tempfile::tempdir().unwrap();
        let federated = files.path().join("federated-token");
        std::fs::write(&federated, WORKLOAD_FEDERATED_TOKEN).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = s
            .env()
            .into_iter()
            .filter(|(k, _)| k != "BASTION_TOKEN" && k != "BASTION_AUTH")
            .collect();
        env.extend(s.sandbox.identity_env(method, Some(&federated)));
        env.push(("XDG_CACHE_HOME".into(), cache.path().display().to_string()));
        let az = (method == "cli").then(|| {
            let az = FakeAz::new();
            env.push(("PATH".into(), az.path_var()));
            az
        });
        Self {
            env,
            cache,
            az,
            _files: files,
        }
    }

    /// `bastion --auth METHOD ARGS...` with this environment (and, for
    /// `managed-identity`, `--identity-client-id` of the sandbox's user-assigned identity).
    pub fn command(&self, method: &str, args: &[&str]) -> tokio::process::Command {
        let mut all = auth_args(method);
        all.extend_from_slice(args);
        crate::common::command(&all, &self.env)
    }

    /// The token cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache.path().join("bastion").join("kube-tokens")
    }
}

/// A fake `az` on `PATH`: answers `az account get-access-token --scope S` with a token for the
/// sandbox's full-access user whose audience is S's (ARM or the AKS AAD server), and records
/// each call.
pub struct FakeAz {
    dir: tempfile::TempDir,
}

impl FakeAz {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let arm = TestClaims::new(TENANT, FULL_ACCESS_USER).mint();
        let aks = TestClaims::new(TENANT, FULL_ACCESS_USER)
            .audience(AKS_SERVER_APP_ID)
            .mint();
        let exp = TestClaims::new(TENANT, FULL_ACCESS_USER).exp;
        let log = dir.path().join("calls");
        let script = format!(
            r#"#!/bin/sh
echo "$*" >> '{log}'
scope=""
while [ $# -gt 0 ]; do
  case "$1" in --scope) scope="$2"; shift ;; esac
  shift
done
case "$scope" in
  {AKS_SERVER_APP_ID}/.default) token='{aks}' ;;
  https://management.*) token='{arm}' ;;
  *) echo "ERROR: unknown scope $scope" >&2; exit 1 ;;
esac
printf '{{"accessToken":"%s","expiresOn":"2030-01-01 00:00:00.000000","expires_on":{exp},"subscription":"x","tenant":"{TENANT}","tokenType":"Bearer"}}\n' "$token"
"#,
            log = log.display()
        );
        let az = dir.path().join("az");
        std::fs::write(&az, script).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    /// `PATH` with the fake az first.
    fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into())
        )
    }

    /// The argument lines of every call so far.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// `--auth METHOD`, with `--identity-client-id` of the user-assigned identity for
/// `managed-identity`.
pub fn auth_args(method: &str) -> Vec<&str> {
    let mut args = vec!["--auth", method];
    if method == "managed-identity" {
        args.extend(["--identity-client-id", MANAGED_IDENTITY_CLIENT_ID]);
    }
    args
}

/// The object id the tokens of `method` carry.
pub fn principal_of(method: &str) -> &'static str {
    match method {
        "managed-identity" => MANAGED_IDENTITY_OID,
        "client-secret" => SP_OID,
        "workload-identity" => WORKLOAD_OID,
        "cli" => FULL_ACCESS_USER,
        _ => panic!("no principal for {method}"),
    }
}

/// The real kubectl, if installed.
pub fn kubectl() -> Option<&'static str> {
    ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// The kubeconfig's first user's exec plugin.
pub fn exec_of(kubeconfig: &str) -> yaml_serde::Value {
    let doc: yaml_serde::Value = yaml_serde::from_str(kubeconfig).unwrap();
    doc["users"][0]["user"]["exec"].clone()
}

/// The exec plugin's arguments.
pub fn args_of(exec: &yaml_serde::Value) -> Vec<String> {
    exec["args"]
        .as_sequence()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
