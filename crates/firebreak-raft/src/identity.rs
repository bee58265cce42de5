//! Which member this is, and of which cluster.
//!
//! The members of a new cluster derive their ids from their names and the
//! cluster's id from theirs, so nothing needs storing. A member that joins
//! a running cluster was given its id by `MemberAdd` (from its name when
//! the peer URL named it, otherwise a fresh one, as etcd does): at its
//! first start it asks the leader, through the members its
//! `initial_cluster` lists, announcing its name, client URL and failure
//! domains ([`crate::membership::JoinRequest`]), and keeps the answer in
//! `<data_dir>/identity`, durably, before it writes anything else. Later
//! starts read the file and need nobody.
//!
//! A joining member whose `initial_cluster` lists only itself cannot ask
//! anyone: it takes the id derived from its name (the peer-URL shortcut of
//! `MemberAdd`, [`crate::membership`]).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use firebreak_config::{ClusterState, Config};

use crate::membership::{JoinRequest, Joined};
use crate::transport::{ForwardError, PeerRequest, PeerResponse, Peers};
use crate::types::NodeId;

/// The file that holds a joined member's identity.
pub const IDENTITY_FILE: &str = "identity";

/// How long a joining member keeps asking before it gives up.
const JOIN_PATIENCE: Duration = Duration::from_secs(120);

/// Why a member could not learn who it is.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: String, reason: String },
    #[error("joining the cluster was refused: {0}")]
    Refused(String),
    #[error("no member listed in initial_cluster answered within {0:?} (tried {1})")]
    Unreachable(Duration, String),
}

fn cluster_id_of(ids: impl IntoIterator<Item = u64>) -> u64 {
    let ids: std::collections::BTreeSet<u64> = ids.into_iter().collect();
    let text: Vec<String> = ids.iter().map(|id| format!("{id:x}")).collect();
    firebreak_config::member_id(&text.join(","))
}

fn read(path: &Path) -> Result<Option<Joined>, IdentityError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(IdentityError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let damaged = |reason: &str| IdentityError::Damaged {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let mut id = None;
    let mut cluster_id = None;
    for line in text.lines() {
        let (key, value) = line.split_once('=').ok_or_else(|| damaged("a line without '='"))?;
        let value = u64::from_str_radix(value.trim(), 16).map_err(|_| damaged("an id that is not hexadecimal"))?;
        match key.trim() {
            "member_id" => id = Some(value),
            "cluster_id" => cluster_id = Some(value),
            _ => return Err(damaged("an unknown key")),
        }
    }
    match (id, cluster_id) {
        (Some(id), Some(cluster_id)) => Ok(Some(Joined { id, cluster_id })),
        _ => Err(damaged("member_id or cluster_id missing")),
    }
}

/// Writes the identity file atomically and durably (the data directory
/// too, so the file survives a power cut with what follows it).
fn write(dir: &Path, joined: Joined) -> std::io::Result<()> {
    crate::durable_dir::create_dir_durably(dir)?;
    crate::durable_dir::remove_temporaries(dir, IDENTITY_FILE)?;
    let text = format!("member_id = {:x}\ncluster_id = {:x}\n", joined.id, joined.cluster_id);
    crate::durable_dir::write_atomically(dir, IDENTITY_FILE, text.as_bytes())
}

/// This member's id and its cluster's id (see the module documentation).
pub(crate) async fn resolve(config: &Config, peers: &Arc<Peers>) -> Result<Joined, IdentityError> {
    let path = config.data_dir.join(IDENTITY_FILE);
    if let Some(known) = read(&path)? {
        return Ok(known);
    }
    let others: Vec<_> = config.members.iter().filter(|m| m.id != config.id).collect();
    if config.initial_cluster_state == ClusterState::New || others.is_empty() {
        return Ok(Joined {
            id: config.id,
            cluster_id: cluster_id_of(config.members.iter().map(|m| m.id)),
        });
    }
    let me = config
        .members
        .iter()
        .find(|m| m.id == config.id)
        .expect("the configuration lists this member");
    let join = PeerRequest::Join(JoinRequest {
        peer_url: me.peer_url.clone(),
        name: config.name.clone(),
        client_url: me.client_url.clone(),
        domains: config.domains.clone(),
    });
    let started = Instant::now();
    let mut last_errors: Vec<String>;
    loop {
        last_errors = Vec::new();
        for other in &others {
            let client = peers.get(other.id, &other.peer_addr);
            match client.call(&join, Duration::from_secs(3)).await {
                Ok(PeerResponse::Join(Ok(Ok(joined)))) => {
                    write(&config.data_dir, joined).map_err(|source| IdentityError::Io {
                        path: path.display().to_string(),
                        source,
                    })?;
                    tracing::info!(
                        id = format_args!("{:x}", joined.id),
                        cluster_id = format_args!("{:x}", joined.cluster_id),
                        via = %other.name,
                        "joined the cluster"
                    );
                    return Ok(joined);
                }
                Ok(PeerResponse::Join(Ok(Err(refusal)))) => return Err(IdentityError::Refused(refusal.to_string())),
                Ok(PeerResponse::Join(Err(ForwardError::NotLeader))) => {
                    last_errors.push(format!("{}: not the leader", other.name))
                }
                Ok(PeerResponse::Join(Err(ForwardError::Unavailable(e)))) => {
                    last_errors.push(format!("{}: {e}", other.name))
                }
                Ok(other_answer) => last_errors.push(format!("{}: unexpected answer {other_answer:?}", other.name)),
                Err(e) => last_errors.push(format!("{}: {e}", other.name)),
            }
        }
        if started.elapsed() > JOIN_PATIENCE {
            return Err(IdentityError::Unreachable(JOIN_PATIENCE, last_errors.join("; ")));
        }
        tracing::warn!(tried = %last_errors.join("; "), "no leader answered the join yet; retrying");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The identity of a data directory's member, if it joined a running
/// cluster (for tools).
pub fn stored(data_dir: &Path) -> Result<Option<(NodeId, u64)>, IdentityError> {
    Ok(read(&data_dir.join(IDENTITY_FILE))?.map(|j| (j.id, j.cluster_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_file_roundtrips_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let joined = Joined {
            id: 0xdead_beef,
            cluster_id: 0x1234,
        };
        assert_eq!(read(&dir.path().join(IDENTITY_FILE)).unwrap(), None);
        write(dir.path(), joined).unwrap();
        assert_eq!(read(&dir.path().join(IDENTITY_FILE)).unwrap(), Some(joined));
        std::fs::write(dir.path().join(IDENTITY_FILE), "member_id = zz\n").unwrap();
        let err = read(&dir.path().join(IDENTITY_FILE)).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
    }
}
