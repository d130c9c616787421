//! `bastion completions SHELL` prints a script; `--help` documents the exit codes.

use crate::common;

use std::process::Stdio;

use common::{command, run};

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
async fn help_documents_the_exit_codes_as_the_readme_does() {
    let out = run(&["--help"], &[]).await;
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```text\nExit codes:")
        .expect("the README's exit codes block")
        + "```text\n".len();
    let block = &readme[start..start + readme[start..].find("\n```").unwrap()];
    assert!(
        help.contains(block),
        "--help and the README's exit codes differ:\n--help:\n{help}\nREADME:\n{block}"
    );
    for line in [
        "2    usage error",
        "3    not found",
        "4    pre-flight check failed",
        "5    authentication",
        "6    tunnel failed",
        "129  SIGHUP, 130 SIGINT (Ctrl-C), 143 SIGTERM",
    ] {
        assert!(help.contains(line), "{line:?} missing from --help");
    }
}

/// `bastion completions bash | head`: the reader goes away before the script is written. The
/// write end's reader is closed before bastion starts, so every write fails with EPIPE.
#[tokio::test]
async fn completions_into_a_closed_pipe_end_quietly() {
    for shell in ["bash", "zsh"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = command(&["completions", shell], &[]);
        cmd.stdout(writer).stderr(Stdio::piped());
        let out = tokio::time::timeout(common::WAIT, cmd.spawn().unwrap().wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && stderr.trim().is_empty(),
            "{shell}: {stderr}"
        );
        assert!(out.status.success(), "{shell}: {:?} {stderr}", out.status);
    }
}
