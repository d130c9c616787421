//! A private OpenSSH server on 127.0.0.1, for end-to-end runs of the real `ssh` and `scp`
//! through `bastion proxy` and `bastion ssh` (the CLI's tests, the benchmark harness's scp
//! phase).
//!
//! Unprivileged in configuration: a directory of the caller's with a generated host key, a
//! generated client key in `authorized_keys`, and `sshd -D -e -f CONFIG -p PORT` with
//! `UsePAM no`, `StrictModes no`, `PidFile none`, public-key login only. A tunnel reaches it
//! through the sandbox VM's Bastion by IP connect (`--target-ip-address 127.0.0.1
//! --resource-port PORT --allow-any-port`): the emulator dials the address it is given.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::EmulatorError;

/// How long sshd may take to answer with its banner.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The OpenSSH programs, found on `PATH` (and `sshd` in the sbin directories too).
#[derive(Debug, Clone)]
pub struct OpenSsh {
    /// The server.
    pub sshd: PathBuf,
    /// The client.
    pub ssh: PathBuf,
    /// The copy client.
    pub scp: PathBuf,
    /// The key generator.
    pub keygen: PathBuf,
}

impl OpenSsh {
    /// Finds the four programs; `Err` names the missing ones and how to install them.
    pub fn find() -> Result<Self, String> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        for d in ["/usr/sbin", "/usr/local/sbin", "/sbin"] {
            dirs.push(PathBuf::from(d));
        }
        let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
        let found = ["sshd", "ssh", "scp", "ssh-keygen"].map(|n| (n, find(n)));
        let missing: Vec<&str> = found
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| *n)
            .collect();
        match found {
            [
                (_, Some(sshd)),
                (_, Some(ssh)),
                (_, Some(scp)),
                (_, Some(keygen)),
            ] => Ok(Self {
                sshd,
                ssh,
                scp,
                keygen,
            }),
            _ => Err(format!(
                "{} not found: install OpenSSH (Debian: apt-get install openssh-server openssh-client)",
                missing.join(", ")
            )),
        }
    }
}

/// A running private sshd; killed when dropped.
#[derive(Debug)]
pub struct PrivateSshd {
    child: Child,
    port: u16,
    user: String,
    client_key: PathBuf,
}

impl PrivateSshd {
    /// Generates the keys and configuration in `dir` (which must exist and stay for the
    /// server's life), starts sshd on a free port of 127.0.0.1 with its log on `log`, and
    /// waits until it answers.
    pub async fn start(
        tools: &OpenSsh,
        dir: &Path,
        log: std::fs::File,
    ) -> Result<Self, EmulatorError> {
        for name in ["host_key", "client_key"] {
            let key = dir.join(name);
            let _ = std::fs::remove_file(&key);
            let _ = std::fs::remove_file(key.with_extension("pub"));
            let out = Command::new(&tools.keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "bastion-test", "-f"])
                .arg(&key)
                .stdin(Stdio::null())
                .output()
                .await?;
            if !out.status.success() {
                return Err(EmulatorError::Config(format!(
                    "ssh-keygen failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))?;
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\n\
                 HostKey {host}\n\
                 AuthorizedKeysFile {auth}\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PidFile none\n\
                 PermitRootLogin prohibit-password\n\
                 Subsystem sftp internal-sftp\n\
                 LogLevel ERROR\n",
                host = dir.join("host_key").display(),
                auth = dir.join("authorized_keys").display(),
            ),
        )?;
        // Run as root, sshd wants its privilege-separation directory (normally made by the
        // init system); as any other user it does not use one.
        if rustix::process::geteuid().is_root() && !Path::new("/run/sshd").is_dir() {
            std::fs::create_dir_all("/run/sshd")?;
        }
        let port = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?
            .local_addr()?
            .port();
        let child = Command::new(&tools.sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .arg("-p")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let mut sshd = Self {
            child,
            port,
            user: current_user().await?,
            client_key: dir.join("client_key"),
        };
        sshd.wait_banner().await?;
        Ok(sshd)
    }

    /// The port sshd listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// sshd's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The login name whose key is authorized: the current user's.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The options `ssh` and `scp` need to log in without prompts and without reading or
    /// writing the user's own files: the generated key, no host key checks, no config file.
    /// The port is not among them (`ssh -p`, `scp -P`).
    pub fn client_options(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["-i".into(), self.client_key.clone().into_os_string()];
        for o in [
            "IdentitiesOnly=yes",
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "BatchMode=yes",
        ] {
            v.push("-o".into());
            v.push(o.into());
        }
        v.push("-F".into());
        v.push("/dev/null".into());
        v
    }

    /// Stops sshd (SIGKILL; its sessions end with their connections) and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    async fn wait_banner(&mut self) -> Result<(), EmulatorError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(EmulatorError::Config(format!(
                    "sshd exited ({status}) before it answered; see its log"
                )));
            }
            if let Ok(mut s) =
                tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).await
            {
                let mut buf = [0u8; 4];
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf)).await
                    && &buf == b"SSH-"
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(EmulatorError::Config(format!(
                    "sshd did not answer on 127.0.0.1:{} within {START_TIMEOUT:?}; see its log",
                    self.port
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The current user's login name (`id -un`).
async fn current_user() -> Result<String, EmulatorError> {
    let out = Command::new("id")
        .arg("-un")
        .stdin(Stdio::null())
        .output()
        .await?;
    let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || name.is_empty() {
        return Err(EmulatorError::Config(
            "id -un: cannot tell the current user".into(),
        ));
    }
    Ok(name)
}
