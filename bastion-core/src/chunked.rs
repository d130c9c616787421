//! A reader that cuts its data into reads of chosen sizes, answering `Pending` before every
//! other one: how the in-band detector is driven by the property tests and by the fuzz target,
//! so both see the chunkings a socket can produce.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// An `AsyncRead` that hands out `data` in chunks of `sizes` (cycled), answering `Pending`
/// (after waking itself) before every other chunk, then EOF.
pub(crate) struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    turn: usize,
    pend: bool,
}

impl<'a> Chunked<'a> {
    /// `data` in chunks of `sizes` (each at least 1).
    pub(crate) fn new(data: &'a [u8], sizes: Vec<usize>) -> Self {
        Self {
            data,
            sizes,
            turn: 0,
            pend: false,
        }
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pend {
            this.pend = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let size = this.sizes[this.turn % this.sizes.len()];
        this.turn += 1;
        this.pend = this.turn.is_multiple_of(2);
        let n = size.min(this.data.len()).min(buf.remaining());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        Poll::Ready(Ok(()))
    }
}
