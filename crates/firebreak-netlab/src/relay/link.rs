//! One relayed connection: two delayed pipes, and the cut that ends them.
//!
//! # Correctness
//!
//! - Each chunk read from one side is written to the other at its arrival
//!   plus the one-way delay. Chunks of a direction queue in arrival order
//!   and each waits only for its own deadline, so delays overlap instead of
//!   adding up, and the byte order of the stream is kept. Tokio's timer
//!   fires on millisecond ticks, rounding deadlines up, so the relay asks
//!   for half a tick less ([`TICK_CENTRE`]): the added delay is then centred
//!   on the one asked instead of always above it. The report shows the
//!   delays actually added.
//! - A half-close travels too: end of stream on one side shuts down the
//!   other side's write half once the queued chunks are delivered.
//! - When a cut separates the two ends, both sockets are closed with a reset
//!   (zero linger) at once, dropping whatever is queued.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::stats::Counters;

/// Chunks in flight per direction before the reader waits.
const QUEUE: usize = 256;
/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;
/// Half of tokio's timer tick, taken off each deadline (see the module docs).
pub const TICK_CENTRE: Duration = Duration::from_micros(500);

/// Whether traffic from `src` to `dst` is blocked by the cut set `cut` (a
/// bit per datacenter). Traffic inside one datacenter is never blocked;
/// traffic of unknown source is blocked while any datacenter is cut (it
/// might come from the cut one).
pub fn blocked(cut: u64, src: Option<usize>, dst: usize) -> bool {
    let is_cut = |dc: usize| cut & (1 << dc) != 0;
    match src {
        Some(src) if src == dst => false,
        Some(src) => is_cut(src) || is_cut(dst),
        None => cut != 0,
    }
}

/// Closes a socket with a reset instead of a FIN when it is dropped.
fn reset_on_close(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is a socket that is still open (its owner is alive while
    // this runs); setsockopt reads one `linger`.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Refuses an accepted connection: closes it with a reset.
pub fn refuse(stream: TcpStream) {
    reset_on_close(stream.as_raw_fd());
    drop(stream);
}

/// Relays between `inbound` and `upstream` until both directions end or a
/// cut separates `src` from `dst`.
pub async fn relay(
    inbound: TcpStream,
    upstream: TcpStream,
    src: Option<usize>,
    dst: usize,
    one_way: Duration,
    mut cut: watch::Receiver<u64>,
    counters: Arc<Counters>,
) {
    let _ = inbound.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let fds = [inbound.as_raw_fd(), upstream.as_raw_fd()];
    let delay = if src == Some(dst) { Duration::ZERO } else { one_way };
    let (in_read, in_write) = inbound.into_split();
    let (up_read, up_write) = upstream.into_split();
    let pipes = async {
        tokio::join!(
            pipe(in_read, up_write, delay, counters.clone()),
            pipe(up_read, in_write, delay, counters.clone()),
        )
    };
    let severed = async {
        loop {
            if blocked(*cut.borrow_and_update(), src, dst) {
                // The sockets are still owned by `pipes`, which outlives this.
                for fd in fds {
                    reset_on_close(fd);
                }
                return;
            }
            if cut.changed().await.is_err() {
                // The relay is shutting down.
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = pipes => {}
        () = severed => {
            counters.cut_connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Copies `from` to `to`, delaying each chunk by `delay` from its arrival.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration, counters: Arc<Counters>) {
    use std::sync::atomic::Ordering::Relaxed;
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let counters_w = counters.clone();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    counters.bytes.fetch_add(n as u64, Relaxed);
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` lets the writer finish the queue and shut down.
    };
    let writer = async move {
        while let Some((arrived, chunk)) = rx.recv().await {
            if !delay.is_zero() {
                let wait = if delay > TICK_CENTRE * 2 {
                    delay - TICK_CENTRE
                } else {
                    delay
                };
                tokio::time::sleep_until(arrived + wait).await;
                counters_w.record_delay(arrived.elapsed());
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_block_only_traffic_that_crosses_them() {
        let dc2_cut = 1 << 1;
        assert!(!blocked(0, Some(0), 1));
        assert!(blocked(dc2_cut, Some(0), 1));
        assert!(blocked(dc2_cut, Some(1), 0));
        assert!(!blocked(dc2_cut, Some(1), 1), "inside a datacenter");
        assert!(!blocked(dc2_cut, Some(0), 2));
        assert!(blocked(dc2_cut, None, 1));
        assert!(blocked(dc2_cut, None, 0), "an unknown source may be the cut datacenter");
        assert!(!blocked(0, None, 0));
    }
}
