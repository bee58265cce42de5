//! Mutual TLS between members, under the peer [`transport`](crate::transport).
//!
//! With `peer_cert_file`, `peer_key_file` and `peer_trusted_ca_file`, a
//! member's peer listener admits only connections whose client presents a
//! certificate signed by the cluster's CA, and a member connects to its
//! peers with its own certificate, verifying theirs (the host of the peer
//! address must be named in it). Without them the transport is plain TCP.
//! Either way the frames are the same; [`PeerStream`] is the connection a
//! member makes, whichever it is.
//!
//! # Correctness
//! - Nothing is read from a connection before its handshake has verified
//!   the peer's certificate: a process without a certificate of the
//!   cluster's CA cannot vote, append, install a snapshot, forward a write
//!   or a membership change, or ask for a read index.
//! - A connection counts as made only once the listener has admitted it.
//!   In TLS 1.3 the client finishes its handshake before the server has
//!   checked the client's certificate, so the listener sends one byte,
//!   [`ADMITTED`], after it has; the connecting side waits for it before
//!   sending a request. A refused certificate is therefore a
//!   [`PeerError::Connect`](crate::transport::PeerError::Connect): the
//!   request was never sent, and may be retried elsewhere.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use firebreak_tls::tokio_rustls::{client, server};
use firebreak_tls::{ClientFiles, ServerFiles, TlsAcceptor, TlsConnector, TlsError};
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Sent by the listener once a peer's certificate is verified.
pub const ADMITTED: u8 = 0xad;

/// How long a listener gives a new connection to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// This member's side of mutual TLS with its peers.
pub struct PeerTls {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

impl PeerTls {
    /// Loads the files now; they are re-read at each handshake.
    pub fn new(config: &firebreak_config::PeerTls) -> Result<PeerTls, TlsError> {
        Ok(PeerTls {
            acceptor: TlsAcceptor::new(
                ServerFiles {
                    cert: config.cert_file.clone(),
                    key: config.key_file.clone(),
                    client_ca: Some(config.trusted_ca_file.clone()),
                },
                Vec::new(),
            )?,
            connector: TlsConnector::new(ClientFiles {
                cert: config.cert_file.clone(),
                key: config.key_file.clone(),
                ca: config.trusted_ca_file.clone(),
            })?,
        })
    }

    /// The listener's side: the handshake (which verifies the client's
    /// certificate), then [`ADMITTED`].
    pub async fn admit(&self, tcp: TcpStream) -> std::io::Result<server::TlsStream<TcpStream>> {
        let mut stream = self.acceptor.accept(tcp).await?;
        stream.write_all(&[ADMITTED]).await?;
        stream.flush().await?;
        Ok(stream)
    }

    /// The connecting side: the handshake (which verifies the server's
    /// certificate against `addr`'s host), then waiting for [`ADMITTED`].
    async fn connect(&self, addr: &str, tcp: TcpStream) -> std::io::Result<client::TlsStream<TcpStream>> {
        let mut stream = self.connector.connect(addr, tcp).await?;
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await?;
        if byte[0] != ADMITTED {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the peer listener did not admit this connection",
            ));
        }
        Ok(stream)
    }
}

/// A connection to a peer's listener.
pub enum PeerStream {
    Plain(TcpStream),
    Tls(Box<client::TlsStream<TcpStream>>),
}

impl PeerStream {
    /// Connects to `addr`, with TLS if `tls` is given: only a connection
    /// the listener admitted is returned.
    pub async fn connect(addr: &str, tls: Option<&PeerTls>) -> std::io::Result<PeerStream> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        Ok(match tls {
            None => PeerStream::Plain(tcp),
            Some(tls) => PeerStream::Tls(Box::new(tls.connect(addr, tcp).await?)),
        })
    }

    /// Whether an idle connection is still usable: it has nothing to read,
    /// while data or EOF means the peer closed it (or restarted).
    pub fn is_idle(&mut self) -> bool {
        let mut probe = [0u8; 1];
        match self {
            PeerStream::Plain(tcp) => {
                matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
            // Reading through TLS also consumes what is not application
            // data (session tickets, a close_notify) without blocking.
            PeerStream::Tls(tls) => tls.read(&mut probe).now_or_never().is_none(),
        }
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PeerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PeerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PeerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PeerStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use firebreak_tls::generate::{Ca, Usage};
    use tokio::net::TcpListener;

    use super::*;
    use crate::transport::{read_frame, write_frame, PeerError, PeerRequest, PeerResponse, Peers};

    fn files(dir: &Path, ca: &Ca, name: &str, trusted: &Path) -> firebreak_config::PeerTls {
        let issued = ca.issue(name, &["127.0.0.1"], Usage::ServerAndClient).unwrap();
        let (cert_file, key_file) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_file, issued.cert_pem).unwrap();
        std::fs::write(&key_file, issued.key_pem).unwrap();
        firebreak_config::PeerTls {
            cert_file,
            key_file,
            trusted_ca_file: trusted.to_path_buf(),
        }
    }

    #[tokio::test]
    async fn a_refused_certificate_is_a_connect_error_and_an_admitted_connection_is_pooled() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, rogue_ca) = (Ca::new("cluster").unwrap(), Ca::new("rogue").unwrap());
        let trusted = dir.path().join("ca.crt");
        std::fs::write(&trusted, ca.cert_pem()).unwrap();
        let server = Arc::new(PeerTls::new(&files(dir.path(), &ca, "m1", &trusted)).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (accepted, served) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let listening = tokio::spawn({
            let (accepted, served) = (accepted.clone(), served.clone());
            async move {
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let (server, served) = (server.clone(), served.clone());
                    tokio::spawn(async move {
                        let Ok(mut stream) = server.admit(tcp).await else {
                            return;
                        };
                        while read_frame::<PeerRequest>(&mut stream).await.is_ok() {
                            served.fetch_add(1, Ordering::SeqCst);
                            let _ = write_frame(&mut stream, &PeerResponse::ReadIndex(Ok(7))).await;
                        }
                    });
                }
            }
        });
        let timeout = Duration::from_secs(5);

        let member = Peers::new(Some(Arc::new(
            PeerTls::new(&files(dir.path(), &ca, "m2", &trusted)).unwrap(),
        )));
        for _ in 0..3 {
            match member.get(2, &addr).call(&PeerRequest::ReadIndex, timeout).await {
                Ok(PeerResponse::ReadIndex(Ok(7))) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "the TLS connection was not reused");

        // Its handshake completes on its side (TLS 1.3), but the listener
        // refuses the certificate: the request is never sent.
        let rogue = Peers::new(Some(Arc::new(
            PeerTls::new(&files(dir.path(), &rogue_ca, "m3", &trusted)).unwrap(),
        )));
        match rogue.get(3, &addr).call(&PeerRequest::ReadIndex, timeout).await {
            Err(PeerError::Connect { source, .. }) => {
                assert!(source.to_string().contains("UnknownCA"), "{source}")
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
        assert_eq!(served.load(Ordering::SeqCst), 3, "the rogue's request was read");
        listening.abort();
    }
}
