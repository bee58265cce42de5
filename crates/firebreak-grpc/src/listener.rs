//! The client listener: plain TCP, or TLS with the member's certificate
//! (etcd's `cert_file`, `key_file`), and with `client_cert_auth` only for
//! clients whose certificate the trusted CA signed.
//!
//! TLS handshakes run on their own tasks, so a slow or silent client holds
//! up nobody else's connection; one that has not finished its handshake
//! after [`HANDSHAKE_TIMEOUT`] is dropped. The certificate, key and CA are
//! re-read at each handshake ([`firebreak_tls::reload`]): rotating them
//! needs no restart, and connections already open keep theirs.
//!
//! # Correctness
//! - A [`ClientCommonName`] is put into a request's extensions only by
//!   [`identify`], only from the connection the request came on, and only
//!   when rustls verified that connection's client certificate against the
//!   trusted CA. Nothing a client sends (headers, metadata) can set it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use firebreak_config::ClientTls;
use firebreak_tls::tokio_rustls::server::TlsStream;
use firebreak_tls::{ServerFiles, TlsAcceptor, TlsError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::{Request, Status};

use crate::identity::ClientCommonName;

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where clients connect.
pub struct ClientListener {
    tcp: TcpListener,
    tls: Option<Arc<TlsAcceptor>>,
}

/// What a request knows of the connection it came on.
#[derive(Debug, Clone)]
pub struct ClientConnectInfo {
    pub tcp: TcpConnectInfo,
    /// The common name of the client's verified certificate, with
    /// `client_cert_auth`.
    pub common_name: Option<ClientCommonName>,
}

/// One accepted client connection, its TLS handshake done.
pub struct ClientConnection {
    io: Io,
    info: ClientConnectInfo,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl ClientListener {
    /// Clients on `tcp`, over TLS if `tls` is given (its files are read
    /// now, and a problem with them is an error).
    pub fn new(tcp: TcpListener, tls: Option<&ClientTls>) -> Result<ClientListener, TlsError> {
        let tls = match tls {
            None => None,
            Some(tls) => Some(Arc::new(TlsAcceptor::new(
                ServerFiles {
                    cert: tls.cert_file.clone(),
                    key: tls.key_file.clone(),
                    client_ca: tls.client_ca_file.clone(),
                },
                // gRPC runs over HTTP/2; grpc-go clients insist on ALPN.
                // HTTP/1.1 too, for /metrics, /health and the dashboard.
                vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            )?)),
        };
        Ok(ClientListener { tcp, tls })
    }

    /// The connections, as they complete their handshakes. Accepting stops,
    /// and the listening socket closes, when the stream is dropped.
    pub(crate) fn incoming(self) -> ReceiverStream<std::io::Result<ClientConnection>> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(accept(self, tx));
        ReceiverStream::new(rx)
    }
}

type Accepted = mpsc::Sender<std::io::Result<ClientConnection>>;

async fn accept(listener: ClientListener, tx: Accepted) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.tcp.accept() => accepted,
            _ = tx.closed() => return,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, not spin.
                tracing::warn!(error = %e, "cannot accept a client connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tcp_info = TcpConnectInfo {
            local_addr: tcp.local_addr().ok(),
            remote_addr: Some(remote),
        };
        match &listener.tls {
            None => {
                let connection = ClientConnection {
                    io: Io::Plain(tcp),
                    info: ClientConnectInfo {
                        tcp: tcp_info,
                        common_name: None,
                    },
                };
                if tx.send(Ok(connection)).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                tokio::spawn(handshake(tls.clone(), tcp, tcp_info, remote, tx.clone()));
            }
        }
    }
}

async fn handshake(tls: Arc<TlsAcceptor>, tcp: TcpStream, tcp_info: TcpConnectInfo, remote: SocketAddr, tx: Accepted) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::warn!(%remote, error = %e, "refused a client connection: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, "refused a client connection: no TLS handshake in time");
            return;
        }
    };
    let common_name = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| firebreak_tls::common_name(leaf))
        .map(ClientCommonName);
    let connection = ClientConnection {
        io: Io::Tls(Box::new(stream)),
        info: ClientConnectInfo {
            tcp: tcp_info,
            common_name,
        },
    };
    let _ = tx.send(Ok(connection)).await;
}

/// The interceptor that gives each request what its connection knows: the
/// [`TcpConnectInfo`] (so `Request::remote_addr` works) and the verified
/// client certificate's [`ClientCommonName`].
pub fn identify(mut request: Request<()>) -> Result<Request<()>, Status> {
    if let Some(info) = request.extensions_mut().remove::<ClientConnectInfo>() {
        request.extensions_mut().insert(info.tcp);
        if let Some(name) = info.common_name {
            request.extensions_mut().insert(name);
        }
    }
    Ok(request)
}

impl Connected for ClientConnection {
    type ConnectInfo = ClientConnectInfo;

    fn connect_info(&self) -> ClientConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for ClientConnection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientConnection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use firebreak_tls::generate::{Ca, Usage};
    use firebreak_tls::{ClientFiles, TlsConnector};
    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn only_a_verified_client_certificate_names_the_user_of_its_requests() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (ca, rogue_ca) = (Ca::new("CA").unwrap(), Ca::new("rogue").unwrap());
        let server = ca.issue("m1", &["127.0.0.1"], Usage::Server).unwrap();
        let alice = ca.issue("alice", &[], Usage::Client).unwrap();
        let mallory = rogue_ca.issue("root", &[], Usage::Client).unwrap();
        let ca_file = file("ca.crt", ca.cert_pem());
        let tls = ClientTls {
            cert_file: file("m1.crt", &server.cert_pem),
            key_file: file("m1.key", &server.key_pem),
            client_ca_file: Some(ca_file.clone()),
        };
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap().to_string();
        let mut incoming = ClientListener::new(tcp, Some(&tls)).unwrap().incoming();
        let client = |cert: &firebreak_tls::generate::Issued, name: &str| {
            TlsConnector::new(ClientFiles {
                cert: file(&format!("{name}.crt"), &cert.cert_pem),
                key: file(&format!("{name}.key"), &cert.key_pem),
                ca: ca_file.clone(),
            })
            .unwrap()
        };

        let alice = client(&alice, "alice");
        let _alice_conn = alice
            .connect(&addr, TcpStream::connect(&addr).await.unwrap())
            .await
            .unwrap();
        let connection = incoming.next().await.unwrap().unwrap();
        let info = connection.connect_info();
        assert_eq!(info.common_name, Some(ClientCommonName("alice".into())));
        let mut request = Request::new(());
        request.extensions_mut().insert(info);
        let request = identify(request).unwrap();
        assert_eq!(
            request.extensions().get::<ClientCommonName>(),
            Some(&ClientCommonName("alice".into()))
        );
        assert!(request.remote_addr().is_some());

        // A certificate of another CA (named "root", at that) gets no
        // connection at all, so no request and no user.
        let mallory = client(&mallory, "mallory");
        let _ = mallory.connect(&addr, TcpStream::connect(&addr).await.unwrap()).await;
        let next = tokio::time::timeout(Duration::from_millis(500), incoming.next()).await;
        assert!(next.is_err(), "a connection with a foreign certificate was accepted");
    }

    #[test]
    fn without_a_verified_certificate_a_request_has_no_user() {
        let mut request = Request::new(());
        request.extensions_mut().insert(ClientConnectInfo {
            tcp: TcpConnectInfo {
                local_addr: None,
                remote_addr: Some("127.0.0.1:5".parse().unwrap()),
            },
            common_name: None,
        });
        let request = identify(request).unwrap();
        assert!(request.extensions().get::<ClientCommonName>().is_none());
        assert!(request.remote_addr().is_some());
    }
}
