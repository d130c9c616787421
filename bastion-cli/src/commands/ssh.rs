//! `bastion ssh`: a tunnel to the target's ssh port on an ephemeral loopback port, and `ssh`
//! run against it with the extra arguments passed through; exits with ssh's code.
//!
//! `--auth-type` is az's (`az network bastion ssh`): `password` makes ssh use password or
//! keyboard-interactive authentication only, `ssh-key` needs `--ssh-key`, and `AAD` gets an
//! Entra ID SSH certificate from `az ssh cert` (the Azure CLI's ssh extension) for an existing
//! or a throw-away key, then logs in with it as the signed-in user. Everything the login needs
//! is checked, and the certificate obtained, before a Bastion session is opened.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use bastion_core::LocalListener;
use tokio::process::Command;

use crate::cli::{SshArgs, SshAuthType};
use crate::commands::target::TargetSpec;
use crate::commands::{child, target, tunnel};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome, child_status};
use crate::output::Output;
use crate::signals::Signals;

/// What `ssh` gets to log in: options, and the temporary directory holding an AAD key and
/// certificate (removed when this is dropped).
struct Login {
    args: Vec<std::ffi::OsString>,
    user: Option<String>,
    _dir: Option<bastion_arm::SessionDir>,
}

/// Runs `bastion ssh`.
pub async fn run(ctx: &Context, args: &SshArgs) -> CliResult<Outcome> {
    let mut signals = Signals::install()
        .map_err(|e| CliError::new(Code::Other, format!("cannot handle signals: {e}")))?;
    let spec = TargetSpec::parse(&args.route.target, args.resource_port)?;
    let login = signals.interruptible(login(ctx, args)).await?;
    let listener = LocalListener::bind_loopback(0).await?;
    let port = listener.port();
    let tunnel = signals
        .interruptible(async {
            let config = target::resolve(ctx, &args.route, args.resource_port).await?;
            tunnel::start(ctx, config).await
        })
        .await?;
    let server = tunnel::serve_in_background(&tunnel, listener);
    tracing::info!(port, "tunnel ready for ssh");

    let mut cmd = Command::new(&args.ssh_command);
    cmd.arg("-p")
        .arg(port.to_string())
        // known_hosts entries belong to the target, not to a random local port.
        .arg("-o")
        .arg(format!("HostKeyAlias={}", host_key_alias(&spec)))
        .args(&login.args);
    if let Some(user) = &login.user {
        cmd.arg("-l").arg(user);
    }
    cmd.arg("127.0.0.1").args(&args.ssh_args);
    let result = child::run(cmd, "ssh", &mut signals).await;

    // A second signal while the sessions are being deleted exits at once.
    signals.exit_on_next(ctx.out.quiet);
    tunnel::warn_undeleted(&ctx.out, &server.stop().await);
    drop(login);
    let (status, _) = result?;
    Ok(Outcome::Status(child_status(status)))
}

/// The ssh options of `--auth-type` (and `--ssh-key`, `--username`), checked before any tunnel.
async fn login(ctx: &Context, args: &SshArgs) -> CliResult<Login> {
    let key = args.ssh_key.as_deref();
    if let Some(key) = key {
        check_key(key)?;
    }
    let mut login = Login {
        args: Vec::new(),
        user: args.user.clone(),
        _dir: None,
    };
    match args.auth_type {
        None => {
            if let Some(key) = key {
                login.args.extend(["-i".into(), key.into()]);
            }
        }
        Some(SshAuthType::Password) => {
            if key.is_some() {
                return Err(
                    CliError::usage("--ssh-key does not go with --auth-type password")
                        .hint("use --auth-type ssh-key for the key, or leave out --ssh-key"),
                );
            }
            login.args.extend([
                "-o".into(),
                "PreferredAuthentications=password,keyboard-interactive".into(),
                "-o".into(),
                "PubkeyAuthentication=no".into(),
            ]);
        }
        Some(SshAuthType::SshKey) => {
            let Some(key) = key else {
                return Err(
                    CliError::usage("--auth-type ssh-key needs the private key file")
                        .hint("pass --ssh-key FILE"),
                );
            };
            login.args.extend(["-i".into(), key.into()]);
        }
        Some(SshAuthType::Aad) => {
            let step = ctx.out.step("certificate");
            let aad = aad_certificate(&ctx.out, key).await?;
            step.done(format!(
                "Entra ID SSH certificate for {}",
                aad.principal.as_deref().unwrap_or("the signed-in user")
            ));
            if login.user.is_none() {
                login.user = Some(aad.principal.ok_or_else(|| {
                    CliError::new(Code::Auth, "the Entra ID SSH certificate names no user")
                        .hint("pass --username (your user principal name)")
                })?);
            }
            login.args.extend([
                "-i".into(),
                aad.key.into(),
                "-o".into(),
                format!("CertificateFile={}", aad.cert.display()).into(),
            ]);
            login._dir = Some(aad.dir);
        }
    }
    Ok(login)
}

/// A usage error now rather than ssh's complaint after a session was opened.
fn check_key(key: &Path) -> CliResult<()> {
    match std::fs::metadata(key) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(CliError::usage(format!("{} is not a file", key.display()))
            .hint("pass the private key file with --ssh-key")),
        Err(e) => Err(
            CliError::usage(format!("cannot read the ssh key {}: {e}", key.display()))
                .hint("check --ssh-key"),
        ),
    }
}

/// An Entra ID SSH certificate in a private temporary directory.
struct AadCert {
    key: PathBuf,
    cert: PathBuf,
    principal: Option<String>,
    dir: bastion_arm::SessionDir,
}

/// What to do when the Azure CLI or its ssh extension is missing.
const AAD_NEEDS: &str = "install the Azure CLI, sign in with `az login`, then add its ssh extension with `az extension add --name ssh`; or use --auth-type ssh-key or password";

/// Gets a certificate from `az ssh cert` for `key` (its `.pub` beside it, or derived from it),
/// or for a new throw-away RSA key (Entra ID signs RSA keys only).
async fn aad_certificate(out: &Output, key: Option<&Path>) -> CliResult<AadCert> {
    let Some(az) = child::find_program("az") else {
        return Err(CliError::new(
            Code::Auth,
            "--auth-type AAD needs the Azure CLI (`az`), which is not on PATH",
        )
        .hint(AAD_NEEDS));
    };
    let extension = quiet_output(
        Command::new(&az).args(["extension", "show", "--name", "ssh", "--output", "none"]),
        "az",
    )
    .await?;
    if !extension.status.success() {
        return Err(CliError::new(
            Code::Auth,
            "--auth-type AAD needs the Azure CLI's ssh extension, which is not installed",
        )
        .hint("run `az extension add --name ssh` (after `az login`)"));
    }
    let dir = super::private_temp_dir(out, "bastion-ssh-", "bastion ssh")?;
    let (key, public) = match key {
        Some(key) => {
            let beside = PathBuf::from(format!("{}.pub", key.display()));
            if beside.is_file() {
                (key.to_path_buf(), beside)
            } else {
                let public = dir.path().join("id.pub");
                let derived = quiet_output(
                    Command::new("ssh-keygen").arg("-y").arg("-f").arg(key),
                    "ssh-keygen",
                )
                .await?;
                if !derived.status.success() {
                    return Err(CliError::usage(format!(
                        "cannot derive the public key of {}: {}",
                        key.display(),
                        last_line(&derived.stderr)
                    ))
                    .hint(format!(
                        "put its public key in {} (a key with a passphrase needs it)",
                        beside.display()
                    )));
                }
                write_private(&public, &derived.stdout)?;
                (key.to_path_buf(), public)
            }
        }
        None => {
            let key = dir.path().join("id_rsa");
            let made = quiet_output(
                Command::new("ssh-keygen")
                    .args([
                        "-q",
                        "-t",
                        "rsa",
                        "-b",
                        "3072",
                        "-N",
                        "",
                        "-C",
                        "bastion-aad",
                        "-f",
                    ])
                    .arg(&key),
                "ssh-keygen",
            )
            .await?;
            if !made.status.success() {
                return Err(CliError::new(
                    Code::Other,
                    format!(
                        "ssh-keygen could not make a key: {}",
                        last_line(&made.stderr)
                    ),
                )
                .hint("pass a key of your own with --ssh-key"));
            }
            let public = dir.path().join("id_rsa.pub");
            (key, public)
        }
    };
    let cert = dir.path().join("id-cert.pub");
    let signed = quiet_output(
        Command::new(&az)
            .args(["ssh", "cert", "--public-key-file"])
            .arg(&public)
            .arg("--file")
            .arg(&cert)
            .args(["--only-show-errors", "--output", "none"]),
        "az",
    )
    .await?;
    if !signed.status.success() || !cert.is_file() {
        let why = last_line(&signed.stderr);
        return Err(CliError::new(
            Code::Auth,
            format!(
                "`az ssh cert` gave no certificate{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            ),
        )
        .hint("sign in with `az login` (and check `az ssh cert --help` works)"));
    }
    let principal = principal(&cert).await;
    Ok(AadCert {
        key,
        cert,
        principal,
        dir,
    })
}

/// The first principal of an OpenSSH certificate (`ssh-keygen -L`): the user name az logs in
/// with.
async fn principal(cert: &Path) -> Option<String> {
    let shown = quiet_output(
        Command::new("ssh-keygen").arg("-L").arg("-f").arg(cert),
        "ssh-keygen",
    )
    .await
    .ok()?;
    if !shown.status.success() {
        return None;
    }
    principals(&String::from_utf8_lossy(&shown.stdout))
        .into_iter()
        .next()
}

/// The `Principals:` of `ssh-keygen -L` output.
fn principals(listing: &str) -> Vec<String> {
    let mut lines = listing.lines().skip_while(|l| l.trim() != "Principals:");
    lines.next();
    lines
        .take_while(|l| l.starts_with("                ") || l.starts_with('\t'))
        .map(|l| l.trim().to_owned())
        .filter(|p| !p.is_empty() && p != "(none)")
        .collect()
}

/// Runs a helper program with no terminal input (it must never prompt) and its output captured.
async fn quiet_output(cmd: &mut Command, what: &str) -> CliResult<std::process::Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| {
            let err = CliError::new(Code::Other, format!("cannot run `{what}`: {e}"));
            if e.kind() == std::io::ErrorKind::NotFound {
                err.hint(if what == "az" {
                    AAD_NEEDS.to_owned()
                } else {
                    format!("install OpenSSH's `{what}` or put it on PATH")
                })
            } else {
                err.hint("check the program and its permissions")
            }
        })
}

/// The last non-empty line of a program's stderr.
fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned()
}

fn write_private(path: &Path, bytes: &[u8]) -> CliResult<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| {
            CliError::new(Code::Other, format!("cannot write {}: {e}", path.display()))
                .hint("check TMPDIR")
        })
}

/// A stable name for the target's host key: its IP for IP connect, else the resource name.
fn host_key_alias(spec: &TargetSpec) -> String {
    match spec {
        TargetSpec::Ip(ip) => ip.to_string(),
        TargetSpec::Resource(id) => {
            let name = id
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("target");
            format!("{}.bastion", name.to_ascii_lowercase())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_come_from_the_certificate_listing() {
        let listing = "/tmp/x/id-cert.pub:\n        Type: ssh-rsa-cert-v01@openssh.com user certificate\n        Public key: RSA-CERT SHA256:abc\n        Signing CA: RSA SHA256:def (using rsa-sha2-512)\n        Key ID: \"alice@contoso.com\"\n        Serial: 0\n        Valid: from 2026-01-01T00:00:00 to 2026-01-01T01:00:00\n        Principals: \n                alice@contoso.com\n                alice\n        Critical Options: (none)\n        Extensions: \n                permit-pty\n";
        assert_eq!(principals(listing), ["alice@contoso.com", "alice"]);
        assert!(principals("        Principals: (none)\n").is_empty());
    }
}
