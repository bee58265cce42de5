//! The proposer: concurrent writes of one member share a log entry.
//!
//! Every entry costs Raft messages, an fsync on every member and openraft's
//! bookkeeping, whatever it holds. So writes wait in a queue; the proposer
//! takes every write waiting, proposes them as one
//! [`WriteCommand::Batch`] entry, and hands each caller its own answer.
//! Writes gather while earlier entries are in flight, and how many entries
//! may be in flight follows how long an entry takes to commit when nothing
//! queues: enough that a write waits about [`TARGET_WAIT`] for an entry to
//! leave, at least [`MIN_IN_FLIGHT`] (so that writes gather on a fast
//! network, where entries commit in a millisecond and CPU is what limits)
//! and at most [`MAX_IN_FLIGHT`]. Between datacenters an entry takes a
//! round trip or more, and more entries in flight keep writes from waiting
//! whole round trips in this queue.
//!
//! "When nothing queues" is the fastest entry of the last [`WINDOW`], as a
//! round trip is best estimated by its minimum: an average would rise with
//! any stall or overload, let more and smaller entries fly, and so add
//! per-entry work exactly when there is no CPU to spare (measured: with an
//! average, an open-loop put load at half of etcd's throughput had p99
//! 36-41 ms; with two entries, 3.3 ms).
//!
//! # Correctness
//! - A batch is applied in order, each command as a request of its own
//!   (its own revision, its own answer): the result is exactly that of the
//!   same writes proposed one after the other in that order, which is a
//!   valid linearization since all of them were in flight at once.
//! - A write is retried only when it certainly was not appended. openraft
//!   answers "forward to leader" both when it refuses a proposal (this
//!   member does not lead: nothing was appended) and when the proposal was
//!   appended here and then replaced in this log by a newer leader's
//!   entries; in the second case another member may still hold the entry
//!   and commit it later (with five or more voters, a leader can be elected
//!   from a minority that holds it), so a retry could apply the write
//!   twice. Each entry therefore carries a tag ([`WriteCommand::Tagged`]),
//!   the log store notes every tag it appends ([`OwnProposals`]), and a
//!   refusal of an entry this log held leaves every caller's outcome
//!   unknown, as does a timeout.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use firebreak_mvcc::{KvError, WriteCommand, WriteResponse};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::error::{NodeError, Unavailable};
use crate::node::Node;
use crate::types::{Member, NodeId, Raft};

/// Entries proposed and not yet answered: at least this many may be.
const MIN_IN_FLIGHT: usize = 2;
/// Entries proposed and not yet answered, at most.
const MAX_IN_FLIGHT: usize = 32;
/// About how long a write should wait here for an entry to leave.
const TARGET_WAIT: Duration = Duration::from_micros(500);
/// How far back the fastest entry is looked for.
const WINDOW: Duration = Duration::from_secs(1);
/// Commands in one entry, at most.
const MAX_BATCH: usize = 256;
/// Approximate bytes of one entry, at most (etcd's request limit, so a
/// batch is never larger than the largest single request).
const MAX_BATCH_BYTES: usize = firebreak_mvcc::MAX_REQUEST_BYTES;

/// What proposing a write came to.
#[derive(Clone)]
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

/// This member's proposals in flight, by tag, and whether its log has held
/// each (see the module documentation).
#[derive(Default)]
pub struct OwnProposals {
    appended: Mutex<HashMap<u64, bool>>,
}

impl OwnProposals {
    fn register(&self, tag: u64) {
        self.appended.lock().expect("proposals lock").insert(tag, false);
    }

    /// The log appended an entry with `tag` (a tag of another member's, or
    /// of no proposal in flight, is ignored).
    pub(crate) fn appended(&self, tag: u64) {
        if let Some(held) = self.appended.lock().expect("proposals lock").get_mut(&tag) {
            *held = true;
        }
    }

    /// Forgets `tag`; whether the log ever held its entry.
    fn finish(&self, tag: u64) -> bool {
        self.appended
            .lock()
            .expect("proposals lock")
            .remove(&tag)
            .unwrap_or(false)
    }
}

/// Entries in flight, and how long they take to be answered.
struct Flight {
    state: Mutex<FlightState>,
    /// Signalled when an entry is answered.
    landed: Notify,
}

struct FlightState {
    in_flight: usize,
    /// The times from proposal to answer of the last [`WINDOW`], as a
    /// monotonic queue for its minimum: `(landed at, µs)` with the µs
    /// increasing from front to back, so the front is the minimum.
    fastest: VecDeque<(Instant, u64)>,
}

impl FlightState {
    fn record(&mut self, now: Instant, took_us: u64) {
        while self.fastest.back().is_some_and(|&(_, us)| us >= took_us) {
            self.fastest.pop_back();
        }
        self.fastest.push_back((now, took_us));
        while self
            .fastest
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) > WINDOW)
        {
            self.fastest.pop_front();
        }
    }

    fn fastest_us(&self) -> u64 {
        self.fastest.front().map_or(0, |&(_, us)| us)
    }
}

impl Flight {
    fn new() -> Flight {
        Flight {
            state: Mutex::new(FlightState {
                in_flight: 0,
                fastest: VecDeque::new(),
            }),
            landed: Notify::new(),
        }
    }

    /// Takes a place in flight if one is free now.
    fn try_start(&self) -> bool {
        let mut s = self.state.lock().expect("flight lock");
        if s.in_flight < in_flight_limit(s.fastest_us()) {
            s.in_flight += 1;
            true
        } else {
            false
        }
    }

    fn land(&self, took: Duration) {
        {
            let mut s = self.state.lock().expect("flight lock");
            s.in_flight -= 1;
            s.record(Instant::now(), took.as_micros() as u64);
        }
        // One waiter (the proposer); a signal sent while it is not waiting
        // is kept for it.
        self.landed.notify_one();
    }
}

/// Gives an entry's place in flight back when dropped.
struct Landing {
    flight: Arc<Flight>,
    started: Instant,
}

impl Drop for Landing {
    fn drop(&mut self) {
        self.flight.land(self.started.elapsed());
    }
}

/// Entries that may be in flight when one takes `latency_us` to land.
fn in_flight_limit(latency_us: u64) -> usize {
    let wanted = latency_us.div_ceil(TARGET_WAIT.as_micros() as u64) as usize;
    wanted.clamp(MIN_IN_FLIGHT, MAX_IN_FLIGHT)
}

/// Runs until the node is dropped.
pub(crate) async fn run_proposer(node: Weak<Node>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let flight = Arc::new(Flight::new());
    while let Some(first) = queue.recv().await {
        while !flight.try_start() {
            flight.landed.notified().await;
        }
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
        let own = node.own_proposals.clone();
        drop(node);
        let flight = flight.clone();
        tokio::spawn(async move {
            // Lands also if the task panics or is dropped: a lost place in
            // flight would never come back.
            let _landing = Landing {
                flight,
                started: Instant::now(),
            };
            propose_batch(raft, &own, batch).await;
        });
    }
}

async fn propose_batch(raft: Raft, own: &OwnProposals, batch: Vec<Pending>) {
    let (cmds, waiters): (Vec<WriteCommand>, Vec<_>) = batch.into_iter().map(|p| (p.cmd, p.done)).unzip();
    let single = cmds.len() == 1;
    let entry = if single {
        cmds.into_iter().next().expect("one command")
    } else {
        WriteCommand::Batch(cmds)
    };
    let tag = rand::random::<u64>();
    own.register(tag);
    let written = raft
        .client_write(WriteCommand::Tagged {
            tag,
            cmd: Box::new(entry),
        })
        .await;
    let held = own.finish(tag);
    let answers: Vec<Result<Proposal, NodeError>> = match written {
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
            let answer = refused(held, f.leader_id.zip(f.leader_node));
            waiters.iter().map(|_| answer.clone()).collect()
        }
        // openraft appended the entry and then lost the leadership: it may
        // still commit under the next leader. Never retried.
        Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(_))) => {
            let answer = refused(true, None);
            waiters.iter().map(|_| answer.clone()).collect()
        }
        Err(RaftError::APIError(ClientWriteError::PreconditionFailed(e))) => waiters
            .iter()
            .map(|_| Err(NodeError::Stopped(format!("unexpected precondition failure: {e}"))))
            .collect(),
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

/// What a proposal refused with "forward to leader" comes to: safe to send
/// to `leader` if this log never held it; otherwise its outcome is unknown.
fn refused(held: bool, leader: Option<(NodeId, Member)>) -> Result<Proposal, NodeError> {
    if held {
        tracing::info!("a proposal appended here was replaced by a newer leader's entries; its outcome is unknown");
        Err(Unavailable::LeaderChanged.into())
    } else {
        Ok(Proposal::NotLeader(leader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_retried_only_if_this_log_never_held_the_entry() {
        let own = OwnProposals::default();
        own.register(7);
        own.register(8);
        own.appended(8);
        own.appended(99); // another member's tag
        assert!(matches!(refused(own.finish(7), None), Ok(Proposal::NotLeader(None))));
        assert!(matches!(
            refused(own.finish(8), None),
            Err(NodeError::Unavailable(Unavailable::LeaderChanged))
        ));
        assert!(own.appended.lock().unwrap().is_empty(), "finished tags are forgotten");
    }

    #[test]
    fn more_entries_fly_when_each_takes_longer() {
        assert_eq!(in_flight_limit(0), MIN_IN_FLIGHT);
        assert_eq!(in_flight_limit(800), MIN_IN_FLIGHT, "a fast network batches");
        assert_eq!(in_flight_limit(5_500), 11, "a 5.5 ms commit lets 11 entries fly");
        assert_eq!(in_flight_limit(1_000_000), MAX_IN_FLIGHT);
    }

    #[test]
    fn the_limit_follows_the_fastest_recent_entry_not_a_stall() {
        let mut s = FlightState {
            in_flight: 0,
            fastest: VecDeque::new(),
        };
        let t0 = Instant::now();
        s.record(t0, 5_000);
        s.record(t0 + Duration::from_millis(10), 4_000);
        s.record(t0 + Duration::from_millis(20), 60_000);
        assert_eq!(s.fastest_us(), 4_000, "a stall does not raise it");
        // A second later the fast entries have left the window.
        s.record(t0 + WINDOW + Duration::from_millis(15), 70_000);
        assert_eq!(s.fastest_us(), 60_000);
    }

    #[tokio::test]
    async fn a_landing_entry_frees_its_place() {
        let flight = Flight::new();
        assert!(flight.try_start() && flight.try_start());
        assert!(!flight.try_start(), "two fly while entries are fast");
        flight.land(Duration::from_micros(100));
        // The signal is kept for a proposer that was not waiting yet.
        tokio::time::timeout(Duration::from_secs(1), flight.landed.notified())
            .await
            .expect("the landing is signalled");
        assert!(flight.try_start());
    }
}
