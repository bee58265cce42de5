//! The drill's own view of the members: leader look-ups, readiness, and
//! revisions, over a management path straight to each member's client
//! listener (from the root namespace to the member's own address, never
//! through the WAN relay, and allowed by the nftables cut, which lets a
//! datacenter talk to its own gateway).

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::task::JoinSet;

use super::Member;
use crate::clock::monotonic_ns;

/// The management URL of a member.
pub fn direct_url(member: &Member) -> String {
    format!("http://{}", member.listen_client)
}

/// A client of one member, on the management path.
pub async fn connect(member: &Member, timeout: Duration) -> Result<Client, etcd_client::Error> {
    let options = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout);
    Client::connect([direct_url(member)], Some(options)).await
}

/// What one member says about itself.
#[derive(Debug, Clone)]
pub struct MemberStatus {
    /// Index of the member in the lab.
    pub index: usize,
    /// The leader it knows of (0: none).
    pub leader: u64,
    /// Its Raft term.
    pub term: u64,
    /// Whether it says it is the leader.
    pub is_leader: bool,
}

async fn status_of(index: usize, member: Member, timeout: Duration) -> Option<MemberStatus> {
    let attempt = async {
        let mut client = connect(&member, timeout).await.ok()?;
        client.status().await.ok()
    };
    let status = tokio::time::timeout(timeout, attempt).await.ok()??;
    let own = status.header().map_or(0, |h| h.member_id());
    Some(MemberStatus {
        index,
        leader: status.leader(),
        term: status.raft_term(),
        is_leader: status.leader() != 0 && status.leader() == own,
    })
}

/// Statuses of the members at `which` that answered within `timeout`.
pub async fn statuses(members: &[Member], which: &[usize], timeout: Duration) -> Vec<MemberStatus> {
    let mut set = JoinSet::new();
    for &i in which {
        set.spawn(status_of(i, members[i].clone(), timeout));
    }
    let mut out = Vec::new();
    while let Some(result) = set.join_next().await {
        if let Ok(Some(status)) = result {
            out.push(status);
        }
    }
    out.sort_by_key(|s| s.index);
    out
}

/// The last Raft log index `member` has applied, as its status says.
pub async fn applied_index(member: &Member, timeout: Duration) -> Option<u64> {
    let attempt = async {
        let mut client = connect(member, timeout).await.ok()?;
        client.status().await.ok()
    };
    Some(tokio::time::timeout(timeout, attempt).await.ok()??.raft_applied_index())
}

/// The member that leads, by the highest term among members that say they
/// lead; `None` if nobody does.
pub async fn find_leader(members: &[Member], which: &[usize], timeout: Duration) -> Option<usize> {
    statuses(members, which, timeout)
        .await
        .into_iter()
        .filter(|s| s.is_leader)
        .max_by_key(|s| s.term)
        .map(|s| s.index)
}

/// Waits until each member at `which` serves a linearizable read (so a
/// leader exists and a quorum answers), or `limit` passes.
pub async fn wait_ready(members: &[Member], which: &[usize], limit: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    for &i in which {
        loop {
            if linearizable_revision(&members[i], Duration::from_secs(2))
                .await
                .is_some()
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{} serves no linearizable read after {limit:?}",
                    members[i].name
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The revision of a linearizable read through `member`.
pub async fn linearizable_revision(member: &Member, timeout: Duration) -> Option<u64> {
    read_revision(member, timeout, false).await
}

/// The revision `member`'s own replica has applied (a serializable read).
pub async fn serializable_revision(member: &Member, timeout: Duration) -> Option<u64> {
    read_revision(member, timeout, true).await
}

async fn read_revision(member: &Member, timeout: Duration, serializable: bool) -> Option<u64> {
    let attempt = async {
        let mut client = connect(member, timeout).await.ok()?;
        let mut options = GetOptions::new().with_count_only();
        if serializable {
            options = options.with_serializable();
        }
        let resp = client.get("firebreak-drill/probe", Some(options)).await.ok()?;
        resp.header().map(|h| h.revision().max(0) as u64)
    };
    tokio::time::timeout(timeout, attempt).await.ok()?
}

/// The highest revision applied by any of the members at `which` (each
/// asked with a serializable read; `None` if none answers).
pub async fn max_applied_revision(members: &[Member], which: &[usize], timeout: Duration) -> Option<u64> {
    let mut set = JoinSet::new();
    for &i in which {
        let member = members[i].clone();
        set.spawn(async move { serializable_revision(&member, timeout).await });
    }
    let mut best = None;
    while let Some(done) = set.join_next().await {
        if let Ok(Some(rev)) = done {
            best = best.max(Some(rev));
        }
    }
    best
}

/// Polls `member` until its replica has applied `target`, up to `limit`;
/// returns the monotonic instant it got there.
pub async fn wait_caught_up(member: &Member, target: u64, limit: Duration) -> Option<u64> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(rev) = serializable_revision(member, Duration::from_millis(500)).await {
            if rev >= target {
                return Some(monotonic_ns());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
