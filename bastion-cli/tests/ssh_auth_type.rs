//! `bastion ssh --auth-type password|ssh-key|AAD` and `-u/--username/--user`, as az has them.
//! A stand-in ssh (a shell script) hands its arguments to the real OpenSSH (`ssh -G`, which
//! resolves them into the configuration ssh would use), checks the key and certificate files
//! exist, and sends a line through the tunnel to the echo target. For AAD a fake `az` on PATH
//! signs the public key with a test CA, as `az ssh cert` would with Entra ID's.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use common::{CoreSandbox, assert_clean_error, assert_nothing_left_in, run_command};

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What the stand-in ssh saw.
struct Seen {
    argv: String,
    config: String,
    existing: String,
    echo: String,
}

impl Seen {
    /// The value of `key` in `ssh -G` output (every value, for repeated keys).
    fn config(&self, key: &str) -> Vec<&str> {
        self.config
            .lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .collect()
    }
}

/// A stand-in ssh in `dir`, logging to files in `dir`.
fn stand_in_ssh(dir: &Path) -> PathBuf {
    let ssh = dir.join("fake-ssh");
    let d = dir.display();
    executable(
        &ssh,
        &format!(
            "#!/bin/sh\n\
             echo \"$@\" > {d}/argv\n\
             ssh -G \"$@\" > {d}/config 2>&1\n\
             for f in $(sed -n 's/^certificatefile //p;s/^identityfile //p' {d}/config); do\n\
               test -f \"$f\" && echo \"$f\"\n\
             done > {d}/existing\n\
             printf 'ping\\n' | curl -sS --max-time 2 telnet://127.0.0.1:$2 > {d}/echo 2>&1\n\
             exit 0\n"
        ),
    );
    ssh
}

fn seen(dir: &Path) -> Seen {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    Seen {
        argv: read("argv"),
        config: read("config"),
        existing: read("existing"),
        echo: read("echo"),
    }
}

/// Runs `bastion ssh ... --ssh-command <stand-in> ARGS` with `env` on top; returns the exit
/// code, stderr and what the stand-in saw.
async fn ssh(
    sandbox: &CoreSandbox,
    dir: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> (std::process::Output, Seen) {
    let fake = stand_in_ssh(dir);
    let mut all = args.to_vec();
    all.extend(["--ssh-command", fake.to_str().unwrap()]);
    let mut cmd = sandbox.command(&["ssh"], &all);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out = run_command(cmd).await;
    (out, seen(dir))
}

#[track_caller]
fn assert_logged_in(out: &std::process::Output, seen: &Seen) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{}", seen.config);
    assert!(
        seen.echo.contains("ping"),
        "the line came back through the tunnel: {:?}",
        seen.echo
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u_username_and_user_all_name_the_login() {
    let sandbox = CoreSandbox::start().await;
    for flag in ["-u", "--username", "--user"] {
        let dir = tempfile::tempdir().unwrap();
        let (out, seen) = ssh(&sandbox, dir.path(), &[flag, "azureuser"], &[]).await;
        assert_logged_in(&out, &seen);
        assert!(
            seen.argv.contains("-l azureuser 127.0.0.1"),
            "{flag}: {}",
            seen.argv
        );
        assert_eq!(seen.config("user"), ["azureuser"], "{flag}");
    }
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_auth_offers_no_key() {
    let sandbox = CoreSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (out, seen) = ssh(
        &sandbox,
        dir.path(),
        &["--auth-type", "password", "-u", "azureuser"],
        &[],
    )
    .await;
    assert_logged_in(&out, &seen);
    assert_eq!(
        seen.config("preferredauthentications"),
        ["password,keyboard-interactive"]
    );
    // OpenSSH prints `no` or, in newer versions, `false`.
    let pubkey = seen.config("pubkeyauthentication");
    assert!(
        pubkey == ["no"] || pubkey == ["false"],
        "{pubkey:?}\n{}",
        seen.config
    );
    assert!(!seen.argv.contains(" -i "), "{}", seen.argv);

    // A key makes no sense with it: refused before any session.
    let key = dir.path().join("key");
    std::fs::write(&key, "not used").unwrap();
    let out = run_command(sandbox.command(
        &["ssh"],
        &[
            "--auth-type",
            "password",
            "--ssh-key",
            key.to_str().unwrap(),
        ],
    ))
    .await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("--ssh-key"), "{line}");
    assert_eq!(sandbox.emu.sessions().len(), 1);
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_key_auth_needs_a_readable_key() {
    let sandbox = CoreSandbox::start().await;
    let out = run_command(sandbox.command(&["ssh"], &["--auth-type", "ssh-key"])).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("--auth-type ssh-key needs"), "{line}");
    assert!(line.contains("--ssh-key FILE"), "{line}");

    let out = run_command(sandbox.command(
        &["ssh"],
        &["--auth-type", "SSH-KEY", "--ssh-key", "/nonexistent/key"],
    ))
    .await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("/nonexistent/key"), "{line}");
    assert!(
        sandbox.emu.sessions().is_empty(),
        "no session for bad input"
    );

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    keygen(&key);
    let (out, seen) = ssh(
        &sandbox,
        dir.path(),
        &["--auth-type", "ssh-key", "--ssh-key", key.to_str().unwrap()],
        &[],
    )
    .await;
    assert_logged_in(&out, &seen);
    assert_eq!(seen.config("identityfile"), [key.to_str().unwrap()]);
    sandbox.emu.assert_no_orphans();
}

fn keygen(path: &Path) {
    let status = StdCommand::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen is installed");
    assert!(status.success());
}

/// A fake `az` in `bin`: `az extension show --name ssh` succeeds when `extension` is true, and
/// `az ssh cert --public-key-file P --file F` signs a copy of P with `ca` for
/// alice@contoso.com into F. Every call is logged to `bin/az.log`.
fn fake_az(bin: &Path, ca: &Path, extension: bool) {
    let b = bin.display();
    executable(
        &bin.join("az"),
        &format!(
            "#!/bin/sh\n\
             echo \"$@\" >> {b}/az.log\n\
             case \"$1 $2\" in\n\
               'extension show') exit {ext} ;;\n\
               'ssh cert') ;;\n\
               *) echo \"unexpected az $*\" >&2; exit 2 ;;\n\
             esac\n\
             while [ $# -gt 0 ]; do\n\
               case \"$1\" in --public-key-file) pub=$2; shift ;; --file) out=$2; shift ;; esac\n\
               shift\n\
             done\n\
             work={b}/work.$$\n\
             mkdir \"$work\" && cp \"$pub\" \"$work/key.pub\" || exit 1\n\
             ssh-keygen -q -s {ca} -I alice@contoso.com -n alice@contoso.com -V +1h \"$work/key.pub\" || exit 1\n\
             cp \"$work/key-cert.pub\" \"$out\" && rm -rf \"$work\"\n",
            ext = if extension { 0 } else { 1 },
            ca = ca.display(),
        ),
    );
}

/// `bin` first on PATH, then the system's (for ssh, ssh-keygen, curl).
fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aad_gets_a_certificate_and_logs_in_as_the_signed_in_user() {
    let sandbox = CoreSandbox::start().await;
    let bin = tempfile::tempdir().unwrap();
    let ca = bin.path().join("ca");
    keygen(&ca);
    fake_az(bin.path(), &ca, true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, seen) = ssh(
        &sandbox,
        dir.path(),
        &["--auth-type", "AAD"],
        &[
            ("PATH", path_with(bin.path())),
            ("TMPDIR", tmp.path().display().to_string()),
        ],
    )
    .await;
    assert_logged_in(&out, &seen);
    // The user is the certificate's principal; the key and certificate were bastion's own,
    // in a private temporary directory, present while ssh ran.
    assert_eq!(
        seen.config("user"),
        ["alice@contoso.com"],
        "{}",
        seen.config
    );
    let certs = seen.config("certificatefile");
    let keys = seen.config("identityfile");
    assert_eq!((certs.len(), keys.len()), (1, 1), "{}", seen.config);
    for f in [certs[0], keys[0]] {
        assert!(Path::new(f).starts_with(tmp.path()), "{f}");
        assert!(
            seen.existing.lines().any(|l| l == f),
            "{f} missing during the run"
        );
    }
    let az = std::fs::read_to_string(bin.path().join("az.log")).unwrap();
    let calls: Vec<&str> = az.lines().collect();
    assert_eq!(calls.len(), 2, "{az}");
    assert!(calls[0].starts_with("extension show --name ssh"), "{az}");
    assert!(
        calls[1].starts_with(&format!(
            "ssh cert --public-key-file {}.pub --file {}",
            keys[0], certs[0]
        )),
        "{az}"
    );
    // Nothing left behind: no key, no certificate, no session.
    assert_nothing_left_in(tmp.path());
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aad_with_the_users_key_leaves_the_key_untouched() {
    let sandbox = CoreSandbox::start().await;
    let bin = tempfile::tempdir().unwrap();
    let ca = bin.path().join("ca");
    keygen(&ca);
    fake_az(bin.path(), &ca, true);
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    keygen(&key);
    let before = snapshot(keys.path());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, seen) = ssh(
        &sandbox,
        dir.path(),
        &[
            "--auth-type",
            "aad",
            "--ssh-key",
            key.to_str().unwrap(),
            "--username",
            "bob@contoso.com",
        ],
        &[
            ("PATH", path_with(bin.path())),
            ("TMPDIR", tmp.path().display().to_string()),
        ],
    )
    .await;
    assert_logged_in(&out, &seen);
    assert_eq!(seen.config("user"), ["bob@contoso.com"]);
    assert_eq!(seen.config("identityfile"), [key.to_str().unwrap()]);
    let certs = seen.config("certificatefile");
    assert!(Path::new(certs[0]).starts_with(tmp.path()), "{certs:?}");
    let az = std::fs::read_to_string(bin.path().join("az.log")).unwrap();
    assert!(
        az.contains(&format!("--public-key-file {}.pub", key.display())),
        "{az}"
    );
    assert_eq!(
        snapshot(keys.path()),
        before,
        "the user's key directory changed"
    );
    assert_nothing_left_in(tmp.path());
    sandbox.emu.assert_no_orphans();
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect();
    all.sort();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aad_without_az_or_its_extension_says_what_is_needed() {
    let sandbox = CoreSandbox::start().await;
    // No az at all.
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = sandbox.command(&["ssh"], &["--auth-type", "AAD"]);
    cmd.env("PATH", empty.path());
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 5);
    assert!(line.contains("needs the Azure CLI"), "{line}");
    assert!(line.contains("az login"), "{line}");
    assert!(line.contains("az extension add --name ssh"), "{line}");

    // az without the ssh extension.
    let bin = tempfile::tempdir().unwrap();
    fake_az(bin.path(), &bin.path().join("no-ca"), false);
    let mut cmd = sandbox.command(&["ssh"], &["--auth-type", "AAD"]);
    cmd.env("PATH", path_with(bin.path()));
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 5);
    assert!(line.contains("ssh extension"), "{line}");
    assert!(line.contains("az extension add --name ssh"), "{line}");
    let az = std::fs::read_to_string(bin.path().join("az.log")).unwrap();
    assert!(!az.contains("ssh cert"), "{az}");
    assert!(sandbox.emu.sessions().is_empty(), "no session was opened");
}
