//! `bastion aks credentials` for the sandbox's AAD cluster writes, by default, an exec user
//! running this binary's `kube-token` with the `--auth` in effect (never a secret), and with
//! `--kube-auth kubelogin` keeps kubelogin with the `--login` mode of that `--auth`.

use crate::aad;
use crate::common;

use aad::{AuthEnv, METHODS, aadaks_args, args_of, exec_of};
use bastion_emulator::sandbox::{
    MANAGED_IDENTITY_CLIENT_ID, SP_CLIENT_SECRET, TENANT, WORKLOAD_FEDERATED_TOKEN,
};
use common::{BIN, assert_success, run_command};

const SERVER_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";

/// Runs `bastion --auth METHOD aks credentials -n aadaks -g aks-rg --file F EXTRA...` and
/// returns F's content and stderr.
async fn credentials(auth: &AuthEnv, method: &str, extra: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    let file_arg = file.display().to_string();
    let mut args = vec!["--file", file_arg.as_str()];
    args.extend_from_slice(extra);
    let out = run_command(auth.command(method, &aadaks_args(&["aks", "credentials"], &args))).await;
    let (_, stderr) = assert_success(&out);
    let text = std::fs::read_to_string(&file).unwrap();
    for secret in [SP_CLIENT_SECRET, WORKLOAD_FEDERATED_TOKEN] {
        assert!(
            !text.contains(secret),
            "a secret in the kubeconfig:\n{text}"
        );
    }
    (text, stderr)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|a| (*a).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_user_is_bastion_kube_token_with_the_auth_in_effect() {
    let sandbox = common::ArmSandbox::start().await;
    let bin = std::fs::canonicalize(BIN).unwrap();
    for method in METHODS {
        let auth = AuthEnv::new(&sandbox, method);
        let (text, _) = credentials(&auth, method, &[]).await;
        let exec = exec_of(&text);
        assert_eq!(
            exec["command"].as_str(),
            Some(bin.to_str().unwrap()),
            "{text}"
        );
        assert_eq!(
            exec["apiVersion"].as_str(),
            Some("client.authentication.k8s.io/v1")
        );
        assert_eq!(exec["interactiveMode"].as_str(), Some("Never"));
        assert_eq!(exec["provideClusterInfo"].as_bool(), Some(false));
        let args = args_of(&exec);
        assert_eq!(args[..3], s(&["kube-token", "--auth", method]), "{args:?}");
        assert!(!args.iter().any(|a| a == "--token"), "{args:?}");
        // The options that decide the token: the emulated cloud, its CA (absolute), resolves.
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .map(|i| args[i + 1].clone())
        };
        assert_eq!(
            after("--arm-endpoint"),
            Some(sandbox.sandbox.arm_endpoint().to_string())
        );
        let ca = after("--ca-file").unwrap();
        assert!(std::path::Path::new(&ca).is_absolute(), "{ca}");
        assert!(
            args.iter().any(|a| a.starts_with("login.emulator.test=")),
            "{args:?}"
        );
        if method == "managed-identity" {
            assert_eq!(
                after("--identity-client-id").as_deref(),
                Some(MANAGED_IDENTITY_CLIENT_ID)
            );
        }
        // The emulated cloud's authority goes to the plugin's environment.
        assert_eq!(
            exec["env"][0]["name"].as_str(),
            Some("AZURE_AUTHORITY_HOST"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelogin_gets_the_login_mode_of_each_auth() {
    let sandbox = common::ArmSandbox::start().await;
    let env = [
        "--environment",
        "AzurePublicCloud",
        "--server-id",
        SERVER_ID,
    ];
    let expected: [(&str, Vec<String>); 4] = [
        (
            "managed-identity",
            [
                &["get-token"][..],
                &env,
                &["--login", "msi", "--client-id", MANAGED_IDENTITY_CLIENT_ID],
            ]
            .concat()
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        ),
        (
            "client-secret",
            [
                &["get-token"][..],
                &env,
                &["--tenant-id", TENANT, "--login", "spn"],
            ]
            .concat()
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        ),
        (
            "workload-identity",
            [&["get-token"][..], &env, &["--login", "workloadidentity"]]
                .concat()
                .iter()
                .map(|a| (*a).to_owned())
                .collect(),
        ),
        (
            "cli",
            [
                &["get-token"][..],
                &env,
                &["--tenant-id", TENANT, "--login", "azurecli"],
            ]
            .concat()
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        ),
    ];
    for (method, args) in expected {
        let auth = AuthEnv::new(&sandbox, method);
        let (text, _) = credentials(&auth, method, &["--kube-auth", "kubelogin"]).await;
        let exec = exec_of(&text);
        assert_eq!(exec["command"].as_str(), Some("kubelogin"), "{text}");
        assert_eq!(args_of(&exec), args, "{method}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_token_the_aks_token_file_is_named_and_kubelogin_warns() {
    let sandbox = common::ArmSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    let run = |extra: Vec<String>, env: Vec<(String, String)>| {
        let mut args = vec![
            "aks".to_owned(),
            "credentials".into(),
            "-n".into(),
            "aadaks".into(),
            "-g".into(),
            "aks-rg".into(),
            "--overwrite-existing".into(),
            "--file".into(),
            file.display().to_string(),
        ];
        args.extend(extra);
        let mut cmd = common::command(&[], &sandbox.env());
        cmd.args(&args).envs(env);
        run_command(cmd)
    };
    // The plugin, naming the AKS token file given in the environment (absolute), not a token.
    let out = run(
        vec![],
        vec![("BASTION_KUBE_TOKEN_FILE".into(), "aks-token".into())],
    )
    .await;
    assert_success(&out);
    let text = std::fs::read_to_string(&file).unwrap();
    let args = args_of(&exec_of(&text));
    let i = args
        .iter()
        .position(|a| a == "--server-token-file")
        .unwrap_or_else(|| panic!("{args:?}"));
    assert!(std::path::Path::new(&args[i + 1]).is_absolute());
    assert!(args[i + 1].ends_with("aks-token"));
    assert!(!text.contains(&sandbox.sandbox.default_token()));
    // Without it: a warning saying what to set.
    let out = run(vec![], vec![]).await;
    let (_, stderr) = assert_success(&out);
    assert!(stderr.contains("BASTION_KUBE_TOKEN_FILE"), "{stderr}");
    // kubelogin cannot use an ARM token: azurecli, with a warning.
    let out = run(vec!["--kube-auth".into(), "kubelogin".into()], vec![]).await;
    let (_, stderr) = assert_success(&out);
    assert!(
        stderr.contains("kubelogin cannot use --auth token"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let args = args_of(&exec_of(&text));
    assert_eq!(
        args.last().map(String::as_str),
        Some("azurecli"),
        "{args:?}"
    );
}
