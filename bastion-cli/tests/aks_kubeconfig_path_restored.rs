//! `bastion aks --kubeconfig-path FILE`: while the command runs, `KUBECONFIG` lists the tunnel's
//! kubeconfig first (its context current, `myaks` pointing at the tunnel) and then the user's
//! file (their other clusters still there); the user's file is never written, so after exit it
//! is exactly as it was. With `--write-kubeconfig-in-place` the file itself is merged into and
//! pointed at the tunnel while the command runs, and put back byte for byte on exit. (Every
//! other way of ending is in aks_users_kubeconfig_untouched.rs.)

use crate::common;

use std::path::Path;

use bastion_arm::Kubeconfig;
use bastion_emulator::sandbox::PRIVATE_FQDN;
use common::{ArmSandbox, assert_success, run_command};

const EXISTING: &str = "apiVersion: v1
kind: Config
clusters:
- cluster: {server: 'https://other.example.test:6443'}
  name: other
contexts:
- context: {cluster: other, user: other-user}
  name: other
current-context: other
users:
- name: other-user
  user: {token: not-a-real-token}
";

/// The `server:` lines of every file in `KUBECONFIG`, in order, each after `== FILE`.
const SHOW: &str = "echo \"KUBECONFIG=$KUBECONFIG\"; IFS=:; for f in $KUBECONFIG; do \
     echo \"== $f\"; grep -E 'server:|tls-server-name:|current-context:' \"$f\"; done";

fn kubectl() -> Option<&'static str> {
    let found = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "kubectl is required under CI"
    );
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_kubeconfig_is_listed_after_the_tunnels_and_never_written() {
    let s = ArmSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, EXISTING).unwrap();

    let out = run_command(s.aks(&[
        "--kubeconfig-path",
        path.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        SHOW,
    ]))
    .await;
    let (stdout, stderr) = assert_success(&out);
    // KUBECONFIG = the tunnel's file, then the user's.
    let listed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("KUBECONFIG="))
        .unwrap();
    let files: Vec<&str> = listed.split(':').collect();
    assert_eq!(files.len(), 2, "{stdout}");
    assert_eq!(files[1], path.to_str().unwrap());
    let mut sections = stdout.split("== ").skip(1);
    let tunnel = sections.next().unwrap();
    assert!(tunnel.contains("server: https://localhost:"), "{stdout}");
    assert!(
        tunnel.contains(&format!("tls-server-name: {PRIVATE_FQDN}")),
        "{stdout}"
    );
    assert!(tunnel.contains("current-context: myaks"), "{stdout}");
    let theirs = sections.next().unwrap();
    assert!(
        theirs.contains("https://other.example.test:6443"),
        "{stdout}"
    );
    assert!(stderr.contains("your file is only read"), "{stderr}");

    // After: byte for byte what it was; the tunnel's file is gone.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), EXISTING);
    assert!(!Path::new(files[0]).exists());
    s.sandbox.bastion().assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_merges_both_files_and_writes_only_the_tunnels() {
    let s = ArmSandbox::start().await;
    let Some(kubectl) = kubectl() else {
        eprintln!("\n*** kubectl is NOT installed: skipped ***\n");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, EXISTING).unwrap();
    // The tunnel's context is current and reaches the cluster; the user's context is there too;
    // switching contexts writes to the first file (the tunnel's), not to the user's.
    let script = format!(
        "set -e; {k} config current-context; {k} config get-contexts -o name | sort | tr '\\n' ' '; echo; \
         {k} get pods; {k} config use-context other >/dev/null; {k} config current-context",
        k = kubectl
    );
    let out = run_command(s.aks(&[
        "--kubeconfig-path",
        path.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &script,
    ]))
    .await;
    let (stdout, _) = assert_success(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "myaks", "{stdout}");
    assert_eq!(lines[1].trim(), "myaks other", "{stdout}");
    assert!(stdout.contains("hello-web-7c9d8f6b5d-x2x7q"), "{stdout}");
    assert_eq!(lines.last(), Some(&"other"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), EXISTING);
    s.sandbox.bastion().assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_the_file_is_merged_into_then_put_back_byte_for_byte() {
    let s = ArmSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, EXISTING).unwrap();

    let mut cmd = s.aks(&[
        "--kubeconfig-path",
        path.to_str().unwrap(),
        "--write-kubeconfig-in-place",
        "--",
        "sh",
        "-c",
        SHOW,
    ]);
    cmd.env("XDG_STATE_HOME", state.path());
    let out = run_command(cmd).await;
    let (stdout, stderr) = assert_success(&out);
    // While the command ran: KUBECONFIG was the user's file, merged, pointing at the tunnel.
    assert!(
        stdout.contains(&format!("KUBECONFIG={}", path.display())),
        "{stdout}"
    );
    assert!(stdout.contains("server: https://localhost:"), "{stdout}");
    assert!(
        stdout.contains("https://other.example.test:6443"),
        "{stdout}"
    );
    assert!(stdout.contains("current-context: myaks"), "{stdout}");
    assert!(stderr.contains("put back byte for byte"), "{stderr}");

    // After: exactly the original text (not a re-serialised equivalent).
    assert_eq!(std::fs::read_to_string(&path).unwrap(), EXISTING);
    let after = Kubeconfig::read(&path).unwrap();
    assert_eq!(after.cluster_names(), ["other"]);
    assert_eq!(after.current_context(), Some("other"));
    s.sandbox.bastion().assert_no_orphans();
}
