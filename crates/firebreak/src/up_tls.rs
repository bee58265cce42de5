//! The certificates of `firebreak up --tls`, under `<data-dir>/tls/`:
//!
//! | file | what |
//! | --- | --- |
//! | `ca.crt`, `ca.key` | the CA of the client side; clients trust `ca.crt` |
//! | `client.crt`, `client.key` | a client certificate (CN `root`) for etcdctl and applications |
//! | `<member>.crt`, `<member>.key` | each member's certificate on its client listener (CN its name, SANs 127.0.0.1 and localhost) |
//! | `peer-ca.crt`, `peer-ca.key` | the cluster's CA, which signs members' peer certificates and nothing else |
//! | `<member>-peer.crt`, `<member>-peer.key` | each member's peer certificate, on its peer listener and towards its peers |
//!
//! Two CAs, because a peer listener admits every certificate its CA
//! signed: were the client certificate signed by the peer CA, whoever holds
//! it could speak Raft to the members.
//!
//! A second `up --tls` on the same directory reuses what is there and
//! makes only what is missing (a member added with `--nodes-per-dc`), with
//! the same CA. Private keys are written readable by their owner only.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use firebreak_tls::generate::{Ca, Issued, Usage};

/// The subjects of the local CAs; a CA loaded back must have been made
/// with its own.
const CA_NAME: &str = "Firebreak local CA";
const PEER_CA_NAME: &str = "Firebreak local peer CA";
/// The common name of the client certificate: with auth enabled, the user
/// a request without a token acts as (etcd's `client_cert_auth` rule).
pub const CLIENT_COMMON_NAME: &str = "root";

/// Where the certificates of a local cluster are.
pub struct TlsLayout {
    pub dir: PathBuf,
}

impl TlsLayout {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.crt")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }
    pub fn member_cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.crt"))
    }
    pub fn member_key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
    pub fn peer_ca(&self) -> PathBuf {
        self.dir.join("peer-ca.crt")
    }
    pub fn peer_cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-peer.crt"))
    }
    pub fn peer_key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-peer.key"))
    }
}

fn write_file(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn write_pair(cert: &Path, key: &Path, issued: &Issued) -> anyhow::Result<()> {
    write_file(key, &issued.key_pem, true)?;
    write_file(cert, &issued.cert_pem, false)
}

/// The CA `<stem>.crt` and `<stem>.key` of `dir`, made if there is none;
/// `true` if it was just made.
fn ca(dir: &Path, stem: &str, name: &str) -> anyhow::Result<(Ca, bool)> {
    let (cert, key) = (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")));
    match (cert.exists(), key.exists()) {
        (true, true) => {
            let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
            let ca = Ca::from_pem(name, &read(&cert)?, &read(&key)?).with_context(|| {
                format!(
                    "{} was not made by `firebreak up --tls`; remove {} to start over",
                    cert.display(),
                    dir.display()
                )
            })?;
            Ok((ca, false))
        }
        (false, false) => {
            let ca = Ca::new(name)?;
            write_file(&key, &ca.key_pem(), true)?;
            write_file(&cert, ca.cert_pem(), false)?;
            Ok((ca, true))
        }
        _ => bail!(
            "{} holds only one of {stem}.crt and {stem}.key; remove it to start over",
            dir.display()
        ),
    }
}

/// Makes (or reuses) the certificates of the members `names`.
pub fn prepare(data_dir: &Path, names: &[String]) -> anyhow::Result<TlsLayout> {
    let dir = data_dir.join("tls");
    firebreak_raft::durable_dir::create_dir_durably(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let layout = TlsLayout { dir };
    for (stem, ca_name) in [("ca", CA_NAME), ("peer-ca", PEER_CA_NAME)] {
        let (ca, fresh) = ca(&layout.dir, stem, ca_name)?;
        let pairs: Vec<(PathBuf, PathBuf, &str, Usage)> = if stem == "ca" {
            let mut pairs: Vec<_> = names
                .iter()
                .map(|n| (layout.member_cert(n), layout.member_key(n), n.as_str(), Usage::Server))
                .collect();
            pairs.push((
                layout.client_cert(),
                layout.client_key(),
                CLIENT_COMMON_NAME,
                Usage::Client,
            ));
            pairs
        } else {
            names
                .iter()
                .map(|n| {
                    (
                        layout.peer_cert(n),
                        layout.peer_key(n),
                        n.as_str(),
                        Usage::ServerAndClient,
                    )
                })
                .collect()
        };
        for (cert, key, common_name, usage) in pairs {
            // A new CA cannot vouch for certificates made by an old one.
            if fresh || !cert.exists() || !key.exists() {
                let sans: &[&str] = match usage {
                    Usage::Client => &[],
                    _ => &["127.0.0.1", "localhost"],
                };
                write_pair(&cert, &key, &ca.issue(common_name, sans, usage)?)?;
            }
        }
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_reuses_the_certificates_and_adds_only_new_members() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["dc1-1".to_string(), "dc2-1".to_string()];
        let layout = prepare(dir.path(), &names).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        let (ca, client, m1) = (
            read(layout.ca()),
            read(layout.client_cert()),
            read(layout.member_cert("dc1-1")),
        );
        let more = vec!["dc1-1".to_string(), "dc2-1".to_string(), "dc3-1".to_string()];
        let layout = prepare(dir.path(), &more).unwrap();
        assert_eq!(read(layout.ca()), ca);
        assert_eq!(read(layout.client_cert()), client);
        assert_eq!(read(layout.member_cert("dc1-1")), m1);
        assert!(layout.member_key("dc3-1").exists() && layout.peer_key("dc3-1").exists());
        // The client certificate is no peer certificate.
        assert_ne!(read(layout.peer_ca()), ca);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(layout.client_key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "a private key readable by others");
    }
}
