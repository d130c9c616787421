//! `bastion aks --kubeconfig-path FILE`: the user's kubeconfig is merged into and pointed at the
//! tunnel while the command runs, and restored on exit (other clusters untouched).

mod common;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_kubeconfig_is_edited_then_restored() {
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
        "echo \"KUBECONFIG=$KUBECONFIG\"; grep 'server:' \"$KUBECONFIG\"",
    ]))
    .await;
    let (stdout, _) = assert_success(&out);
    // While the command ran: KUBECONFIG was the user's file, and myaks pointed at the tunnel.
    assert!(
        stdout.contains(&format!("KUBECONFIG={}", path.display())),
        "{stdout}"
    );
    assert!(stdout.contains("server: https://localhost:"), "{stdout}");
    assert!(
        stdout.contains("https://other.example.test:6443"),
        "{stdout}"
    );

    // After: myaks points at its real server again; the other cluster is as it was.
    let after = Kubeconfig::read(&path).unwrap();
    assert_eq!(
        after.server("myaks"),
        Some(format!("https://{PRIVATE_FQDN}:443").as_str())
    );
    assert_eq!(
        after.server("other"),
        Some("https://other.example.test:6443")
    );
    s.sandbox.bastion().assert_no_orphans();
}
