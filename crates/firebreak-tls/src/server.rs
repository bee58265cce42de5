//! The server side: a listener's certificate and key, and for mutual TLS
//! the CA that client certificates must be signed by.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use crate::reload::Reloading;
use crate::{pem, provider, TlsError};

/// The files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// The certificate chain to present, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// With a CA (PEM), every client must present a certificate signed by
    /// it, or the handshake fails. Without one, no client certificate is
    /// asked for.
    pub client_ca: Option<PathBuf>,
}

/// Accepts TLS connections with the listener's files as they are on disk
/// at each handshake (see [`crate::reload`]).
pub struct TlsAcceptor {
    config: Reloading<ServerConfig>,
}

fn build(files: &ServerFiles, alpn: &[Vec<u8>], contents: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let refused = |reason: String| TlsError::Refused {
        what: format!("{} with {}", files.cert.display(), files.key.display()),
        reason,
    };
    let chain = pem::certs(&files.cert, &contents[0])?;
    let key = pem::key(&files.key, &contents[1])?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(e.to_string()))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let roots = pem::roots(ca, &contents[2])?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Invalid {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    // Also checks that the key belongs to the certificate.
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| refused(e.to_string()))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

impl TlsAcceptor {
    /// Loads the files now; offers the `alpn` protocols (gRPC needs `h2`).
    pub fn new(files: ServerFiles, alpn: Vec<Vec<u8>>) -> Result<TlsAcceptor, TlsError> {
        let mut paths = vec![files.cert.clone(), files.key.clone()];
        paths.extend(files.client_ca.clone());
        let config = Reloading::new("TLS listener", paths, move |contents| build(&files, &alpn, contents))?;
        Ok(TlsAcceptor { config })
    }

    /// The configuration for a handshake starting now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.current()
    }

    /// Runs the server side of a handshake on `io`. With a client CA, it
    /// fails unless the client presented a certificate signed by it.
    pub async fn accept<IO>(&self, io: IO) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        tokio_rustls::TlsAcceptor::from(self.config()).accept(io).await
    }
}
