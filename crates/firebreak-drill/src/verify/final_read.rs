//! The final linearizable read of the whole workload keyspace, after the
//! fault and the recovery, through a member outside the faulted datacenter.
//!
//! It enters the history as one `get` per workload key by client 0 (the
//! drill), all with the same interval and header revision, so that the
//! linearizability checker judges it with everything else and
//! `firebreak check` can recompute the lost-write check from the history
//! alone ([`super::lost`]).
//!
//! # Correctness
//!
//! The read is one Range request: one linearization point, one revision.
//! Splitting it into per-key gets with that interval is sound because each
//! is a projection of the same atomic read.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::GetOptions;
use firebreak_check::{HistoryEvent, OpResult, Operation};

use crate::clock::monotonic_ns;
use crate::lab::observe::connect;
use crate::lab::Member;

/// Client number of the drill's own final read in the history.
pub const DRILL_CLIENT: u64 = 0;

/// What the final read returned.
#[derive(Debug, Clone)]
pub struct FinalRead {
    /// The member that served it.
    pub member: String,
    /// Its datacenter.
    pub datacenter: String,
    /// Invocation (monotonic ns).
    pub invoke_ns: u64,
    /// Completion (monotonic ns).
    pub complete_ns: u64,
    /// Header revision.
    pub revision: u64,
    /// Key → (value, mod_revision).
    pub kvs: BTreeMap<String, (String, u64)>,
}

/// Reads every key under `prefix`, linearizably, through one of the
/// members at `candidates` (trying each in turn) within `limit`.
pub async fn final_read(
    members: &[Member],
    candidates: &[usize],
    prefix: &str,
    limit: Duration,
) -> Result<FinalRead, String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_error = String::from("no member to read from");
    for attempt in 0usize.. {
        if candidates.is_empty() {
            break;
        }
        let member = &members[candidates[attempt % candidates.len()]];
        let invoke_ns = monotonic_ns();
        let read = async {
            let mut client = connect(member, Duration::from_secs(3)).await?;
            client.get(prefix, Some(GetOptions::new().with_prefix())).await
        };
        match tokio::time::timeout(Duration::from_secs(3), read).await {
            Ok(Ok(resp)) => {
                let complete_ns = monotonic_ns();
                let kvs = resp
                    .kvs()
                    .iter()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(kv.key()).into_owned(),
                            (
                                String::from_utf8_lossy(kv.value()).into_owned(),
                                kv.mod_revision().max(0) as u64,
                            ),
                        )
                    })
                    .collect();
                return Ok(FinalRead {
                    member: member.name.clone(),
                    datacenter: member.datacenter.clone(),
                    invoke_ns,
                    complete_ns,
                    revision: resp.header().map_or(0, |h| h.revision().max(0) as u64),
                    kvs,
                });
            }
            Ok(Err(e)) => last_error = format!("{}: {e}", member.name),
            Err(_) => last_error = format!("{}: timed out", member.name),
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!("the final linearizable read failed: {last_error}"))
}

impl FinalRead {
    /// The read as history events, one `get` per key of `keys` (monotonic
    /// times; ids `1..`, renumbered when merged).
    pub fn events(&self, keys: &[String]) -> Vec<HistoryEvent> {
        keys.iter()
            .enumerate()
            .map(|(i, key)| {
                let (value, mod_revision) = match self.kvs.get(key) {
                    Some((value, rev)) => (Some(value.clone()), Some(*rev)),
                    None => (None, None),
                };
                HistoryEvent::invoked(
                    i as u64 + 1,
                    DRILL_CLIENT,
                    Some(&self.datacenter),
                    Operation::Get { key: key.clone() },
                    self.invoke_ns,
                )
                .ok(self.complete_ns, OpResult::get(value, self.revision, mod_revision))
            })
            .collect()
    }
}
