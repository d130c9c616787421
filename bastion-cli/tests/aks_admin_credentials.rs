//! `bastion aks --admin`: the admin kubeconfig (context renamed `<cluster>-admin`) works
//! through the tunnel like the user one.

use crate::common;

use common::{ArmSandbox, assert_success, run_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_credentials_reach_the_cluster() {
    let s = ArmSandbox::start().await;
    let out = run_command(s.aks(&[
        "--admin",
        "--",
        "sh",
        "-c",
        "grep 'current-context' \"$KUBECONFIG\"",
    ]))
    .await;
    let (stdout, stderr) = assert_success(&out);
    assert!(stdout.contains("current-context: myaks-admin"), "{stdout}");
    assert!(stderr.contains("✓ Admin credentials of myaks"), "{stderr}");
    s.sandbox.bastion().assert_no_orphans();
    // The admin credential action was called, the user one was not.
    let calls: Vec<String> = s
        .sandbox
        .arm()
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        calls
            .iter()
            .any(|p| p.ends_with("/listClusterAdminCredential")),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|p| p.ends_with("/listClusterUserCredential")),
        "{calls:?}"
    );
}
