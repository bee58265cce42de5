//! The WAN link emulator: a userspace TCP relay, in the manner of
//! Toxiproxy, on every path between datacenters.
//!
//! The relay listens, in the root namespace, on each member's gateway
//! address (one listener per member and port: its client URL and its peer
//! URL point there) and forwards to the member's real address inside its
//! namespace. For each accepted connection it finds the source datacenter
//! ([`source`]); traffic between two datacenters is delayed by half the
//! round trip in each direction ([`link`]), traffic inside one datacenter
//! is not. A cut ([`Relay::cut`]) drops the relayed connections that cross
//! it and refuses new ones, until [`Relay::heal`].
//!
//! All of it runs on one dedicated thread with its own single-threaded
//! runtime, so its CPU cost can be measured exactly ([`stats`]).
//!
//! # Correctness
//!
//! - Listeners are bound before [`Relay::start`] returns, so a member that
//!   starts afterwards can always reach its peers' URLs (or be refused by a
//!   cut, never by a missing listener).
//! - A cut takes effect for existing connections as soon as the relay
//!   thread sees the new cut set, and for new ones at their accept; the
//!   caller also cuts with nftables, which does not depend on this thread.

pub mod link;
pub mod source;
pub mod stats;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use source::{Registry, SourceMap};

/// Why the relay could not start: a listener or its thread.
#[derive(Debug, thiserror::Error)]
#[error("{what} ({at}): {source}")]
pub struct RelayError {
    /// What the relay was doing.
    pub what: &'static str,
    /// The address (or thread) involved.
    pub at: String,
    /// The underlying error.
    #[source]
    pub source: std::io::Error,
}

impl RelayError {
    fn at(what: &'static str, at: impl Into<String>) -> impl FnOnce(std::io::Error) -> RelayError {
        let at = at.into();
        move |source| RelayError { what, at, source }
    }
}
pub use stats::{Counters, RelayStats};

/// One relay listener: traffic to `listen` goes to `upstream`, a member of
/// datacenter `dc`.
#[derive(Debug, Clone)]
pub struct Route {
    /// Where the relay listens (the member's advertised URL).
    pub listen: SocketAddr,
    /// The member's real listener.
    pub upstream: SocketAddr,
    /// The member's datacenter (0-based).
    pub dc: usize,
}

/// A running relay; dropping it stops the relay thread and closes every
/// relayed connection.
pub struct Relay {
    cut_tx: watch::Sender<u64>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<Counters>,
    one_way: Duration,
}

impl Relay {
    /// Binds every route and starts the relay thread.
    pub fn start(routes: Vec<Route>, rtt: Duration, sources: SourceMap) -> Result<Relay, RelayError> {
        let mut listeners = Vec::new();
        for route in routes {
            let listener = std::net::TcpListener::bind(route.listen)
                .map_err(RelayError::at("the relay cannot listen", route.listen.to_string()))?;
            listener
                .set_nonblocking(true)
                .map_err(RelayError::at("the relay cannot listen", route.listen.to_string()))?;
            listeners.push((listener, route));
        }
        let one_way = rtt / 2;
        let (cut_tx, cut_rx) = watch::channel(0u64);
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("wan-relay".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("relay runtime");
                thread_counters.register_relay_thread();
                let tasks_counters = thread_counters.clone();
                runtime.block_on(async move {
                    for (listener, route) in listeners {
                        let listener = TcpListener::from_std(listener).expect("relay listener");
                        tokio::spawn(accept_loop(
                            listener,
                            route,
                            one_way,
                            cut_rx.clone(),
                            sources.clone(),
                            tasks_counters.clone(),
                        ));
                    }
                    let _ = shutdown_rx.await;
                });
                thread_counters.unregister_relay_thread();
                drop(runtime);
            })
            .map_err(RelayError::at("cannot start the relay thread", "wan-relay"))?;
        Ok(Relay {
            cut_tx,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            counters,
            one_way,
        })
    }

    /// Cuts datacenter `dc` off: drops its relayed connections to and from
    /// other datacenters and refuses new ones.
    pub fn cut(&self, dc: usize) {
        self.cut_tx.send_modify(|set| *set |= 1 << dc);
    }

    /// Undoes [`Relay::cut`].
    pub fn heal(&self, dc: usize) {
        self.cut_tx.send_modify(|set| *set &= !(1 << dc));
    }

    /// The one-way delay between datacenters.
    pub fn one_way(&self) -> Duration {
        self.one_way
    }

    /// Counters so far.
    pub fn stats(&self) -> RelayStats {
        self.counters.snapshot()
    }

    /// CPU nanoseconds of the relay thread so far.
    pub fn cpu_ns(&self) -> Option<u64> {
        self.counters.cpu_ns()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    route: Route,
    one_way: Duration,
    cut: watch::Receiver<u64>,
    sources: SourceMap,
    counters: Arc<Counters>,
) {
    let local = route.listen;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, listen = %local, "relay accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (upstream, dst, cut, counters, sources) =
            (route.upstream, route.dc, cut.clone(), counters.clone(), sources.clone());
        tokio::spawn(async move {
            let src = identify(&sources, peer, local, &counters).await;
            if link::blocked(*cut.borrow(), src, dst) {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                link::refuse(stream);
                return;
            }
            let connected = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(upstream)).await;
            let Ok(Ok(upstream)) = connected else {
                counters.upstream_failures.fetch_add(1, Ordering::Relaxed);
                link::refuse(stream);
                return;
            };
            counters.connections.fetch_add(1, Ordering::Relaxed);
            link::relay(stream, upstream, src, dst, one_way, cut, counters).await;
        });
    }
}

/// The source datacenter of a connection; a `/proc` look-up runs on a
/// blocking thread, its CPU time counted as the relay's.
async fn identify(sources: &SourceMap, peer: SocketAddr, local: SocketAddr, counters: &Arc<Counters>) -> Option<usize> {
    let src = match sources {
        SourceMap::Addresses(plan) => plan.dc_of(peer),
        SourceMap::Processes(_) => {
            let (sources, counters) = (sources.clone(), counters.clone());
            tokio::task::spawn_blocking(move || {
                let started = stats::thread_cpu_ns();
                let src = sources.identify(peer, local);
                let spent = stats::thread_cpu_ns().saturating_sub(started);
                counters.lookup_cpu_ns.fetch_add(spent, Ordering::Relaxed);
                src
            })
            .await
            .ok()
            .flatten()
        }
    };
    if src.is_none() {
        counters.unidentified.fetch_add(1, Ordering::Relaxed);
    }
    src
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    use crate::addr::{AddressPlan, Mode};

    /// An echo server on loopback; returns its address.
    fn echo_server() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn free_addr() -> SocketAddr {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    fn unknown_sources() -> SourceMap {
        // Loopback sources are unknown to an address-based map.
        SourceMap::Addresses(AddressPlan {
            mode: Mode::Loopback,
            prefix: [127, 0],
            dcs: 3,
            nodes_per_dc: 1,
        })
    }

    #[test]
    fn relays_with_the_round_trip_added_and_cuts_on_command() {
        let upstream = echo_server();
        let listen = free_addr();
        let relay = Relay::start(
            vec![Route {
                listen,
                upstream,
                dc: 1,
            }],
            Duration::from_millis(40),
            unknown_sources(),
        )
        .unwrap();

        let mut conn = std::net::TcpStream::connect(listen).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        conn.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        let rtt = started.elapsed();
        assert_eq!(&buf, b"ping");
        assert!(
            rtt >= Duration::from_millis(40),
            "round trip {rtt:?} is below the 40 ms asked"
        );
        assert!(rtt < Duration::from_millis(1000), "round trip {rtt:?}");

        // Delays overlap: ten chunks sent at once arrive after about one round trip.
        let started = Instant::now();
        for _ in 0..10 {
            conn.write_all(b"x").unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut got = 0;
        while got < 10 {
            got += conn.read(&mut [0u8; 16]).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{:?}",
            started.elapsed()
        );

        relay.cut(1);
        // The existing connection is dropped...
        let mut rest = Vec::new();
        let dropped = conn.read_to_end(&mut rest);
        assert!(dropped.is_err() || rest.is_empty(), "{dropped:?}");
        // ...and new ones are refused.
        let mut again = std::net::TcpStream::connect(listen).unwrap();
        again.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = again.write_all(b"ping");
        let mut buf = [0u8; 4];
        assert!(again.read_exact(&mut buf).is_err());

        relay.heal(1);
        let mut healed = std::net::TcpStream::connect(listen).unwrap();
        healed.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        healed.write_all(b"pong").unwrap();
        healed.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");

        let stats = relay.stats();
        assert!(stats.refused >= 1 && stats.cut_connections >= 1, "{stats:?}");
        assert!(stats.bytes >= 16, "{stats:?}");
        assert!(stats.cpu_ms.is_some(), "{stats:?}");
        assert!(stats.delay_p50_ms.unwrap() >= 20.0, "{stats:?}");
    }
}
