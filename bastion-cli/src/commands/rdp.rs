//! `bastion rdp`: a tunnel to the target's RDP port (3389) on a loopback port, then the
//! platform's RDP client pointed at it; exits with the client's code once it has closed, after
//! the tunnel's sessions are deleted. `--no-launch` instead prints the port, writes a ready-made
//! `.rdp` file in a private temporary directory, and keeps the tunnel open until Ctrl-C.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use bastion_core::LocalListener;
use serde_json::json;
use tokio::process::Command;

use crate::cli::RdpArgs;
use crate::commands::target::TargetSpec;
use crate::commands::{child, target, tunnel};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome, child_status};
use crate::output::Output;
use crate::signals::Signals;

/// The FreeRDP clients looked for on PATH, in this order.
const FREERDP: [&str; 4] = ["xfreerdp", "xfreerdp3", "wlfreerdp", "wlfreerdp3"];

/// How an RDP client is told where to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// FreeRDP and `--rdp-command`: `/v:localhost:PORT [/u:USER] ARGS...`.
    FreeRdp,
    /// `mstsc /v:localhost:PORT ARGS...`.
    Mstsc,
    /// macOS: `open -W rdp://full%20address=s:localhost:PORT[&username=s:USER]` (waits until the
    /// Remote Desktop app quits).
    Open,
}

/// The client to run.
#[derive(Debug, Clone)]
struct Client {
    program: PathBuf,
    style: Style,
}

/// Runs `bastion rdp`.
pub async fn run(ctx: &Context, args: &RdpArgs) -> CliResult<Outcome> {
    let mut signals = Signals::install()
        .map_err(|e| CliError::new(Code::Other, format!("cannot handle signals: {e}")))?;
    TargetSpec::parse(&args.route.target, args.resource_port)?;
    // The client is found before any Bastion call: nothing to undo if there is none.
    let client = if args.no_launch {
        None
    } else {
        Some(find_client(args.rdp_command.as_deref())?)
    };
    let listener = LocalListener::bind_loopback(args.port).await?;
    let port = listener.port();
    let tunnel = signals
        .interruptible(async {
            let config = target::resolve(ctx, &args.route, args.resource_port).await?;
            tunnel::start(ctx, config).await
        })
        .await?;
    let endpoint = tunnel.config().endpoint.to_string();
    let target_name = tunnel.config().target.to_string();
    let logger = tunnel::spawn_event_log(ctx.out, tunnel.subscribe());

    let Some(client) = client else {
        // --no-launch: the .rdp file lives in a private directory removed on exit.
        let dir = rdp_dir(&ctx.out)?;
        let file = dir.path().join(format!("bastion-{port}.rdp"));
        write_rdp_file(&file, port, args.user.as_deref())?;
        let out = ctx.out;
        let summary = tunnel
            .serve(listener, async move {
                out.essential(
                    format!(
                        "Tunnel is ready, connect on port {port}\nRDP file: {}",
                        file.display()
                    ),
                    json!({
                        "event": "ready",
                        "port": port,
                        "bastion_endpoint": endpoint,
                        "target": target_name,
                        "rdp_file": file.display().to_string(),
                    }),
                );
                out.info(
                    "Open the RDP file in your Remote Desktop client (it is removed on exit).\nPress Ctrl-C to close the tunnel.",
                );
                let sig = signals.recv().await;
                out.info(format!(
                    "{}: closing the tunnel and deleting its sessions (press Ctrl-C again to exit at once)",
                    sig.name()
                ));
                signals.exit_on_next(out.quiet);
            })
            .await;
        drop(tunnel);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), logger).await;
        tunnel::report_summary(&ctx.out, &summary);
        drop(dir);
        return Ok(Outcome::Success);
    };

    let server = tunnel::serve_in_background(&tunnel, listener);
    let cmd = client_command(&client, port, args.user.as_deref(), &args.rdp_args);
    ctx.out.event(
        format!(
            "Tunnel on port {port}: starting {}",
            client.program.display()
        ),
        json!({
            "event": "ready",
            "port": port,
            "bastion_endpoint": endpoint,
            "target": target_name,
            "client": client.program.display().to_string(),
        }),
    );
    let result = child::run(cmd, "the RDP client", &mut signals).await;
    // A second signal while the sessions are being deleted exits at once.
    signals.exit_on_next(ctx.out.quiet);
    let summary = server.stop().await;
    drop(tunnel);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), logger).await;
    tunnel::report_summary(&ctx.out, &summary);
    let (status, _) = result?;
    Ok(Outcome::Status(child_status(status)))
}

/// `--rdp-command`, else the platform's client, else a usage error saying what to install.
fn find_client(chosen: Option<&str>) -> CliResult<Client> {
    if let Some(program) = chosen {
        let path = child::find_program(program).ok_or_else(|| {
            CliError::usage(format!("cannot find the RDP client `{program}`"))
                .hint("install it, put it on PATH, or give its full path to --rdp-command")
        })?;
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase());
        let style = match name.as_deref() {
            Some("mstsc" | "mstsc.exe") => Style::Mstsc,
            _ => Style::FreeRdp,
        };
        return Ok(Client {
            program: path,
            style,
        });
    }
    if cfg!(target_os = "macos")
        && let Some(open) = child::find_program("open")
    {
        return Ok(Client {
            program: open,
            style: Style::Open,
        });
    }
    for name in FREERDP {
        if let Some(program) = child::find_program(name) {
            return Ok(Client {
                program,
                style: Style::FreeRdp,
            });
        }
    }
    for name in ["mstsc", "mstsc.exe"] {
        if let Some(program) = child::find_program(name) {
            return Ok(Client {
                program,
                style: Style::Mstsc,
            });
        }
    }
    Err(CliError::usage("no RDP client found on PATH (xfreerdp, xfreerdp3, wlfreerdp or mstsc)")
        .hint(if cfg!(target_os = "macos") {
            "install Windows App (Microsoft Remote Desktop) from the App Store, or pass --rdp-command PROGRAM; or use --no-launch and open the .rdp file it writes"
        } else {
            "install FreeRDP (e.g. `apt install freerdp3-x11`, `dnf install freerdp`), or pass --rdp-command PROGRAM; or use --no-launch and open the .rdp file it writes"
        }))
}

/// The client's command line.
fn client_command(client: &Client, port: u16, user: Option<&str>, extra: &[String]) -> Command {
    let mut cmd = Command::new(&client.program);
    cmd.args(client_args(client.style, port, user, extra));
    cmd
}

fn client_args(style: Style, port: u16, user: Option<&str>, extra: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    match style {
        Style::FreeRdp => {
            args.push(format!("/v:localhost:{port}").into());
            if let Some(u) = user {
                args.push(format!("/u:{u}").into());
            }
        }
        Style::Mstsc => args.push(format!("/v:localhost:{port}").into()),
        Style::Open => {
            let mut url = format!("rdp://full%20address=s:localhost:{port}");
            if let Some(u) = user {
                url.push_str(&format!("&username=s:{}", percent_encode(u)));
            }
            args.push("-W".into());
            args.push(url.into());
        }
    }
    args.extend(extra.iter().map(OsString::from));
    args
}

/// Percent-encodes what an `rdp://` URL cannot carry as is.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@\\".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A private (0700) temporary directory for the `.rdp` file.
fn rdp_dir(out: &Output) -> CliResult<bastion_arm::SessionDir> {
    super::private_temp_dir(out, "bastion-rdp-", "bastion rdp")
}

/// The `.rdp` file's text: the tunnel's address, and the user name when given.
fn rdp_file_text(port: u16, user: Option<&str>) -> String {
    let mut text = format!("full address:s:localhost:{port}\r\n");
    if let Some(u) = user {
        text.push_str(&format!("username:s:{u}\r\n"));
    }
    text
}

fn write_rdp_file(path: &Path, port: u16, user: Option<&str>) -> CliResult<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(rdp_file_text(port, user).as_bytes()))
        .map_err(|e| {
            CliError::new(Code::Other, format!("cannot write {}: {e}", path.display()))
                .hint("check TMPDIR")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_gets_the_address_its_way() {
        let extra = ["/f".to_owned()];
        assert_eq!(
            client_args(Style::FreeRdp, 4000, Some("azureuser"), &extra),
            ["/v:localhost:4000", "/u:azureuser", "/f"]
        );
        assert_eq!(
            client_args(Style::Mstsc, 4000, None, &[]),
            ["/v:localhost:4000"]
        );
        assert_eq!(
            client_args(Style::Open, 4000, Some("CONTOSO\\alice smith"), &[]),
            [
                "-W",
                "rdp://full%20address=s:localhost:4000&username=s:CONTOSO\\alice%20smith"
            ]
        );
    }

    #[test]
    fn the_rdp_file_names_the_tunnel_and_the_user() {
        assert_eq!(
            rdp_file_text(4000, Some("azureuser")),
            "full address:s:localhost:4000\r\nusername:s:azureuser\r\n"
        );
        assert_eq!(
            rdp_file_text(4000, None),
            "full address:s:localhost:4000\r\n"
        );
    }
}
