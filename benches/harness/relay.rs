//! The bulk phase's reference row: two plain TCP relay processes in the tunnel's place
//! (harness -> relay A -> relay B -> target), the same process layout and loopback hops as
//! `bastion tunnel` -> `bastion emulate` -> target, without TLS or WebSocket framing.
//!
//! Each relay is this binary started again as `bastion-bench --relay-process TARGET_PORT`
//! ([`main`]); [`start`] runs one as a child of the harness.

use std::io::Read as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use crate::Error;
use crate::procs::Proc;

/// The relay's copy buffer, each way: the tunnel's relay reads 64 KiB at a time.
const BUF: usize = 64 * 1024;

/// `bastion-bench --relay-process TARGET_PORT` (`args` is what follows the flag): listens on
/// 127.0.0.1:0, prints its port as the first line of stdout, and relays every accepted
/// connection to 127.0.0.1:TARGET_PORT, on the runtime `bastion` runs (multi-thread, 2
/// workers). Exits when its stdin closes (the harness has gone), or on SIGTERM.
pub fn main(args: &[String]) -> ExitCode {
    let target = match args {
        [p] => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                eprintln!(
                    "bastion-bench: --relay-process: {p:?} is not a port — pass the target's port on 127.0.0.1"
                );
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!(
                "bastion-bench: --relay-process takes exactly one argument — pass the target's port on 127.0.0.1"
            );
            return ExitCode::from(2);
        }
    };
    // The harness holds our stdin open: when it exits, however it exits, so do we.
    std::thread::spawn(|| {
        let mut buf = [0u8; 256];
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    let rt = match crate::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bastion-bench: relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(serve(target));
    rt.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bastion-bench: relay: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(target: u16) -> std::io::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    println!("{}", listener.local_addr()?.port());
    relay_all(listener, target).await
}

/// Relays every connection accepted on `listener` to 127.0.0.1:`target`, both ways, each
/// direction's end of stream passed on as a half-close.
async fn relay_all(listener: TcpListener, target: u16) -> std::io::Result<()> {
    loop {
        let (mut inbound, _) = match listener.accept().await {
            Ok(a) => a,
            // Out of descriptors or the like: back off, as the tunnel's listener does.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let _ = inbound.set_nodelay(true);
            let mut up = match TcpStream::connect((Ipv4Addr::LOCALHOST, target)).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("bastion-bench: relay: cannot connect to 127.0.0.1:{target}: {e}");
                    return;
                }
            };
            let _ = up.set_nodelay(true);
            if let Err(e) =
                tokio::io::copy_bidirectional_with_sizes(&mut inbound, &mut up, BUF, BUF).await
            {
                eprintln!("bastion-bench: relay: {e}");
            }
        });
    }
}

/// A running relay process.
pub struct RelayProc {
    /// The process (killed on drop; its stdin, a pipe from us, closes then too).
    pub proc: Proc,
    /// Its listening port on 127.0.0.1.
    pub port: u16,
}

/// Starts this binary as `--relay-process TARGET_PORT` (stderr to `LOGS/relay-NAME.stderr.log`)
/// and waits (bounded) for the port it prints.
pub async fn start(logs: &Path, name: &str, target_port: u16) -> Result<RelayProc, Error> {
    let exe = std::env::current_exe()?;
    let err_path = logs.join(format!("relay-{name}.stderr.log"));
    let err = std::fs::File::create(&err_path)
        .map_err(|e| Error::new(format!("{}: {e}", err_path.display())))?;
    let mut child = Command::new(&exe)
        .arg("--relay-process")
        .arg(target_port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::new(format!("cannot start {}: {e}", exe.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::new("no stdout pipe"))?;
    // The stdin pipe stays in the child handle: it closes when the `Proc` goes.
    let proc = Proc::new(&format!("relay ({name})"), child)?;
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    let log = || std::fs::read_to_string(&err_path).unwrap_or_default();
    match read {
        Ok(Ok(_)) => match line.trim().parse::<u16>() {
            Ok(port) => Ok(RelayProc { proc, port }),
            Err(_) => Err(Error::new(format!(
                "{} printed {:?}, not a port ({})",
                proc.name,
                line.trim(),
                log().trim()
            ))),
        },
        Ok(Err(e)) => Err(Error::new(format!("{}: {e}", proc.name))),
        Err(_) => Err(Error::new(format!(
            "{} printed no port within 10 s ({})",
            proc.name,
            log().trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Two relays chained as in the bulk phase: every byte arrives, in order, each way, and
    /// each side's end of stream reaches the other end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_chained_relays_carry_both_directions_and_half_closes() {
        // The target reads to end of stream, then answers with a digest of what it read and
        // the byte count, and closes.
        let target = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let target_port = target.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = target.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            let mut reply = (got.len() as u64).to_be_bytes().to_vec();
            reply.extend(got.iter().rev().take(BUF + 7));
            s.write_all(&reply).await.unwrap();
            s.shutdown().await.unwrap();
            got
        });
        let second = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let second_port = second.local_addr().unwrap().port();
        tokio::spawn(relay_all(second, target_port));
        let first = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let first_port = first.local_addr().unwrap().port();
        tokio::spawn(relay_all(first, second_port));

        let sent: Vec<u8> = (0..3 * BUF + 123).map(|i| (i * 7 % 251) as u8).collect();
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, first_port))
            .await
            .unwrap();
        c.write_all(&sent).await.unwrap();
        c.shutdown().await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), c.read_to_end(&mut reply))
            .await
            .expect("hang guard: the reply or its end of stream never came")
            .unwrap();

        assert_eq!(server.await.unwrap(), sent);
        let mut want = (sent.len() as u64).to_be_bytes().to_vec();
        want.extend(sent.iter().rev().take(BUF + 7));
        assert_eq!(reply, want);
    }

    /// A relay whose target refuses closes the client's connection instead of holding it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_target_closes_the_client() {
        // A port with nothing listening: bind one, note it, free it.
        let gone = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let gone_port = gone.local_addr().unwrap().port();
        drop(gone);
        let relay = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = relay.local_addr().unwrap().port();
        tokio::spawn(relay_all(relay, gone_port));
        let mut c = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(60), c.read(&mut buf))
            .await
            .expect("hang guard: the relay kept the connection open");
        assert!(matches!(n, Ok(0) | Err(_)), "read {n:?}");
    }
}
