//! The proposer: concurrent writes of one member share a log entry.
//!
//! openraft 0.9 appends one client entry at a time and waits for its fsync
//! before the next, so a leader that proposed each write as its own entry
//! would fsync once per write. Instead, writes wait in a queue; the
//! proposer takes every write waiting, proposes them as one
//! [`WriteCommand::Batch`] entry, and hands each caller its own answer.
//! At most [`MAX_IN_FLIGHT`] entries are in flight, so that writes gather
//! while the previous entries commit.
//!
//! # Correctness
//! - A batch is applied in order, each command as a request of its own
//!   (its own revision, its own answer): the result is exactly that of the
//!   same writes proposed one after the other in that order, which is a
//!   valid linearization since all of them were in flight at once.
//! - A batch that openraft refused (not the leader) was not appended: every
//!   caller learns so and may retry. A batch whose outcome is not known
//!   (a timeout) leaves every caller's outcome unknown.

use std::sync::{Arc, Weak};

use firebreak_mvcc::{KvError, WriteCommand, WriteResponse};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::NodeError;
use crate::node::Node;
use crate::types::{Member, NodeId, Raft};

/// Entries proposed and not yet answered, at most.
const MAX_IN_FLIGHT: usize = 2;
/// Commands in one entry, at most.
const MAX_BATCH: usize = 256;
/// Approximate bytes of one entry, at most (etcd's request limit, so a
/// batch is never larger than the largest single request).
const MAX_BATCH_BYTES: usize = firebreak_mvcc::MAX_REQUEST_BYTES;

/// What proposing a write came to.
pub(crate) enum Proposal {
    Done(Result<WriteResponse, KvError>),
    /// Not appended here; the leader if one is known.
    NotLeader(Option<(NodeId, Member)>),
}

/// A write waiting for the proposer.
pub(crate) struct Pending {
    pub(crate) cmd: WriteCommand,
    pub(crate) done: oneshot::Sender<Result<Proposal, NodeError>>,
}

/// Runs until the node is dropped.
pub(crate) async fn run_proposer(node: Weak<Node>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        // Everything that arrived while the first waited goes along.
        let mut bytes = first.cmd.approx_bytes();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.cmd.approx_bytes();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let Some(node) = node.upgrade() else { return };
        let raft = node.raft.clone();
        drop(node);
        tokio::spawn(async move {
            propose_batch(raft, batch).await;
            drop(permit);
        });
    }
}

async fn propose_batch(raft: Raft, batch: Vec<Pending>) {
    let (cmds, waiters): (Vec<WriteCommand>, Vec<_>) = batch.into_iter().map(|p| (p.cmd, p.done)).unzip();
    let single = cmds.len() == 1;
    let entry = if single {
        cmds.into_iter().next().expect("one command")
    } else {
        WriteCommand::Batch(cmds)
    };
    let answers: Vec<Result<Proposal, NodeError>> = match raft.client_write(entry).await {
        Ok(resp) => {
            let result = resp.data.0.expect("a command entry is applied with a result");
            match result {
                Ok(WriteResponse::Batch(results)) if !single => {
                    results.into_iter().map(|r| Ok(Proposal::Done(r))).collect()
                }
                other => vec![Ok(Proposal::Done(other))],
            }
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
            let leader = f.leader_id.zip(f.leader_node);
            waiters
                .iter()
                .map(|_| Ok(Proposal::NotLeader(leader.clone())))
                .collect()
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => waiters
            .iter()
            .map(|_| Err(NodeError::Stopped(format!("unexpected membership error: {e}"))))
            .collect(),
        Err(RaftError::Fatal(f)) => waiters.iter().map(|_| Err(NodeError::Stopped(f.to_string()))).collect(),
    };
    debug_assert_eq!(answers.len(), waiters.len(), "one answer per write of the batch");
    for (waiter, answer) in waiters.into_iter().zip(answers) {
        let _ = waiter.send(answer);
    }
}
