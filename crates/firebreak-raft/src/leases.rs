//! The lease API of a member: grants and revokes go through the log;
//! keep-alives and remaining TTLs are answered by the leader, which alone
//! keeps deadlines (see [`crate::lessor`]).
//!
//! # Correctness
//! - The leader renews a lease or answers its remaining TTL only while it
//!   has heard from a quorum within one election timeout
//!   ([`Node::serving_term`], [`crate::quorum_contact`]): a leader cut off
//!   from the majority stops before the majority can expire the lease.
//! - A new leader answers only once it has applied an entry of its own
//!   term, so every write committed before it led (a lease grant among
//!   them) is applied: a kept-alive lease is never "not found" right after
//!   a failover, as in etcd, whose new leader waits for its applied index.
//! - The member that serves TimeToLive reads the lease's keys after a read
//!   barrier, so it reflects every write acknowledged before it was asked.

use std::future::Future;
use std::sync::Weak;
use std::time::Duration;

use firebreak_auth::AuthInfo;
use firebreak_mvcc::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, WriteCommand, WriteResponse,
};
use openraft::async_runtime::WatchReceiver as _;
use openraft::ServerState;
use tokio::time::Instant;

use crate::auth::as_caller;
use crate::error::{NodeError, Unavailable};
use crate::node::Node;
use crate::transport::{ForwardError, PeerRequest, PeerResponse};

/// How often the leader looks for expired leases.
const EXPIRY_TICK: Duration = Duration::from_millis(200);

/// A lease's remaining life as `LeaseTimeToLive` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTtl {
    /// Seconds left; -1 if the lease does not exist.
    pub ttl: i64,
    pub granted_ttl: i64,
    pub keys: Vec<bytes::Bytes>,
}

impl Node {
    /// The term of this member's leadership, if it leads.
    pub(crate) fn leading_term(&self) -> Option<u64> {
        let m = self.raft.metrics().borrow_watched().clone();
        (m.state == ServerState::Leader && m.current_leader == Some(self.id)).then_some(m.current_term)
    }

    /// The term of this member's leadership, if it leads and has heard from
    /// a quorum within one election timeout: only then does it renew
    /// leases, answer their remaining TTLs and run leader-only requests
    /// (see [`crate::quorum_contact`]).
    pub(crate) fn serving_term(&self) -> Option<u64> {
        let m = self.raft.metrics().borrow_watched().clone();
        if m.state != ServerState::Leader || m.current_leader != Some(self.id) {
            return None;
        }
        // Failpoint `lease-renew-without-quorum` (the `failpoints` feature
        // only): a leader serves as if it always heard from a quorum: the
        // drill must catch a lock held twice.
        #[cfg(feature = "failpoints")]
        if fail::eval("lease-renew-without-quorum", |_| ()).is_some() {
            return Some(m.current_term);
        }
        let acked_ago = crate::quorum_contact::quorum_acked_ago(&m)?;
        (acked_ago < self.election_timeout).then_some(m.current_term)
    }

    /// [`Node::serving_term`], waiting up to one election timeout for a
    /// leader that has not heard from a quorum yet (just elected, or a
    /// heartbeat late): `None` if this member does not lead, or still has
    /// no quorum then.
    pub(crate) async fn serving_term_soon(&self) -> Option<u64> {
        let deadline = Instant::now() + self.election_timeout;
        loop {
            if let Some(term) = self.serving_term() {
                return Some(term);
            }
            if self.leading_term().is_none() || Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The term this member serves in as leader (see [`Node::serving_term`]),
    /// once it has applied an entry of that term: everything committed
    /// before its leadership is then applied here.
    pub(crate) async fn serving_caught_up(&self) -> Result<u64, ForwardError> {
        let term = self.serving_term_soon().await.ok_or(ForwardError::NotLeader)?;
        self.raft
            .wait(Some(self.election_timeout))
            .metrics(
                |m| m.current_term != term || m.last_applied.is_some_and(|l| l.leader_id.term >= term),
                "the leader applied an entry of its term",
            )
            .await
            .map_err(|e| ForwardError::Unavailable(e.to_string()))?;
        // Still leading, in touch with a quorum, in the same term.
        match self.serving_term() {
            Some(now) if now == term => Ok(term),
            _ => Err(ForwardError::NotLeader),
        }
    }

    /// Grants a lease; `id` 0 lets the member choose one. While auth is
    /// enabled, `who` needs credentials (any user may grant).
    pub async fn lease_grant(&self, ttl: i64, id: i64, who: &AuthInfo) -> Result<LeaseGrantResponse, NodeError> {
        // A positive id that fits etcd's int64 lease ids.
        let id = if id == 0 {
            ((rand::random::<u64>() >> 1) as i64).max(1)
        } else {
            id
        };
        let ttl = ttl.max(self.min_lease_ttl);
        self.check_quota(0).await?;
        self.require_auth_info(who)?;
        match self
            .write(as_caller(who, WriteCommand::LeaseGrant(LeaseGrantRequest { id, ttl })))
            .await?
        {
            WriteResponse::LeaseGrant(r) => Ok(r),
            other => unreachable!("a lease grant answered with {other:?}"),
        }
    }

    /// Revokes a lease: `who` needs WRITE on every key attached to it
    /// (checked when applied).
    pub async fn lease_revoke(&self, id: i64, who: &AuthInfo) -> Result<LeaseRevokeResponse, NodeError> {
        self.require_auth_info(who)?;
        match self
            .write(as_caller(who, WriteCommand::LeaseRevoke(LeaseRevokeRequest { id })))
            .await?
        {
            WriteResponse::LeaseRevoke(r) => Ok(r),
            other => unreachable!("a lease revoke answered with {other:?}"),
        }
    }

    /// Renews a lease at the leader; answers its TTL, or 0 if it does not
    /// exist (as etcd's keep-alive does). `who` needs WRITE on every key
    /// attached to it, as this member sees them.
    pub async fn lease_keep_alive(&self, id: i64, who: &AuthInfo) -> Result<i64, NodeError> {
        self.check_lease_renew(who, id)?;
        // One attempt per election timeout, so that a frozen leader is
        // given up on and its successor found.
        self.on_leader(
            self.election_timeout,
            |node| node.leader_keep_alive(id),
            PeerRequest::LeaseKeepAlive(id),
            |resp| match resp {
                PeerResponse::LeaseKeepAlive(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    /// A lease's remaining and granted TTL, and its keys if asked.
    /// With `with_keys`, `who` needs READ on every key attached to it.
    pub async fn lease_time_to_live(&self, id: i64, with_keys: bool, who: &AuthInfo) -> Result<LeaseTtl, NodeError> {
        self.require_auth_info(who)?;
        let ttl = self
            .on_leader(
                self.election_timeout,
                |node| node.leader_time_to_live(id),
                PeerRequest::LeaseTimeToLive(id),
                |resp| match resp {
                    PeerResponse::LeaseTimeToLive(r) => Some(r),
                    _ => None,
                },
            )
            .await?;
        // The keys as of every write acknowledged before this call, even on
        // a member that lags.
        self.read_barrier().await?;
        if with_keys {
            self.check_lease_reads(who, Some(&[id]))?;
        }
        let replica = self.replica.read().expect("replica lock");
        Ok(match replica.store.lease(id) {
            Some(lease) if ttl >= 0 => LeaseTtl {
                ttl,
                granted_ttl: lease.ttl,
                keys: if with_keys {
                    lease.keys.iter().cloned().collect()
                } else {
                    Vec::new()
                },
            },
            _ => LeaseTtl {
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        })
    }

    /// Every lease id, as of a linearizable read. `who` needs READ on
    /// every key attached to any lease.
    pub async fn lease_ids(&self, who: &AuthInfo) -> Result<Vec<i64>, NodeError> {
        self.read_barrier().await?;
        self.check_lease_reads(who, None)?;
        Ok(self.replica.read().expect("replica lock").store.lease_ids())
    }

    pub(crate) async fn leader_keep_alive(&self, id: i64) -> Result<i64, ForwardError> {
        self.serving_caught_up().await?;
        let ttl = self
            .replica
            .read()
            .expect("replica lock")
            .store
            .lease(id)
            .map(|l| l.ttl);
        Ok(match ttl {
            Some(ttl) => {
                self.lessor.renew(id, ttl);
                ttl
            }
            None => 0,
        })
    }

    pub(crate) async fn leader_time_to_live(&self, id: i64) -> Result<i64, ForwardError> {
        self.serving_caught_up().await?;
        let granted = self
            .replica
            .read()
            .expect("replica lock")
            .store
            .lease(id)
            .map(|l| l.ttl);
        Ok(match granted {
            None => -1,
            Some(ttl) => self.lessor.remaining(id).unwrap_or(ttl),
        })
    }

    /// Revokes a lease this member, as leader of `term`, found expired:
    /// proposed here only, never forwarded or retried elsewhere. Whether it
    /// was revoked.
    ///
    /// # Correctness
    /// Expiry is a decision of the leader that keeps the deadlines. Sent on
    /// to a newer leader after this one lost its place, it would revoke a
    /// lease that the newer leader had renewed meanwhile (it grants every
    /// lease a full TTL at promotion), after it told the holder the lease
    /// lives. Proposed here, it is either dropped with the rest of this
    /// leader's unfinished entries, or committed from this log before any
    /// entry of the newer leader's term, which answers keep-alives only once
    /// it has applied those ([`Node::serving_caught_up`]).
    pub(crate) async fn revoke_expired(&self, id: i64, term: u64) -> Result<bool, NodeError> {
        if self.serving_term() != Some(term) {
            return Ok(false);
        }
        let deadline = Instant::now() + self.request_timeout;
        match self
            .propose(
                WriteCommand::AsMember(Box::new(WriteCommand::LeaseRevoke(LeaseRevokeRequest { id }))),
                deadline,
            )
            .await?
        {
            crate::proposer::Proposal::Done(Ok(_)) => Ok(true),
            crate::proposer::Proposal::Done(Err(e)) => Err(e.into()),
            crate::proposer::Proposal::NotLeader(_) => Ok(false),
        }
    }

    /// Runs a request that only the leader can answer: here if this member
    /// leads, else at the leader, giving each attempt at most `attempt`.
    /// A request that may take long at the leader (a membership change)
    /// must pass an `attempt` that covers it, since a timed-out attempt is
    /// retried.
    pub(crate) async fn on_leader<'a, T, F, Fut>(
        &'a self,
        attempt: Duration,
        local: F,
        remote: PeerRequest,
        extract: fn(PeerResponse) -> Option<Result<T, ForwardError>>,
    ) -> Result<T, NodeError>
    where
        F: Fn(&'a Node) -> Fut,
        Fut: Future<Output = Result<T, ForwardError>> + 'a,
    {
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let leader = self.raft.metrics().borrow_watched().current_leader;
            let answer = match leader {
                Some(id) if id == self.id => Some(local(self).await),
                Some(id) => {
                    let addr = self
                        .raft
                        .metrics()
                        .borrow_watched()
                        .membership_config
                        .membership()
                        .get_node(&id)
                        .map(|m| m.peer_addr.clone());
                    match addr {
                        Some(addr) => {
                            let remaining = deadline.saturating_duration_since(Instant::now()).min(attempt);
                            match self.peers.get(id, &addr).call(&remote, remaining).await {
                                Ok(resp) => extract(resp),
                                Err(_) => None,
                            }
                        }
                        None => None,
                    }
                }
                None => None,
            };
            match answer {
                Some(Ok(v)) => return Ok(v),
                Some(Err(ForwardError::Unavailable(_))) | Some(Err(ForwardError::NotLeader)) | None => {}
            }
            if Instant::now() + EXPIRY_TICK >= deadline {
                return Err(Unavailable::NoLeader.into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The leader's expiry loop: revokes leases whose deadline passed.
pub(crate) async fn expire_leases(node: Weak<Node>) {
    loop {
        tokio::time::sleep(EXPIRY_TICK).await;
        let Some(node) = node.upgrade() else { return };
        // A leader out of touch with a quorum forgets its deadlines; back in
        // touch, it grants every lease its full TTL again, as a newly
        // elected leader would.
        let term = node.serving_term();
        let leases: Vec<(i64, i64)> = {
            let replica = node.replica.read().expect("replica lock");
            replica
                .store
                .lease_ids()
                .into_iter()
                .filter_map(|id| replica.store.lease(id).map(|l| (id, l.ttl)))
                .collect()
        };
        let Some(term) = term else {
            // Not serving: the lessor forgot its deadlines (`expired` with
            // no term) and decides nothing.
            let _ = node.lessor.expired(None, &leases, node.election_timeout);
            continue;
        };
        for id in node.lessor.expired(Some(term), &leases, node.election_timeout) {
            // Do not propose the same revoke again while this one commits.
            node.lessor.renew(id, 5);
            let node = node.clone();
            tokio::spawn(async move {
                match node.revoke_expired(id, term).await {
                    Ok(true) => tracing::info!(lease = format_args!("{id:x}"), "lease expired and revoked"),
                    Ok(false) => tracing::debug!(
                        lease = format_args!("{id:x}"),
                        "an expired lease was not revoked: this member no longer leads"
                    ),
                    Err(e) => tracing::debug!(lease = format_args!("{id:x}"), error = %e, "revoking an expired lease"),
                }
            });
        }
    }
}
