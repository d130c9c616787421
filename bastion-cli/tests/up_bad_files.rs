//! `bastion up -f FILE` with a bad file: exit 2 before any network call, with one clear error
//! line naming the file, the tunnel and the key, and what to do.

use crate::common;

use common::{assert_clean_error, run};

const VM: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/vm-rg/providers/Microsoft.Compute/virtualMachines/vm1";

fn tunnel(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[tunnel]]\nname = \"{name}\"\nbastion-endpoint = \"bst.example.test\"\ntarget-resource-id = \"{VM}\"\nresource-port = 22\nport = {port}\n{extra}\n"
    )
}

/// Runs `bastion up -f FILE` on `text` and returns the error line (after checking exit 2).
async fn error_for(text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tunnels.toml");
    std::fs::write(&file, text).unwrap();
    let path = file.display().to_string();
    // No emulator, no credential: the file is refused before either is needed.
    let out = run(&["up", "-f", &path], &[]).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains(&path), "the error names the file: {line}");
    assert!(line.contains(" — "), "the error says what to do: {line}");
    assert!(out.stdout.is_empty());
    (line, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_refused_with_one_line_naming_file_tunnel_and_key() {
    let (line, _) = error_for(&tunnel("web", 2201, "prot = 1")).await;
    assert!(line.contains("tunnel 'web': unknown key `prot`"), "{line}");

    let (line, _) = error_for(&format!(
        "{}{}",
        tunnel("web", 2201, ""),
        tunnel("web", 2202, "")
    ))
    .await;
    assert!(line.contains("tunnel 'web' is defined twice"), "{line}");

    let (line, _) = error_for(&format!(
        "{}{}",
        tunnel("web", 2201, ""),
        tunnel("db", 2201, "")
    ))
    .await;
    assert!(
        line.contains("tunnel 'db': port 2201 is already the port of tunnel 'web'"),
        "{line}"
    );

    let (line, path) = error_for("[[tunnel]\nname = \"web\"\n").await;
    assert!(line.starts_with(&format!("error: {path}:1:")), "{line}");

    let (line, _) = error_for(&tunnel("web", 2201, "kubeconfig-out = \"x.yaml\"")).await;
    assert!(
        line.contains("tunnel 'web': kubeconfig-out: applies to AKS tunnels only"),
        "{line}"
    );

    let (line, path) = error_for(&tunnel("web", 2201, "resource-port = 22")).await;
    assert!(
        line.contains(&format!("{path}:7:1: duplicate key `resource-port`")),
        "{line}"
    );

    let (line, _) = error_for("[defaults]\nbind = \"localhost\"\n").await;
    assert!(line.contains("[defaults]"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml").display().to_string();
    let out = run(&["up", "-f", &path], &[]).await;
    let line = assert_clean_error(&out, 2);
    assert!(
        line.contains(&format!("cannot read the tunnels file {path}")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_credential_the_error_is_the_usual_one_not_one_per_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tunnels.toml");
    std::fs::write(
        &file,
        format!("{}{}", tunnel("web", 0, ""), tunnel("db", 0, "")),
    )
    .unwrap();
    let out = run(
        &["--auth", "token", "up", "-f", file.to_str().unwrap()],
        &[],
    )
    .await;
    let line = assert_clean_error(&out, 2);
    assert!(
        line.contains("--auth token needs an access token"),
        "{line}"
    );
    assert!(!line.contains("tunnel '"), "{line}");
}
