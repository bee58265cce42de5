//! Replica agreement after recovery: every surviving (and restored) member
//! must hold the same key-value state at the same revision.
//!
//! The drill reads the whole keyspace from each member with a serializable
//! (member-local) read, repeated until they all report the same header
//! revision `R`; it hashes what each returned (FNV-1a 64 over every key,
//! value, create revision, mod revision and version, in key order), and
//! asks each member for its own `HashKV` at `R` (a hash of its whole MVCC
//! history up to `R`). Both must be equal on every member.
//!
//! # Correctness
//!
//! Two replicas with the same applied revision must have applied the same
//! log prefix, so any difference in their state (or history) at one
//! revision is a divergence. Members that never reach a common revision
//! within the limit fail the check with their revisions named. A member
//! that does not serve `HashKV` (`Unimplemented`) is judged on the drill's
//! own hash alone.

use std::time::Duration;

use etcd_client::GetOptions;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::clock::{monotonic_ns, ms_between};
use crate::lab::observe::connect;
use crate::lab::Member;

/// One member's state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplicaState {
    /// Member name.
    pub member: String,
    /// Header revision of its read.
    pub revision: u64,
    /// FNV-1a 64 of its state as the drill read it, hex.
    pub hash: String,
    /// The member's own `HashKV` at `revision` (`null`: not served).
    pub hash_kv: Option<u32>,
    /// Keys it holds.
    pub keys: usize,
}

/// The result of the check, as in `report.json` (`replicas`).
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Whether every member reported the same hash at the same revision.
    pub agree: bool,
    /// The common revision, if they reached one.
    pub revision: Option<u64>,
    /// What each member reported (the last round).
    pub members: Vec<ReplicaState>,
    /// Members that did not answer in the last round.
    pub silent: Vec<String>,
    /// How long it took them to reach a common revision, ms.
    pub waited_ms: f64,
    /// One sentence.
    pub detail: String,
}

/// FNV-1a, 64 bits.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The hash of a state given as (key, value, create_revision, mod_revision, version).
pub fn state_hash<'a>(kvs: impl IntoIterator<Item = (&'a [u8], &'a [u8], i64, i64, i64)>) -> u64 {
    let mut h = Fnv64::default();
    for (key, value, create, modified, version) in kvs {
        h.write(&(key.len() as u64).to_le_bytes());
        h.write(key);
        h.write(&(value.len() as u64).to_le_bytes());
        h.write(value);
        h.write(&create.to_le_bytes());
        h.write(&modified.to_le_bytes());
        h.write(&version.to_le_bytes());
    }
    h.finish()
}

async fn read_state(member: Member) -> Option<ReplicaState> {
    let attempt = async {
        let mut client = connect(&member, Duration::from_secs(3)).await.ok()?;
        let options = GetOptions::new().with_from_key().with_serializable();
        let resp = client.get(vec![0u8], Some(options)).await.ok()?;
        let revision = resp.header()?.revision().max(0) as u64;
        let hash = state_hash(resp.kvs().iter().map(|kv| {
            (
                kv.key(),
                kv.value(),
                kv.create_revision(),
                kv.mod_revision(),
                kv.version(),
            )
        }));
        Some(ReplicaState {
            member: member.name.clone(),
            revision,
            hash: format!("{hash:016x}"),
            hash_kv: None,
            keys: resp.kvs().len(),
        })
    };
    tokio::time::timeout(Duration::from_secs(4), attempt).await.ok()?
}

/// The member's `HashKV` at `revision`, if it serves it.
async fn hash_kv(member: Member, revision: u64) -> Option<u32> {
    let attempt = async {
        let mut client = connect(&member, Duration::from_secs(3)).await.ok()?;
        client.hash_kv(revision as i64).await.ok().map(|r| r.hash())
    };
    tokio::time::timeout(Duration::from_secs(4), attempt).await.ok()?
}

/// Polls the members at `which` until they report the same revision (then
/// compares hashes) or `limit` passes.
pub async fn check_agreement(members: &[Member], which: &[usize], limit: Duration) -> Agreement {
    let started = monotonic_ns();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let mut set = JoinSet::new();
        for &i in which {
            set.spawn(read_state(members[i].clone()));
        }
        let mut states = Vec::new();
        while let Some(done) = set.join_next().await {
            if let Ok(Some(state)) = done {
                states.push(state);
            }
        }
        states.sort_by(|a, b| a.member.cmp(&b.member));
        let silent: Vec<String> = which
            .iter()
            .map(|&i| members[i].name.clone())
            .filter(|name| !states.iter().any(|s| &s.member == name))
            .collect();
        let same_revision = silent.is_empty() && states.windows(2).all(|w| w[0].revision == w[1].revision);
        let timed_out = tokio::time::Instant::now() >= deadline;
        if same_revision || timed_out {
            let waited_ms = ms_between(started, monotonic_ns());
            let revision = same_revision.then(|| states.first().map(|s| s.revision)).flatten();
            if let Some(rev) = revision {
                for state in &mut states {
                    if let Some(i) = which.iter().copied().find(|&i| members[i].name == state.member) {
                        state.hash_kv = hash_kv(members[i].clone(), rev).await;
                    }
                }
            }
            let served = states.iter().filter(|s| s.hash_kv.is_some()).count();
            let hash_kv_agrees =
                served == 0 || (served == states.len() && states.windows(2).all(|w| w[0].hash_kv == w[1].hash_kv));
            let agree = same_revision && hash_kv_agrees && states.windows(2).all(|w| w[0].hash == w[1].hash);
            let detail = if agree {
                format!(
                    "{} members agree at revision {}: state hash {}{}",
                    states.len(),
                    revision.unwrap_or(0),
                    states.first().map_or("-", |s| s.hash.as_str()),
                    match states.first().and_then(|s| s.hash_kv) {
                        Some(h) => format!(", HashKV {h:08x}"),
                        None => ", HashKV not served".to_owned(),
                    }
                )
            } else if same_revision {
                format!(
                    "members differ at the same revision {}: {}",
                    revision.unwrap_or(0),
                    states
                        .iter()
                        .map(|s| format!(
                            "{} state {} HashKV {}",
                            s.member,
                            s.hash,
                            s.hash_kv.map_or("?".to_owned(), |h| format!("{h:08x}"))
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                format!(
                    "no common revision after {:.1} s: {}{}",
                    waited_ms / 1000.0,
                    states
                        .iter()
                        .map(|s| format!("{} at {}", s.member, s.revision))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if silent.is_empty() {
                        String::new()
                    } else {
                        format!("; silent: {}", silent.join(", "))
                    }
                )
            };
            return Agreement {
                agree,
                revision,
                members: states,
                silent,
                waited_ms,
                detail,
            };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_and_the_order() {
        let a = state_hash([(&b"k"[..], &b"v"[..], 2, 3, 1)]);
        assert_eq!(a, state_hash([(&b"k"[..], &b"v"[..], 2, 3, 1)]));
        assert_ne!(a, state_hash([(&b"k"[..], &b"v"[..], 2, 4, 1)]));
        assert_ne!(a, state_hash([(&b"k"[..], &b"w"[..], 2, 3, 1)]));
        assert_ne!(
            state_hash([(&b"ab"[..], &b""[..], 1, 1, 1)]),
            state_hash([(&b"a"[..], &b"b"[..], 1, 1, 1)])
        );
        // FNV-1a of the empty input is its offset basis.
        assert_eq!(state_hash([]), 0xcbf2_9ce4_8422_2325);
    }
}
