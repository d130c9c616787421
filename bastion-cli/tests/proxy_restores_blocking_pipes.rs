//! `bastion proxy` reads and writes its stdin and stdout pipes in non-blocking mode, and that
//! mode is a flag of the open file description, shared with every process that holds the same
//! pipe end (`(bastion proxy ...; cat) | x`). These tests hold the very pipe ends the proxy is
//! given, as such a process would, and check that the flag is set while the proxy relays (the
//! fast path is in use) and cleared once it has exited, whether it ended on end of input, a
//! signal or an error from the Bastion (docs/architecture.md#stdio-of-bastion-proxy).

use crate::common;

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Stdio};

use bastion_emulator::Faults;
use common::{CoreSandbox, WAIT, exit_status, read_stderr};
use rustix::fs::OFlags;
use rustix::pipe::PipeFlags;
use tokio::io::AsyncReadExt as _;
use tokio::process::Child;

/// A running `bastion proxy` on two pipes this test created, and the test's own descriptors
/// for the proxy's ends of them.
struct Proxy {
    child: Child,
    /// The write end of the proxy's stdin (dropped: end of input).
    to_stdin: Option<std::fs::File>,
    /// The read end of the proxy's stdout.
    from_stdout: tokio::net::unix::pipe::Receiver,
    /// The same open file description as the proxy's stdin.
    its_stdin: OwnedFd,
    /// The same open file description as the proxy's stdout.
    its_stdout: OwnedFd,
}

impl Proxy {
    fn spawn(sandbox: &CoreSandbox) -> Self {
        let (stdin_r, stdin_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).unwrap();
        let (stdout_r, stdout_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).unwrap();
        let its_stdin = stdin_r.try_clone().unwrap();
        let its_stdout = stdout_w.try_clone().unwrap();
        let mut cmd = sandbox.proxy(&[]);
        cmd.stdin(Stdio::from(stdin_r))
            .stdout(Stdio::from(stdout_w))
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("spawn bastion proxy");
        // The command's copies of the child's ends go with it.
        drop(cmd);
        Proxy {
            child,
            to_stdin: Some(std::fs::File::from(stdin_w)),
            // Non-blocking on the test's read end only: a description of its own.
            from_stdout: tokio::net::unix::pipe::Receiver::from_owned_fd(stdout_r).unwrap(),
            its_stdin,
            its_stdout,
        }
    }

    /// Sends `msg` through the proxy and reads the echo back.
    async fn echo(&mut self, msg: &[u8]) {
        // A few bytes into an empty pipe: the write does not block.
        let stdin = self.to_stdin.as_mut().expect("stdin open");
        stdin.write_all(msg).unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(WAIT, self.from_stdout.read_exact(&mut back))
            .await
            .expect("the echo came back in time")
            .unwrap();
        assert_eq!(back, msg);
    }

    /// Whether (stdin, stdout) are in non-blocking mode.
    fn nonblocking(&self) -> (bool, bool) {
        let flag = |fd: &OwnedFd| {
            rustix::fs::fcntl_getfl(fd)
                .unwrap()
                .contains(OFlags::NONBLOCK)
        };
        (flag(&self.its_stdin), flag(&self.its_stdout))
    }

    /// Asserts that both pipes are in non-blocking mode: the proxy relays them on its reactor.
    #[track_caller]
    fn assert_relaying_nonblocking(&self) {
        assert_eq!(
            self.nonblocking(),
            (true, true),
            "while relaying, the proxy reads and writes its pipes in non-blocking mode"
        );
    }

    /// Waits for the proxy to exit and returns its status and stderr.
    async fn exited(&mut self, what: &str) -> (ExitStatus, String) {
        let status = exit_status(&mut self.child, what).await;
        let stderr = read_stderr(&mut self.child).await;
        assert!(!stderr.contains("panicked"), "{stderr}");
        (status, stderr)
    }

    /// Asserts that both pipes are back in blocking mode.
    #[track_caller]
    fn assert_blocking_again(&self, stderr: &str) {
        assert_eq!(
            self.nonblocking(),
            (false, false),
            "(stdin, stdout) still non-blocking after the proxy exited; stderr:\n{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_again_after_end_of_input() {
    let sandbox = CoreSandbox::start().await;
    let mut proxy = Proxy::spawn(&sandbox);
    proxy.echo(b"SSH-2.0-test\r\n").await;
    proxy.assert_relaying_nonblocking();

    drop(proxy.to_stdin.take());
    let (status, stderr) = proxy.exited("the proxy exited after end of input").await;
    assert!(status.success(), "exit {status:?}: {stderr}");
    proxy.assert_blocking_again(&stderr);
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_again_after_sigterm() {
    let sandbox = CoreSandbox::start().await;
    let mut proxy = Proxy::spawn(&sandbox);
    proxy.echo(b"ping").await;
    proxy.assert_relaying_nonblocking();

    let pid = rustix::process::Pid::from_raw(proxy.child.id().expect("pid") as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let (_, stderr) = proxy.exited("the proxy exited on SIGTERM").await;
    proxy.assert_blocking_again(&stderr);
    // stdin is still open: the proxy did not wait for it.
    assert!(proxy.to_stdin.is_some());
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_again_after_the_bastion_fails_the_session() {
    let sandbox = CoreSandbox::start().await;
    sandbox
        .emu
        .set_faults(Faults::none().close_after_bytes(64, 1011, "internal error"));
    let mut proxy = Proxy::spawn(&sandbox);
    proxy.echo(b"ping").await;
    proxy.assert_relaying_nonblocking();

    // Past the fault's 64 bytes: the Bastion closes with 1011, an error for the proxy.
    proxy
        .to_stdin
        .as_mut()
        .expect("stdin open")
        .write_all(&[b'x'; 256])
        .unwrap();
    let (status, stderr) = proxy
        .exited("the proxy exited after the Bastion's close")
        .await;
    assert!(!status.success(), "a 1011 close is an error: {stderr}");
    assert!(stderr.contains("1011"), "{stderr}");
    proxy.assert_blocking_again(&stderr);
    sandbox.emu.assert_no_orphans();
}

/// The other path: a stdout that is not a pipe (here a file) is written as it is, on tokio's
/// blocking threads, and gets every byte; its mode is never touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_to_a_file_gets_the_bytes_and_keeps_its_mode() {
    let sandbox = CoreSandbox::start().await;
    let (stdin_r, stdin_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).unwrap();
    let its_stdin = stdin_r.try_clone().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(out.path())
        .unwrap();
    let its_stdout = OwnedFd::from(file.try_clone().unwrap());
    let mut cmd = sandbox.proxy(&[]);
    cmd.stdin(Stdio::from(stdin_r))
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn bastion proxy");
    drop(cmd);

    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut to_stdin = std::fs::File::from(stdin_w);
    let writer =
        tokio::task::spawn_blocking(move || to_stdin.write_all(&payload).map(|()| payload));
    let payload = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the proxy read its input in time")
        .unwrap()
        .unwrap();
    // End of input (the writer thread dropped its end): the proxy ends after the echo.
    let status = exit_status(&mut child, "the proxy exited after end of input").await;
    let stderr = read_stderr(&mut child).await;
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(
        std::fs::read(out.path()).unwrap() == payload,
        "the file holds other bytes than were sent"
    );
    for fd in [&its_stdin, &its_stdout] {
        let flags = rustix::fs::fcntl_getfl(fd).unwrap();
        assert!(!flags.contains(OFlags::NONBLOCK), "{flags:?}; {stderr}");
    }
    sandbox.emu.assert_no_orphans();
}
