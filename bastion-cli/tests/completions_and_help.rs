//! `bastion completions SHELL` prints a script; `--help` documents the exit codes.

mod common;

use common::run;

#[tokio::test]
async fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell], &[]).await;
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("bastion"), "{shell}: {script}");
    }
}

#[tokio::test]
async fn help_documents_the_exit_codes() {
    let out = run(&["--help"], &[]).await;
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "2  usage error",
        "3  not found",
        "4  pre-flight check failed",
        "5  authentication",
        "6  tunnel failed",
    ] {
        assert!(help.contains(line), "{line:?} missing from --help");
    }
}
