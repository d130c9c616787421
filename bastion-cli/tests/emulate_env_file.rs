//! `bastion emulate --env-file FILE`: the file holds the sandbox's token, so it is private
//! (0600), and the other-credential lines it prints work as written: the client-secret one
//! fetches the AAD cluster's credentials from the sandbox's ARM through the identity emulator.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;
use std::time::Duration;

use common::{WAIT, bastion, exports, start_emulate_with};

/// `NAME='value'` words of an `env ...` example line, up to the `bastion` word.
fn env_words(line: &str) -> Vec<(String, String)> {
    line.split_whitespace()
        .skip_while(|w| *w != "env")
        .skip(1)
        .take_while(|w| *w != "bastion")
        .map(|w| {
            let (k, v) = w.split_once('=').expect("NAME='value'");
            (k.to_owned(), v.trim_matches('\'').to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_env_file_is_private_and_its_client_secret_line_works() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sandbox.env");
    // A file that already exists, world-readable: it is made private, not kept 0644.
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();

    let (mut emulate, printed) =
        start_emulate_with(&["--env-file".as_ref(), file.as_os_str()]).await;

    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the env file holds a token: owner only");
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().collect::<Vec<_>>(), printed);

    let exports = exports(&printed);
    let line = printed
        .iter()
        .find(|l| l.starts_with("#   --auth client-secret: env "))
        .unwrap_or_else(|| panic!("no client-secret line in {printed:#?}"));
    let vars = env_words(line);
    for name in [
        "AZURE_AUTHORITY_HOST",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
    ] {
        assert!(vars.iter().any(|(k, _)| k == name), "{name} in {line}");
    }
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("#   --auth managed-identity: env ")
                && l.contains("IDENTITY_ENDPOINT=")),
        "{printed:#?}"
    );

    // The line's credential, with the printed environment (minus its ARM token), reaches the
    // sandbox's ARM: the AAD cluster's credentials come back, with `bastion kube-token` as the
    // kubeconfig's user.
    let mut creds = bastion();
    creds
        .envs(
            exports
                .iter()
                .filter(|(k, _)| k != "BASTION_TOKEN" && k != "BASTION_AUTH")
                .map(|(k, v)| (k, v)),
        )
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .args([
            "--auth",
            "client-secret",
            "aks",
            "credentials",
            "-n",
            "aadaks",
            "-g",
            "aks-rg",
            "--file",
            "-",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::time::timeout(WAIT, creds.output())
        .await
        .expect("aks credentials finished in time")
        .expect("run bastion");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status {:?}; stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("kube-token"), "{stdout}");
    assert!(stdout.contains("client-secret"), "{stdout}");
    let secret = &vars
        .iter()
        .find(|(k, _)| k == "AZURE_CLIENT_SECRET")
        .unwrap()
        .1;
    assert!(
        !stdout.contains(secret.as_str()),
        "no secret in the kubeconfig"
    );

    emulate.signal(rustix::process::Signal::INT);
    let status = emulate.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "{status:?}");
}
