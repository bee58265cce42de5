//! TLS against real `firebreak serve` processes: mutual TLS keeps a
//! process without the cluster's certificate out of the peer protocol,
//! certificates rotate without a restart, and `client_cert_auth` admits
//! only clients with a certificate of the trusted CA.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Cluster, Options};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use firebreak_mvcc::{PutRequest, WriteCommand};
use firebreak_raft::membership::MembershipChange;
use firebreak_raft::peer_tls::{PeerStream, PeerTls, ADMITTED};
use firebreak_raft::transport::{read_frame, write_frame, PeerRequest, PeerResponse};
use firebreak_raft::types::log_id;
use firebreak_tls::generate::{Ca, Issued, Usage};
use firebreak_tls::rustls::{self, ClientConfig};
use firebreak_tls::tokio_rustls::TlsConnector;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{EntryPayload, Vote};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

/// A CA and the certificates it signed, as files in a directory of its
/// own.
struct Pki {
    dir: PathBuf,
    ca: Ca,
    ca_file: PathBuf,
}

impl Pki {
    fn new(parent: &Path, name: &str) -> Pki {
        let dir = parent.join(name);
        std::fs::create_dir(&dir).unwrap();
        let ca = Ca::new(name).unwrap();
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        Pki { dir, ca, ca_file }
    }

    /// A certificate for `name` (SANs 127.0.0.1 and localhost), written to
    /// `<name>.crt` and `<name>.key`.
    fn issue(&self, name: &str, usage: Usage) -> (Issued, PathBuf, PathBuf) {
        let issued = self.ca.issue(name, &["127.0.0.1", "localhost"], usage).unwrap();
        let (cert, key) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&key, &issued.key_pem).unwrap();
        std::fs::write(&cert, &issued.cert_pem).unwrap();
        (issued, cert, key)
    }
}

/// How a test cluster's client listeners are set up.
#[derive(Clone, Copy, PartialEq)]
enum ClientSide {
    Plain,
    Tls,
    TlsWithClientCertAuth,
}

/// A cluster whose members have certificates of `pki` (each its own,
/// CN = its name), TLS on the client side as `client` says and mutual TLS
/// between members if `peer`; prepared, not started.
fn secure_cluster(opts: Options, pki: &Pki, client: ClientSide, peer: bool) -> Cluster {
    let cluster = Cluster::prepare(opts);
    for m in &cluster.members {
        let (_, cert, key) = pki.issue(&m.name, Usage::ServerAndClient);
        let mut text = std::fs::read_to_string(&m.config).unwrap();
        let mut tls = String::from("\n[tls]\n");
        if client != ClientSide::Plain {
            text = text.replace("client_url = \"http://", "client_url = \"https://");
            tls += &format!("cert_file = {:?}\nkey_file = {:?}\n", cert, key);
        }
        if client == ClientSide::TlsWithClientCertAuth {
            // A copy per member, so that one member's trusted CA can change.
            let ca = pki.dir.join(format!("{}-client-ca.crt", m.name));
            std::fs::copy(&pki.ca_file, &ca).unwrap();
            tls += &format!("trusted_ca_file = {ca:?}\nclient_cert_auth = true\n");
        }
        if peer {
            text = text.replace("peer_url = \"http://", "peer_url = \"https://");
            tls += &format!(
                "peer_cert_file = {cert:?}\npeer_key_file = {key:?}\npeer_trusted_ca_file = {:?}\n",
                pki.ca_file
            );
        }
        std::fs::write(&m.config, text + &tls).unwrap();
    }
    cluster
}

fn start_all(cluster: &mut Cluster) {
    for i in 0..cluster.members.len() {
        cluster.start_member(i);
    }
}

fn https(cluster: &Cluster, i: usize) -> String {
    format!("https://127.0.0.1:{}", cluster.members[i].client_port)
}

/// An etcd client of `endpoint` over TLS, trusting `ca`, with `identity`
/// (certificate and key PEM) as its client certificate if given.
async fn tls_client(endpoint: &str, ca: &str, identity: Option<&Issued>) -> Result<Client, etcd_client::Error> {
    let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(id) = identity {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    let options = ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    Client::connect([endpoint], Some(options)).await
}

/// A put through `endpoint` with that TLS setup, within ten seconds.
async fn tls_put(endpoint: &str, ca: &str, identity: Option<&Issued>, key: &str) -> Result<(), String> {
    let attempt = async {
        let mut c = tls_client(endpoint, ca, identity).await.map_err(|e| e.to_string())?;
        c.put(key, "v", None).await.map(|_| ()).map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// Waits until a put through every member succeeds over TLS.
async fn wait_tls_writable(cluster: &Cluster, ca: &str, identity: Option<&Issued>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..cluster.members.len() {
        loop {
            match tls_put(&https(cluster, i), ca, identity, "__ready").await {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    panic!("member {i} is not writable over TLS: {e}; log:\n{}", cluster.log(i))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The subject CN of the certificate a TLS listener presents to a new
/// connection.
async fn presented_common_name(addr: &str, ca: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let config = ClientConfig::builder_with_provider(firebreak_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    firebreak_tls::common_name(&leaf).unwrap()
}

// --- The rogue peer ------------------------------------------------------

/// The id the rogue claims: no member has it.
const ROGUE: u64 = 0xbad;

/// Well-formed peer frames that would each change the cluster if a member
/// acted on them: a vote and entries for a far higher term, a forwarded
/// write, a read index, a membership change, a campaign.
fn hostile_frames(term: u64) -> Vec<(&'static str, PeerRequest)> {
    let entry = firebreak_raft::types::Entry {
        log_id: log_id(term + 100, ROGUE, 1),
        payload: EntryPayload::Normal(WriteCommand::Put(PutRequest {
            key: Bytes::from_static(b"rogue/appended"),
            value: Bytes::from_static(b"x"),
            ..Default::default()
        })),
    };
    vec![
        (
            "Vote",
            PeerRequest::Vote(VoteRequest::new(
                Vote::new(term + 100, ROGUE),
                Some(log_id(term + 100, ROGUE, 1_000_000)),
            )),
        ),
        (
            "AppendEntries",
            PeerRequest::AppendEntries(AppendEntriesRequest {
                vote: Vote::new_committed(term + 100, ROGUE),
                prev_log_id: None,
                entries: vec![entry],
                leader_commit: Some(log_id(term + 100, ROGUE, 1)),
            }),
        ),
        (
            "Write",
            PeerRequest::Write(WriteCommand::Put(PutRequest {
                key: Bytes::from_static(b"rogue/forwarded"),
                value: Bytes::from_static(b"x"),
                ..Default::default()
            })),
        ),
        ("ReadIndex", PeerRequest::ReadIndex),
        (
            "Membership",
            PeerRequest::Membership(MembershipChange::Add {
                peer_url: "https://127.0.0.1:9?name=rogue&datacenter=dc4".into(),
                learner: false,
            }),
        ),
        ("Campaign", PeerRequest::Campaign),
    ]
}

/// Sends `frame` on `stream` and collects whatever comes back until the
/// member closes the connection. Panics if that is a peer response, or if
/// the member neither answers nor closes.
async fn send_and_collect<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, frame: &PeerRequest) -> String {
    let wrote = write_frame(&mut stream, frame).await;
    let mut back = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return "then EOF".to_string(),
                Ok(n) => back.extend_from_slice(&buf[..n]),
                Err(e) => return format!("then {e}"),
            }
            // Admitted and answered: the listener let the rogue in.
            let body = back.strip_prefix(&[ADMITTED]).unwrap_or(&back);
            if let Ok(answer) = read_frame::<PeerResponse>(&mut &body[..]).await {
                panic!("the member answered the rogue: {answer:?}");
            }
        }
    })
    .await
    .expect("the member neither answered nor closed the connection");
    let received = match back.first() {
        None => "nothing".to_string(),
        // A TLS record of type alert: level, description.
        Some(0x15) if back.len() >= 7 => format!("a TLS alert (description {})", back[6]),
        Some(_) => format!("{} bytes that are no peer response", back.len()),
    };
    format!(
        "write {}; received {received}, {ended}",
        wrote.map_or_else(|e| format!("failed ({e})"), |()| "ok".into())
    )
}

/// How a rogue reaches a peer listener.
enum Rogue {
    /// Plain TCP, as a member without peer TLS would.
    PlainTcp,
    /// TLS with `config` (a certificate of another CA, or none).
    Tls(&'static str, Arc<ClientConfig>),
}

impl Rogue {
    fn name(&self) -> &'static str {
        match self {
            Rogue::PlainTcp => "plain TCP",
            Rogue::Tls(name, _) => name,
        }
    }

    async fn send(&self, addr: &str, frame: &PeerRequest) -> String {
        let tcp = TcpStream::connect(addr).await.unwrap();
        match self {
            Rogue::PlainTcp => send_and_collect(tcp, frame).await,
            Rogue::Tls(_, config) => {
                let name = ServerName::try_from("127.0.0.1").unwrap();
                match TlsConnector::from(config.clone()).connect(name, tcp).await {
                    Err(e) => format!("TLS handshake failed on its side: {e}"),
                    Ok(tls) => format!("TLS handshake done on its side; {}", send_and_collect(tls, frame).await),
                }
            }
        }
    }
}

/// A rustls client that trusts the cluster's CA (so that it gets as far
/// as it can) and presents `identity`, if any.
fn rogue_config(cluster_ca: &str, identity: Option<&Issued>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cluster_ca.as_bytes()).unwrap())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(firebreak_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_without_the_clusters_certificate_cannot_vote_append_forward_or_read() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster-ca");
    let rogue_pki = Pki::new(dir.path(), "rogue-ca");
    // Slow elections, so that the term moves only if a rogue moves it.
    let opts = Options {
        heartbeat_ms: 100,
        election_ms: 2000,
        ..Options::default()
    };
    let cluster = secure_cluster(opts, &pki, ClientSide::Plain, true).launch().await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let mut client = cluster.client().await;
    let before = client.status().await.unwrap();
    let term = before.raft_term();

    // The rogue's certificate names a real member and is signed by a CA of
    // its own.
    let (impostor, _, _) = rogue_pki.issue("m1", Usage::ServerAndClient);
    let rogues = [
        Rogue::PlainTcp,
        Rogue::Tls(
            "TLS, certificate of another CA",
            rogue_config(pki.ca.cert_pem(), Some(&impostor)),
        ),
        Rogue::Tls("TLS, no certificate", rogue_config(pki.ca.cert_pem(), None)),
    ];
    for target in [leader, follower] {
        let addr = format!("127.0.0.1:{}", cluster.members[target].peer_port);
        for rogue in &rogues {
            for (what, frame) in hostile_frames(term) {
                let seen = rogue.send(&addr, &frame).await;
                eprintln!(
                    "rogue ({}) -> {} {what}: {seen}",
                    rogue.name(),
                    if target == leader { "leader" } else { "follower" }
                );
            }
        }
    }

    // Nothing took effect: same term and leader everywhere, no rogue keys,
    // no new member, and every member still takes writes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for i in 0..3 {
        let mut c = cluster.client_of(i).await;
        let status = c.status().await.unwrap();
        assert_eq!(status.raft_term(), term, "member {i}'s term moved");
        assert_eq!(status.leader(), before.leader(), "member {i} follows another leader");
    }
    let rogue_keys = client
        .get("rogue/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(rogue_keys.kvs().is_empty(), "a rogue write took effect");
    assert_eq!(client.member_list().await.unwrap().members().len(), 3);
    cluster.wait_writable(Duration::from_secs(10)).await;

    // The control: the same frames from a process that holds a certificate
    // of the cluster's CA are answered and take effect, so the refusals
    // above are the certificate's doing.
    let (_, cert, key) = pki.issue("tester", Usage::ServerAndClient);
    let tls = PeerTls::new(&firebreak_config::PeerTls {
        cert_file: cert,
        key_file: key,
        trusted_ca_file: pki.ca_file.clone(),
    })
    .unwrap();
    let addr = format!("127.0.0.1:{}", cluster.members[leader].peer_port);
    let mut stream = PeerStream::connect(&addr, Some(&tls)).await.unwrap();
    write_frame(&mut stream, &PeerRequest::ReadIndex).await.unwrap();
    match read_frame::<PeerResponse>(&mut stream).await.unwrap() {
        PeerResponse::ReadIndex(Ok(index)) => assert!(index > 0),
        other => panic!("unexpected answer {other:?}"),
    }
    let write = PeerRequest::Write(WriteCommand::Put(PutRequest {
        key: Bytes::from_static(b"control/forwarded"),
        value: Bytes::from_static(b"x"),
        ..Default::default()
    }));
    write_frame(&mut stream, &write).await.unwrap();
    match read_frame::<PeerResponse>(&mut stream).await.unwrap() {
        PeerResponse::Write(Ok(Ok(_))) => {}
        other => panic!("unexpected answer {other:?}"),
    }
    let got = client.get("control/forwarded", None).await.unwrap();
    assert_eq!(got.kvs().len(), 1, "the certified forwarded write is missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster-ca");
    let ca = pki.ca.cert_pem().to_string();
    let mut cluster = secure_cluster(Options::default(), &pki, ClientSide::Tls, true);
    start_all(&mut cluster);
    wait_tls_writable(&cluster, &ca, None).await;
    let pid = cluster.members[0].pid().unwrap();
    let addr = format!("127.0.0.1:{}", cluster.members[0].client_port);
    assert_eq!(presented_common_name(&addr, &ca).await, "m1");
    let mut before = tls_client(&https(&cluster, 0), &ca, None).await.unwrap();
    before.put("before", "1", None).await.unwrap();

    // Replace m1's certificate and key (its client and peer listeners use
    // the same files): the key first, as an operator might.
    let rotated = pki
        .ca
        .issue("m1-rotated", &["127.0.0.1"], Usage::ServerAndClient)
        .unwrap();
    std::fs::write(pki.dir.join("m1.key"), &rotated.key_pem).unwrap();
    std::fs::write(pki.dir.join("m1.crt"), &rotated.cert_pem).unwrap();

    assert_eq!(presented_common_name(&addr, &ca).await, "m1-rotated");
    // A new client verifies the new certificate; the old connection lives.
    tls_put(&https(&cluster, 0), &ca, None, "after").await.unwrap();
    before.put("before", "2", None).await.unwrap();
    // Replication and read indexes through the other members still work.
    tls_put(&https(&cluster, 1), &ca, None, "via-m2").await.unwrap();
    let mut reader = tls_client(&https(&cluster, 0), &ca, None).await.unwrap();
    assert_eq!(reader.get("via-m2", None).await.unwrap().kvs().len(), 1);
    // The same process throughout.
    assert_eq!(cluster.members[0].pid(), Some(pid));
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc::kill(pid as i32, 0) }, 0, "m1 is gone");
    assert!(
        cluster.log(0).contains("TLS files changed"),
        "m1 did not log the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_auth_admits_only_clients_with_a_certificate_of_the_trusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster-ca");
    let other = Pki::new(dir.path(), "other-ca");
    let ca = pki.ca.cert_pem().to_string();
    let (alice, _, _) = pki.issue("alice", Usage::Client);
    let (bob, _, _) = other.issue("bob", Usage::Client);
    let mut cluster = secure_cluster(Options::default(), &pki, ClientSide::TlsWithClientCertAuth, true);
    start_all(&mut cluster);
    wait_tls_writable(&cluster, &ca, Some(&alice)).await;

    let m1 = https(&cluster, 0);
    let mut c = tls_client(&m1, &ca, Some(&alice)).await.unwrap();
    c.put("k", "alice", None).await.unwrap();
    assert_eq!(c.get("k", None).await.unwrap().kvs()[0].value(), b"alice");

    let no_certificate = tls_put(&m1, &ca, None, "k").await;
    assert!(no_certificate.is_err(), "a client without a certificate was let in");
    let foreign = tls_put(&m1, &ca, Some(&bob), "k").await;
    assert!(foreign.is_err(), "a certificate of another CA was let in");
    let plain = async {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3));
        let mut c = Client::connect(
            [format!("http://127.0.0.1:{}", cluster.members[0].client_port)],
            Some(options),
        )
        .await
        .map_err(|e| e.to_string())?;
        c.put("k", "plain", None).await.map(|_| ()).map_err(|e| e.to_string())
    };
    let plain = tokio::time::timeout(Duration::from_secs(10), plain)
        .await
        .unwrap_or(Err("timed out".into()));
    assert!(plain.is_err(), "a client without TLS was let in");
    eprintln!("refused: no certificate: {no_certificate:?}; other CA: {foreign:?}; plain: {plain:?}");

    // m1 comes to trust the other CA too, without a restart: bob gets in
    // there, and still not at m2.
    let trusted = pki.dir.join("m1-client-ca.crt");
    std::fs::write(&trusted, format!("{}{}", pki.ca.cert_pem(), other.ca.cert_pem())).unwrap();
    tls_put(&m1, &ca, Some(&bob), "bob").await.unwrap();
    assert!(tls_put(&https(&cluster, 1), &ca, Some(&bob), "bob").await.is_err());
    assert_eq!(c.get("k", None).await.unwrap().kvs()[0].value(), b"alice");
}

/// With `client_cert_auth` and auth enabled, a request without a token is
/// made as the user its client certificate names (CN), as in etcd; a token
/// still wins over the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_cert_auth_the_certificates_common_name_is_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "cluster-ca");
    let ca = pki.ca.cert_pem().to_string();
    let (root, _, _) = pki.issue("root", Usage::Client);
    let (alice, _, _) = pki.issue("alice", Usage::Client);
    let (mallory, _, _) = pki.issue("mallory", Usage::Client);
    let mut cluster = secure_cluster(Options::default(), &pki, ClientSide::TlsWithClientCertAuth, true);
    start_all(&mut cluster);
    wait_tls_writable(&cluster, &ca, Some(&root)).await;

    let m1 = https(&cluster, 0);
    let mut admin = tls_client(&m1, &ca, Some(&root)).await.unwrap();
    admin.user_add("root", "rootpw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.user_add("alice", "alicepw", None).await.unwrap();
    admin.role_add("app").await.unwrap();
    admin
        .role_grant_permission("app", etcd_client::Permission::read_write("app/").with_prefix())
        .await
        .unwrap();
    admin.user_grant_role("alice", "app").await.unwrap();
    admin.auth_enable().await.unwrap();

    // Every member judges the certificate's name the same way.
    for i in 0..cluster.members.len() {
        let mut a = tls_client(&https(&cluster, i), &ca, Some(&alice)).await.unwrap();
        a.put(format!("app/{i}"), "by alice", None)
            .await
            .unwrap_or_else(|e| panic!("alice's certificate at member {i}: {e}"));
        let denied = a.put("other/x", "v", None).await.unwrap_err().to_string();
        assert!(denied.contains("permission denied"), "member {i}: {denied}");
    }
    // A certificate whose name is no user gets nothing.
    let mut m = tls_client(&m1, &ca, Some(&mallory)).await.unwrap();
    let refused = m.get("app/0", None).await.unwrap_err().to_string();
    assert!(
        refused.contains("permission denied") || refused.contains("user name"),
        "{refused}"
    );
    // The root certificate administers without a password; a token wins
    // over the certificate: alice's token on root's certificate is alice.
    let mut r = tls_client(&m1, &ca, Some(&root)).await.unwrap();
    r.put("other/x", "by root", None).await.unwrap();
    let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca.as_str()));
    tls = tls.identity(Identity::from_pem(&root.cert_pem, &root.key_pem));
    let options = ConnectOptions::new()
        .with_tls(tls)
        .with_user("alice", "alicepw")
        .with_timeout(Duration::from_secs(5));
    let mut as_alice = Client::connect([m1.as_str()], Some(options)).await.unwrap();
    let denied = as_alice.put("other/y", "v", None).await.unwrap_err().to_string();
    assert!(denied.contains("permission denied"), "{denied}");
    admin.auth_disable().await.unwrap();
}
