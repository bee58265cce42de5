//! The client side of mutual TLS between members: this member's
//! certificate, and the CA that the peers' certificates must be signed by.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

use crate::reload::Reloading;
use crate::{pem, provider, TlsError};

/// The files of a TLS client that authenticates itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    /// The certificate chain to present, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA that servers' certificates must be signed by (PEM).
    pub ca: PathBuf,
}

/// Connects with the files as they are on disk at each handshake (see
/// [`crate::reload`]).
pub struct TlsConnector {
    config: Reloading<ClientConfig>,
}

fn build(files: &ClientFiles, contents: &[Vec<u8>]) -> Result<ClientConfig, TlsError> {
    let chain = pem::certs(&files.cert, &contents[0])?;
    let key = pem::key(&files.key, &contents[1])?;
    let roots = pem::roots(&files.ca, &contents[2])?;
    let refused = |reason: String| TlsError::Refused {
        what: format!("{} with {}", files.cert.display(), files.key.display()),
        reason,
    };
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(e.to_string()))?
        .with_root_certificates(roots)
        // Also checks that the key belongs to the certificate.
        .with_client_auth_cert(chain, key)
        .map_err(|e| refused(e.to_string()))?;
    Ok(config)
}

/// The host of `host:port` (`[v6]:port` too), as TLS names the server.
pub fn server_name(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{addr:?} has no host usable as a TLS server name: {e}"),
        )
    })
}

impl TlsConnector {
    /// Loads the files now.
    pub fn new(files: ClientFiles) -> Result<TlsConnector, TlsError> {
        let paths = vec![files.cert.clone(), files.key.clone(), files.ca.clone()];
        let config = Reloading::new("TLS client", paths, move |contents| build(&files, contents))?;
        Ok(TlsConnector { config })
    }

    /// The configuration for a handshake starting now.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.current()
    }

    /// Runs the client side of a handshake with the server at `addr`
    /// (`host:port`, the host being what its certificate must name).
    pub async fn connect<IO>(&self, addr: &str, io: IO) -> std::io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = server_name(addr)?;
        tokio_rustls::TlsConnector::from(self.config()).connect(name, io).await
    }
}

/// A client configuration for a one-off tool (`firebreak status`): servers
/// verified against `ca` (PEM), and, if given, a certificate and key (PEM)
/// presented to servers that ask for one. Offers `alpn`.
pub fn tool_config(
    ca: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
    alpn: Vec<Vec<u8>>,
) -> Result<ClientConfig, TlsError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| TlsError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let roots = pem::roots(ca, &read(ca)?)?;
    let refused = |reason: String| TlsError::Refused {
        what: "TLS client".to_string(),
        reason,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = pem::certs(cert, &read(cert)?)?;
            let key = pem::key(key, &read(key)?)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| refused(e.to_string()))?
        }
    };
    config.alpn_protocols = alpn;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_host() {
        assert_eq!(
            server_name("127.0.0.1:2380").unwrap(),
            ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into())
        );
        assert_eq!(
            server_name("[::1]:2380").unwrap(),
            ServerName::IpAddress("::1".parse::<std::net::IpAddr>().unwrap().into())
        );
        assert_eq!(server_name("db-1.dc1:2380").unwrap().to_str(), "db-1.dc1");
        assert!(server_name("bad host:1").is_err());
    }
}
