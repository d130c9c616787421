//! `bastion aks -- kubectl get pods` against the sandbox: the pods are listed, exit code 0, no
//! Bastion session left in the emulator, no temporary kubeconfig left on disk. Without kubectl
//! it falls back to curl, except under `CI=true`, where that fails.

use crate::common;

use std::path::Path;

use bastion_emulator::sandbox::PRIVATE_CLUSTER;
use common::{ArmSandbox, assert_nothing_left_in, assert_success, in_ci, run_command};

fn kubectl() -> Option<&'static str> {
    ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_pods_and_nothing_is_left_behind() {
    let s = ArmSandbox::start().await;
    // A private TMPDIR: whatever bastion leaves there is a leak.
    let tmp = tempfile::tempdir().unwrap();
    let command: Vec<String> = match kubectl() {
        Some(k) => vec![k.into(), "get".into(), "pods".into()],
        None => {
            assert!(
                !in_ci(),
                "kubectl is not installed, and CI is set: install kubectl (see .ci/run)"
            );
            eprintln!(
                "\n*** kubectl is NOT installed: this test falls back to curl with the kubeconfig's token ***\n"
            );
            let access = s
                .sandbox
                .arm()
                .fixtures()
                .cluster_access(&PRIVATE_CLUSTER.parse().unwrap())
                .cloned()
                .expect("cluster access");
            let script = format!(
                "server=$(sed -n 's/^ *server: *//p' \"$KUBECONFIG\" | head -1); \
                 name=$(sed -n 's/^ *tls-server-name: *//p' \"$KUBECONFIG\" | head -1); \
                 port=${{server##*:}}; port=${{port%/}}; \
                 curl -sS --max-time 20 --cacert {ca} --resolve \"$name:$port:127.0.0.1\" \
                   -H 'Authorization: Bearer {token}' \"https://$name:$port/api/v1/namespaces/default/pods\"",
                ca = s.ca_file.path().display(),
                token = access.user_token,
            );
            vec!["sh".into(), "-c".into(), script]
        }
    };
    let mut cmd = s.aks(&["--"]);
    cmd.args(&command).env("TMPDIR", tmp.path());
    let out = run_command(cmd).await;
    let (stdout, stderr) = assert_success(&out);
    assert!(
        stdout.contains("hello-web-7c9d8f6b5d-x2x7q"),
        "pods listed:\n{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Every session the flow minted (the probe and kubectl's) was deleted.
    let sessions = s.sandbox.bastion().sessions();
    assert!(
        sessions.len() >= 2,
        "probe + kubectl sessions: {sessions:?}"
    );
    s.sandbox.bastion().assert_no_orphans();
    // No kubeconfig (or anything else) left in TMPDIR.
    assert_nothing_left_in(tmp.path());
}
