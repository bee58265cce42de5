//! Handshakes between a [`TlsAcceptor`] and a [`TlsConnector`] over
//! loopback: who is admitted, and rotation without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::generate::{Ca, Issued, Usage};
use crate::{pem, ClientFiles, ServerFiles, TlsAcceptor, TlsConnector};

fn write(dir: &Path, name: &str, issued: &Issued) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    (cert, key)
}

/// Accepts one connection, answers "ok" to one byte, and returns the
/// client's common name; or the handshake's error.
async fn serve_once(listener: &TcpListener, acceptor: &TlsAcceptor) -> Result<Option<String>, String> {
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
    let cn = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| crate::common_name(c));
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
    tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
    tls.flush().await.map_err(|e| e.to_string())?;
    Ok(cn)
}

/// Connects, sends a byte and reads the answer.
async fn exchange(addr: &str, config: Arc<ClientConfig>) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = crate::client::server_name(addr).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"?").await.map_err(|e| e.to_string())?;
    tls.flush().await.map_err(|e| e.to_string())?;
    let mut answer = vec![0u8; 2];
    tls.read_exact(&mut answer).await.map_err(|e| e.to_string())?;
    Ok(answer)
}

#[tokio::test]
async fn mutual_tls_admits_only_certificates_signed_by_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, rogue_ca) = (Ca::new("cluster CA").unwrap(), Ca::new("rogue CA").unwrap());
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let (cert, key) = write(
        dir.path(),
        "m1",
        &ca.issue("m1", &["127.0.0.1"], Usage::ServerAndClient).unwrap(),
    );
    let acceptor = TlsAcceptor::new(
        ServerFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: Some(ca_file.clone()),
        },
        vec![],
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();

    // A member of the cluster.
    let (m2_cert, m2_key) = write(
        dir.path(),
        "m2",
        &ca.issue("m2", &["127.0.0.1"], Usage::ServerAndClient).unwrap(),
    );
    let member = TlsConnector::new(ClientFiles {
        cert: m2_cert,
        key: m2_key,
        ca: ca_file.clone(),
    })
    .unwrap();
    let (served, answer) = tokio::join!(serve_once(&listener, &acceptor), exchange(&addr, member.config()));
    assert_eq!(served.unwrap().as_deref(), Some("m2"));
    assert_eq!(answer.unwrap(), b"ok");

    // A certificate from another CA (trusting ours, so it gets that far).
    let (r_cert, r_key) = write(
        dir.path(),
        "rogue",
        &rogue_ca.issue("m2", &["127.0.0.1"], Usage::ServerAndClient).unwrap(),
    );
    let rogue = TlsConnector::new(ClientFiles {
        cert: r_cert,
        key: r_key,
        ca: ca_file.clone(),
    })
    .unwrap();
    let (served, answer) = tokio::join!(serve_once(&listener, &acceptor), exchange(&addr, rogue.config()));
    let refusal = served.unwrap_err();
    assert!(
        refusal.contains("UnknownIssuer") || refusal.contains("unknown"),
        "{refusal}"
    );
    assert!(answer.is_err(), "the rogue got an answer");

    // No certificate at all.
    let roots = pem::roots(&ca_file, ca.cert_pem().as_bytes()).unwrap();
    let anonymous = ClientConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (served, answer) = tokio::join!(serve_once(&listener, &acceptor), exchange(&addr, Arc::new(anonymous)));
    assert!(served.unwrap_err().to_string().contains("certificate"));
    assert!(answer.is_err(), "a client without a certificate got an answer");
}

#[tokio::test]
async fn new_handshakes_get_the_rotated_certificate_and_a_broken_rotation_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA").unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let v1 = ca.issue("v1", &["127.0.0.1"], Usage::Server).unwrap();
    let (cert, key) = write(dir.path(), "server", &v1);
    let acceptor = TlsAcceptor::new(
        ServerFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        },
        vec![],
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let roots = pem::roots(&ca_file, ca.cert_pem().as_bytes()).unwrap();
    let client = Arc::new(
        ClientConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let presented = || {
        let client = client.clone();
        let (listener, acceptor, addr) = (&listener, &acceptor, addr.clone());
        async move {
            let accept = async {
                let (tcp, _) = listener.accept().await.unwrap();
                let _ = acceptor.accept(tcp).await;
            };
            let connect = async {
                let tcp = TcpStream::connect(&addr).await.unwrap();
                let name = crate::client::server_name(&addr).unwrap();
                let tls = tokio_rustls::TlsConnector::from(client)
                    .connect(name, tcp)
                    .await
                    .unwrap();
                let cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
                crate::common_name(&cert).unwrap()
            };
            tokio::join!(accept, connect).1
        }
    };
    assert_eq!(presented().await, "v1");
    write(
        dir.path(),
        "server",
        &ca.issue("v2", &["127.0.0.1"], Usage::Server).unwrap(),
    );
    assert_eq!(presented().await, "v2");
    // The new certificate is written, its key not yet: v2 stays.
    let v3 = ca.issue("v3", &["127.0.0.1"], Usage::Server).unwrap();
    std::fs::write(&cert, &v3.cert_pem).unwrap();
    assert_eq!(presented().await, "v2");
    std::fs::write(&key, &v3.key_pem).unwrap();
    assert_eq!(presented().await, "v3");
}
