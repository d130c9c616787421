//! Stdin and stdout as the local side of [`Tunnel::serve_stdio`](crate::Tunnel::serve_stdio)
//! (what `bastion proxy` relays for ssh's `ProxyCommand`; see
//! docs/architecture.md#stdio-of-bastion-proxy).
//!
//! - On Unix, a pipe (what ssh gives a `ProxyCommand`) is read and written on the runtime's
//!   reactor: a duplicate of the descriptor is set non-blocking and registered with tokio
//!   (`tokio::net::unix::pipe`), so each chunk is one `read` or `write` on the relaying task.
//!   tokio's `Stdin` (and `tokio::fs::File`) hand every chunk to a blocking thread instead, a
//!   two-thread hand-off per chunk that cost scp through the proxy about a third of its speed.
//!   On Linux the pipe's buffer is also grown to 1 MiB, so that the writer keeps going while
//!   the relay sends the previous chunk.
//! - `O_NONBLOCK` belongs to the open file description, which other processes may share (in
//!   `(bastion proxy ...; cat) | x` the shell and `cat` hold the same pipe ends). The flag is
//!   put back as it was found when the stream is dropped, which `serve_stdio` does on every
//!   exit path (end of data, error, cancellation); only a process killed outright (`SIGKILL`)
//!   leaves it set.
//! - Anything else (a terminal, a file, a socket), and every stream on other platforms: tokio's
//!   `Stdin`, and stdout written unbuffered (`tokio::fs::File` over a duplicate of the
//!   descriptor on Unix; tokio's `Stdout` elsewhere, which the relay flushes after every chunk),
//!   so that no tunnel byte waits for a newline.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Join, ReadBuf};

/// Stdin and stdout as one stream for the relay.
pub(crate) type Stdio = Join<Input, Output>;

/// Opens stdin and stdout for the relay: pipes on the reactor where possible (Unix), tokio's
/// blocking-thread streams otherwise. Fails only when a standard descriptor cannot be
/// duplicated (no descriptor left).
pub(crate) fn open() -> io::Result<Stdio> {
    Ok(tokio::io::join(Input::open()?, Output::open()?))
}

/// What the relay reads: stdin.
pub(crate) enum Input {
    /// A pipe, read on the reactor; non-blocking until dropped.
    #[cfg(unix)]
    Pipe(unix::Pipe<tokio::net::unix::pipe::Receiver>),
    /// Anything else, read by tokio on a blocking thread.
    Std(tokio::io::Stdin),
}

/// What the relay writes: stdout, never buffered beyond one chunk.
pub(crate) enum Output {
    /// A pipe, written on the reactor; non-blocking until dropped.
    #[cfg(unix)]
    Pipe(unix::Pipe<tokio::net::unix::pipe::Sender>),
    /// Anything else on Unix: a duplicate of the descriptor, written by tokio on a blocking
    /// thread with no line buffer in between.
    #[cfg(unix)]
    File(tokio::fs::File),
    /// Other platforms: tokio's `Stdout`; the relay flushes it after every chunk.
    #[cfg(not(unix))]
    Std(tokio::io::Stdout),
}

impl Input {
    #[cfg(unix)]
    fn open() -> io::Result<Self> {
        use std::os::fd::AsFd as _;

        let fd = unix::duplicate(std::io::stdin().as_fd(), "stdin")?;
        if unix::is_fifo(&fd) {
            unix::grow_pipe(&fd);
            if let Some(pipe) = unix::Pipe::new(fd, tokio::net::unix::pipe::Receiver::from_owned_fd)
            {
                return Ok(Input::Pipe(pipe));
            }
        }
        Ok(Input::Std(tokio::io::stdin()))
    }

    #[cfg(not(unix))]
    fn open() -> io::Result<Self> {
        Ok(Input::Std(tokio::io::stdin()))
    }
}

impl Output {
    #[cfg(unix)]
    fn open() -> io::Result<Self> {
        use std::os::fd::AsFd as _;

        let fd = unix::duplicate(std::io::stdout().as_fd(), "stdout")?;
        if unix::is_fifo(&fd) {
            unix::grow_pipe(&fd);
            if let Ok(for_pipe) = fd.try_clone()
                && let Some(pipe) =
                    unix::Pipe::new(for_pipe, tokio::net::unix::pipe::Sender::from_owned_fd)
            {
                return Ok(Output::Pipe(pipe));
            }
        }
        Ok(Output::File(tokio::fs::File::from_std(
            std::fs::File::from(fd),
        )))
    }

    #[cfg(not(unix))]
    fn open() -> io::Result<Self> {
        Ok(Output::Std(tokio::io::stdout()))
    }
}

impl AsyncRead for Input {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            #[cfg(unix)]
            Input::Pipe(p) => Pin::new(&mut p.pipe).poll_read(cx, buf),
            Input::Std(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

/// Runs `$call` with `$w` bound to whichever writer `$self` holds, pinned.
macro_rules! on_output {
    ($self:expr, $w:ident => $call:expr) => {
        match $self.get_mut() {
            #[cfg(unix)]
            Output::Pipe(p) => {
                let $w = Pin::new(&mut p.pipe);
                $call
            }
            #[cfg(unix)]
            Output::File(f) => {
                let $w = Pin::new(f);
                $call
            }
            #[cfg(not(unix))]
            Output::Std(s) => {
                let $w = Pin::new(s);
                $call
            }
        }
    };
}

impl AsyncWrite for Output {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_output!(self, w => w.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_output!(self, w => w.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_output!(self, w => w.poll_shutdown(cx))
    }
}

#[cfg(unix)]
mod unix {
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

    use rustix::fs::OFlags;

    /// A duplicate of a standard descriptor (the original stays open for the process), with
    /// `name` in the error.
    pub(super) fn duplicate(fd: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
        fd.try_clone_to_owned()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot use {name}: {e}")))
    }

    pub(super) fn is_fifo(fd: &OwnedFd) -> bool {
        rustix::fs::fstat(fd)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_fifo())
    }

    /// The pipe buffer [`grow_pipe`] asks for: the writer keeps going while the relay is busy
    /// with the previous chunk (Linux's default of 64 KiB fills in one read).
    const PIPE_SIZE: usize = 1 << 20;

    /// Grows a pipe's buffer to [`PIPE_SIZE`] where the system allows (Linux; an unprivileged
    /// process up to `/proc/sys/fs/pipe-max-size`); otherwise leaves it as it is.
    pub(super) fn grow_pipe(fd: &OwnedFd) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Err(e) = rustix::pipe::fcntl_setpipe_size(fd, PIPE_SIZE) {
            tracing::debug!(error = %e, "cannot grow the pipe's buffer");
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = fd;
    }

    /// One end of a standard pipe registered with the reactor, and the blocking mode it is put
    /// back in when dropped.
    pub(crate) struct Pipe<P> {
        /// Declared first, so dropped first: deregistered and closed before `_mode` clears the
        /// flag.
        pub(super) pipe: P,
        _mode: RestoreMode,
    }

    impl<P> Pipe<P> {
        /// Registers `fd` with `register` (tokio's `from_owned_fd`, which sets `O_NONBLOCK`),
        /// after noting its mode. `None` when either fails: the mode is then as it was, and the
        /// caller falls back on the blocking-thread stream.
        pub(super) fn new(fd: OwnedFd, register: fn(OwnedFd) -> io::Result<P>) -> Option<Self> {
            let mode = match RestoreMode::save(&fd) {
                Ok(mode) => mode,
                Err(e) => {
                    // Never switch a mode that could not be put back.
                    tracing::debug!(error = %e, "cannot read the pipe's mode");
                    return None;
                }
            };
            match register(fd) {
                Ok(pipe) => Some(Pipe { pipe, _mode: mode }),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot use the pipe on the reactor");
                    drop(mode);
                    None
                }
            }
        }
    }

    /// Clears `O_NONBLOCK` again on drop, unless it was set to begin with. Holds a descriptor of
    /// its own for the same open file description, so it does not depend on fd 0 or 1 still
    /// being what they were.
    struct RestoreMode {
        fd: OwnedFd,
        was_nonblocking: bool,
    }

    impl RestoreMode {
        fn save(fd: &OwnedFd) -> io::Result<Self> {
            let fd = fd.try_clone()?;
            let flags = rustix::fs::fcntl_getfl(&fd)?;
            Ok(RestoreMode {
                fd,
                was_nonblocking: flags.contains(OFlags::NONBLOCK),
            })
        }
    }

    impl Drop for RestoreMode {
        fn drop(&mut self) {
            if self.was_nonblocking {
                return;
            }
            // Only the flag this module set is changed: any other status flag stays as it is now.
            let restored = rustix::fs::fcntl_getfl(self.fd.as_fd()).and_then(|flags| {
                if flags.contains(OFlags::NONBLOCK) {
                    rustix::fs::fcntl_setfl(self.fd.as_fd(), flags - OFlags::NONBLOCK)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = restored {
                tracing::debug!(error = %e, "cannot put the pipe back in blocking mode");
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::fd::OwnedFd;

    use rustix::fs::OFlags;
    use rustix::pipe::PipeFlags;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::unix::pipe::{Receiver, Sender};

    use super::unix::Pipe;

    fn nonblocking(fd: &OwnedFd) -> bool {
        match rustix::fs::fcntl_getfl(fd) {
            Ok(flags) => flags.contains(OFlags::NONBLOCK),
            Err(e) => panic!("F_GETFL: {e}"),
        }
    }

    #[tokio::test]
    async fn a_blocking_pipe_is_non_blocking_while_used_and_blocking_again_after() {
        let (r, w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).expect("pipe");
        // What another process holding the same pipe ends would see.
        let (shared_r, shared_w) = (r.try_clone().expect("dup"), w.try_clone().expect("dup"));
        let mut rx = Pipe::new(r, Receiver::from_owned_fd).expect("read end on the reactor");
        let mut tx = Pipe::new(w, Sender::from_owned_fd).expect("write end on the reactor");
        assert!(nonblocking(&shared_r) && nonblocking(&shared_w));

        tx.pipe.write_all(b"chunk").await.expect("write");
        let mut back = [0u8; 5];
        rx.pipe.read_exact(&mut back).await.expect("read");
        assert_eq!(&back, b"chunk");

        drop(rx);
        assert!(!nonblocking(&shared_r), "the read end is blocking again");
        assert!(nonblocking(&shared_w), "the write end is still in use");
        drop(tx);
        assert!(!nonblocking(&shared_w), "the write end is blocking again");
    }

    #[tokio::test]
    async fn a_pipe_found_non_blocking_stays_non_blocking() {
        let (r, _w) =
            rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).expect("pipe");
        let shared = r.try_clone().expect("dup");
        let rx = Pipe::new(r, Receiver::from_owned_fd).expect("read end on the reactor");
        drop(rx);
        assert!(nonblocking(&shared), "the mode it was found in is kept");
    }

    #[tokio::test]
    async fn a_failed_registration_leaves_the_mode_as_it_was() {
        let (r, _w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).expect("pipe");
        let shared = r.try_clone().expect("dup");
        // As tokio's `from_owned_fd` could: the flag set, then the registration refused.
        let set_then_fail = |fd: OwnedFd| -> std::io::Result<Receiver> {
            let flags = rustix::fs::fcntl_getfl(&fd)?;
            rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
            Err(std::io::Error::other("refused"))
        };
        assert!(Pipe::new(r, set_then_fail).is_none());
        assert!(!nonblocking(&shared), "the read end is blocking again");
    }
}
