//! `bastion aks credentials`: az aks get-credentials without az and without a tunnel, against
//! the sandbox's ARM.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use bastion_emulator::sandbox::{PRIVATE_CLUSTER_PUBLIC_FQDN, PRIVATE_FQDN};
use common::{ArmSandbox, assert_clean_error, assert_success, command, myaks_args, run_command};
use yaml_serde::Value;

const OTHER: &str = "apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://other.example:6443
contexts:
- name: other
  context:
    cluster: other
    user: other-user
current-context: other
preferences:
  colors: true
users:
- name: other-user
  user:
    token: other-token
";

/// `bastion aks credentials -n myaks -g aks-rg ARGS...` as the full-access user.
async fn credentials(s: &ArmSandbox, args: &[&str]) -> std::process::Output {
    run_command(command(
        &myaks_args(&["aks", "credentials"], args),
        &s.env(),
    ))
    .await
}

fn read(path: &Path) -> Value {
    yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn names(doc: &Value, section: &str) -> Vec<String> {
    doc[section]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn queries(s: &ArmSandbox, action: &str) -> Vec<String> {
    s.sandbox
        .arm()
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(action))
        .map(|r| r.query.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_a_new_file_with_mode_0600() {
    let s = ArmSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kube").join("config");
    let out = credentials(&s, &["--file", path.to_str().unwrap()]).await;
    let (stdout, _) = assert_success(&out);
    assert!(stdout.contains("Merged \"myaks\""), "{stdout}");
    let doc = read(&path);
    assert_eq!(doc["current-context"].as_str(), Some("myaks"));
    assert_eq!(names(&doc, "contexts"), ["myaks"]);
    assert!(
        doc["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .contains(PRIVATE_FQDN)
    );
    assert_eq!(mode(&path), 0o600);
    // No tunnel: no Bastion session was opened.
    s.sandbox.bastion().assert_no_orphans();
    assert_eq!(queries(&s, "/listClusterUserCredential").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_through_a_symlink_keeping_entries_and_mode() {
    let s = ArmSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real-config");
    std::fs::write(&real, OTHER).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = dir.path().join("config");
    std::os::unix::fs::symlink("real-config", &link).unwrap();

    // The default file is KUBECONFIG's first entry.
    let mut cmd = command(&myaks_args(&["aks", "credentials"], &[]), &s.env());
    let list = std::env::join_paths([link.clone(), dir.path().join("second")]).unwrap();
    cmd.env("KUBECONFIG", list);
    assert_success(&run_command(cmd).await);

    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    assert!(!dir.path().join("second").exists());
    let doc = read(&real);
    assert_eq!(names(&doc, "clusters"), ["other", "myaks"]);
    assert_eq!(names(&doc, "contexts"), ["other", "myaks"]);
    assert_eq!(names(&doc, "users").len(), 2);
    assert_eq!(doc["current-context"].as_str(), Some("myaks"));
    assert_eq!(doc["preferences"]["colors"].as_bool(), Some(true));
    assert_eq!(
        doc["users"][0]["user"]["token"].as_str(),
        Some("other-token")
    );
    assert_eq!(mode(&real), 0o644);
    // Nothing left next to it.
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["config", "real-config"]);

    // The same credentials again are no conflict.
    let out = credentials(&s, &["--file", link.to_str().unwrap()]).await;
    assert_success(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_different_entry_without_overwrite_existing() {
    let s = ArmSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, OTHER).unwrap();
    let file = path.to_str().unwrap();

    // `--context other` names the new context like an existing, different one.
    let out = credentials(&s, &["--file", file, "--context", "other"]).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("clusters/other"), "{line}");
    assert!(line.contains("--overwrite-existing"), "{line}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), OTHER);

    let out = credentials(
        &s,
        &["--file", file, "--context", "other", "--overwrite-existing"],
    )
    .await;
    assert_success(&out);
    let doc = read(&path);
    assert_eq!(names(&doc, "clusters"), ["other"]);
    assert_eq!(names(&doc, "contexts"), ["other"]);
    assert_eq!(doc["current-context"].as_str(), Some("other"));
    assert!(
        doc["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .contains(PRIVATE_FQDN)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_dash_prints_yaml_on_stdout() {
    let s = ArmSandbox::start().await;
    let home = tempfile::tempdir().unwrap();
    let mut cmd = command(
        &myaks_args(&["aks", "credentials"], &["--file", "-", "--public-fqdn"]),
        &s.env(),
    );
    cmd.env("HOME", home.path()).env_remove("KUBECONFIG");
    let out = run_command(cmd).await;
    let (stdout, _) = assert_success(&out);
    let doc: Value = yaml_serde::from_str(&stdout).unwrap();
    assert_eq!(doc["current-context"].as_str(), Some("myaks"));
    let server = doc["clusters"][0]["cluster"]["server"].as_str().unwrap();
    assert!(server.contains(PRIVATE_CLUSTER_PUBLIC_FQDN), "{server}");
    assert!(queries(&s, "/listClusterUserCredential")[0].contains("server-fqdn=public"));
    // Nothing written to the default file.
    assert!(!home.path().join(".kube").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_context_and_format() {
    let s = ArmSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    let file = path.to_str().unwrap();

    let out = credentials(&s, &["--file", file, "--admin"]).await;
    assert_success(&out);
    let doc = read(&path);
    assert_eq!(doc["current-context"].as_str(), Some("myaks-admin"));
    assert!(
        doc["users"][0]["name"]
            .as_str()
            .unwrap()
            .starts_with("clusterAdmin")
    );
    assert_eq!(queries(&s, "/listClusterAdminCredential").len(), 1);

    // --context renames the context and its cluster; the admin one stays.
    let out = credentials(
        &s,
        &["--file", file, "--context", "prod", "--format", "exec"],
    )
    .await;
    assert_success(&out);
    let doc = read(&path);
    assert_eq!(doc["current-context"].as_str(), Some("prod"));
    assert_eq!(names(&doc, "contexts"), ["myaks-admin", "prod"]);
    assert_eq!(names(&doc, "clusters"), ["myaks", "prod"]);
    assert_eq!(
        doc["contexts"][1]["context"]["cluster"].as_str(),
        Some("prod")
    );
    let user = queries(&s, "/listClusterUserCredential");
    assert!(user[0].contains("format=exec"), "{user:?}");
}
