//! `bastion aks` with the connection options `tunnel` has (`--bind`, `--idle-timeout`,
//! `--max-frame-size`, `--max-connections`, `--exit-after-idle`) and az's `--context` and
//! `--public-fqdn`, against the sandbox: the kubeconfig names the bound address, the context
//! and the public FQDN; kubectl reaches the cluster through it; nothing is left behind.

use crate::common;

use std::time::Duration;

use bastion_emulator::sandbox::PRIVATE_CLUSTER_PUBLIC_FQDN;
use common::{
    ArmSandbox, Running, WAIT, assert_clean_error, assert_nothing_left_in, assert_success, command,
    in_ci, run_command,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_context_and_public_fqdn_shape_the_kubeconfig_kubectl_uses() {
    let s = ArmSandbox::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let seen = copy.path().join("kubeconfig");
    let script = format!(
        "cp \"$KUBECONFIG\" {seen} && if command -v kubectl >/dev/null; then kubectl get pods; else echo NO-KUBECTL; fi",
        seen = seen.display()
    );
    let mut cmd = s.aks(&[
        "--bind",
        "0.0.0.0",
        "--context",
        "through-bastion",
        "--public-fqdn",
        "--idle-timeout",
        "30",
        "--max-frame-size",
        "8192",
        "--max-connections",
        "4",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    cmd.env("TMPDIR", tmp.path());
    let out = run_command(cmd).await;
    let (stdout, stderr) = assert_success(&out);
    // A wildcard bind is warned about, and the kubeconfig names a loopback address on it.
    assert!(stderr.contains("warning: listening on 0.0.0.0"), "{stderr}");
    let kc: yaml_serde::Value =
        yaml_serde::from_str(&std::fs::read_to_string(&seen).unwrap()).unwrap();
    assert_eq!(kc["current-context"].as_str(), Some("through-bastion"));
    let context = &kc["contexts"][0];
    assert_eq!(context["name"].as_str(), Some("through-bastion"));
    assert_eq!(
        context["context"]["cluster"].as_str(),
        Some("through-bastion")
    );
    let cluster = &kc["clusters"][0];
    assert_eq!(cluster["name"].as_str(), Some("through-bastion"));
    let server = cluster["cluster"]["server"].as_str().unwrap();
    assert!(server.starts_with("https://127.0.0.1:"), "{server}");
    assert!(
        stderr.contains(&format!("points at {server}")),
        "{server}: {stderr}"
    );
    // The certificate is checked against the public FQDN.
    assert_eq!(
        cluster["cluster"]["tls-server-name"].as_str(),
        Some(PRIVATE_CLUSTER_PUBLIC_FQDN)
    );
    if stdout.contains("NO-KUBECTL") {
        assert!(!in_ci(), "kubectl is not installed, and CI is set");
        eprintln!("\n*** kubectl is NOT installed: the kubeconfig was checked, not used ***\n");
    } else {
        assert!(
            stdout.contains("hello-web-7c9d8f6b5d-x2x7q"),
            "kubectl listed the pods through 127.0.0.1 with the public FQDN:\n{stdout}\n{stderr}"
        );
    }
    s.sandbox.bastion().assert_no_orphans();
    assert_nothing_left_in(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_bind_is_the_kubeconfig_server_without_a_warning() {
    let s = ArmSandbox::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = s.aks(&[
        "--bind",
        "127.0.0.2",
        "--",
        "sh",
        "-c",
        "sed -n 's/^ *server: *//p' \"$KUBECONFIG\"",
    ]);
    cmd.env("TMPDIR", tmp.path());
    let out = run_command(cmd).await;
    let (stdout, stderr) = assert_success(&out);
    assert!(stdout.trim().starts_with("https://127.0.0.2:"), "{stdout}");
    assert!(!stderr.contains("warning: listening"), "{stderr}");
    assert!(stderr.contains("Listening on 127.0.0.2:"), "{stderr}");
    s.sandbox.bastion().assert_no_orphans();
    assert_nothing_left_in(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_context_gets_the_admin_suffix() {
    let s = ArmSandbox::start().await;
    let out = run_command(s.aks(&[
        "--admin",
        "--context",
        "mine",
        "--no-probe",
        "--",
        "sh",
        "-c",
        "sed -n 's/^current-context: *//p' \"$KUBECONFIG\"",
    ]))
    .await;
    let (stdout, _) = assert_success(&out);
    assert_eq!(stdout.trim(), "mine-admin");
    s.sandbox.bastion().assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_after_idle_ends_a_no_shell_tunnel_and_needs_no_shell() {
    let s = ArmSandbox::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = s.aks(&["--no-shell", "--no-probe", "--exit-after-idle", "1"]);
    cmd.env("TMPDIR", tmp.path());
    let mut aks = Running::spawn(cmd);
    aks.ready_port().await;
    aks.wait_for_line(
        |l| l.starts_with("No connection for 1 s (--exit-after-idle)"),
        WAIT,
    )
    .await;
    let status = aks.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", aks.stderr());
    aks.assert_stderr_contains("Tunnel closed, every session deleted");
    assert_nothing_left_in(tmp.path());

    // With a command, the command decides: refused before any Azure call.
    let out = run_command(s.aks(&["--exit-after-idle", "1", "--", "true"])).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("--no-shell"), "{line}");
    assert!(s.sandbox.bastion().sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_fail_before_any_session() {
    let s = ArmSandbox::start().await;
    let out = run_command(s.aks(&["--max-frame-size", "0", "--", "true"])).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("max frame size 0"), "{line}");

    // A cluster without a public FQDN.
    let out = run_command(command(
        &[
            "aks",
            "-n",
            "privaks",
            "-g",
            "aks-rg",
            "--public-fqdn",
            "--",
            "true",
        ],
        &s.env(),
    ))
    .await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("privaks has no public FQDN"), "{line}");
    assert!(line.contains("leave out --public-fqdn"), "{line}");
    assert!(
        s.sandbox.bastion().sessions().is_empty(),
        "{:?}",
        s.sandbox.bastion().sessions()
    );
}
