//! openraft's storage conformance suite, run against Firebreak's Raft log
//! (append-only segment files with group commit, `wal.rs`) and its MVCC
//! state machine: the invariants every `RaftLogStorage` and
//! `RaftStateMachine` must keep (log ids, purges, truncation, membership,
//! snapshots, votes).

use std::future::Future;

use firebreak_raft::log_store::LogStore;
use firebreak_raft::state_machine::StateMachine;
use firebreak_raft::types::{StorageError, TypeConfig, Vote};
use openraft::storage::RaftLogStorage;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

/// The id openraft's `Suite` uses for "this node": the votes it saves and
/// the log ids it writes all name node 0.
const SUITE_NODE: u64 = 0;

/// How the stores are opened.
#[derive(Clone, Copy)]
enum Setup {
    /// `LogStore::open(dir, None)` and a state machine that does not wait
    /// for the log: every append is answered after its fsync.
    Plain,
    /// As `Node::start` opens them: `LogStore::open(dir, Some(id))` (the
    /// leader answers its own appends early) and
    /// `StateMachine::open(..)?.wait_for_log(log.durability())`.
    Production,
    /// `Production`, plus a saved vote that is committed and names this
    /// node as leader, so that appends take the early path.
    ProductionLeading,
}

struct Builder(Setup);

type FirebreakSuite = Suite<TypeConfig, LogStore, StateMachine, Builder, TempDir>;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (log, sm) = match self.0 {
            Setup::Plain => (
                LogStore::open(&dir.path().join("raft"), None)?,
                StateMachine::open(&dir.path().join("snapshot"))?,
            ),
            Setup::Production | Setup::ProductionLeading => {
                let log = LogStore::open(&dir.path().join("raft"), Some(SUITE_NODE))?;
                let sm = StateMachine::open(&dir.path().join("snapshot"))?.wait_for_log(log.durability());
                (log, sm)
            }
        };
        let mut log = log;
        if let Setup::ProductionLeading = self.0 {
            // Saved after opening: a committed vote of this node found at
            // open is demoted (the restart rule of `log_store`).
            log.save_vote(&Vote::new_committed(1, SUITE_NODE)).await?;
        }
        Ok((dir, log, sm))
    }
}

#[test]
fn the_plain_storage_passes_openrafts_conformance_suite() {
    Suite::test_all(Builder(Setup::Plain)).unwrap();
}

/// The whole suite, on stores opened as `Node::start` opens them, with
/// this node's id set to the suite's node (0).
///
/// Not covered here, because the suite never sets it up:
/// - the early acknowledgement itself. `LogStore::append` answers early
///   only while the saved vote is *committed* and names this node, and the
///   suite saves only uncommitted votes (`Vote::new(term, 0)`), so every
///   append here is answered after its fsync, as in `Plain`. The log tests
///   are run with early answers in
///   [`log_tests_pass_with_the_leaders_appends_answered_early`]; the suite
///   tests that apply entries or read the initial state save an
///   uncommitted vote first, so the state machine never waits here for an
///   entry that was answered early and is not yet on disk.
/// - the restart rule (`resume_without_leadership`): the suite never
///   reopens a store.
#[test]
fn the_storage_opened_as_in_production_passes_openrafts_conformance_suite() {
    Suite::test_all(Builder(Setup::Production)).unwrap();
}

fn run<F, Fut>(test: F)
where
    F: FnOnce(LogStore, StateMachine) -> Fut,
    Fut: Future<Output = Result<(), StorageError>>,
{
    // A fresh runtime per test, as the suite's own runner does.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime
        .block_on(async move {
            let (_dir, log, sm) = Builder(Setup::ProductionLeading).build().await?;
            test(log, sm).await
        })
        .unwrap();
}

/// The suite's log tests (reads, log state, purges, truncations, appends)
/// with this node leading a committed term, so that its appends are
/// answered before they are on disk and written in the background.
///
/// Not covered: the suite tests that check the initial vote or state, or
/// apply entries (they save or expect an uncommitted vote), and the
/// `Durability` waits that keep an early-answered entry from being applied
/// or sent as committed (unit tests in `log_store.rs` cover those).
#[test]
fn log_tests_pass_with_the_leaders_appends_answered_early() {
    // Each of these appends before it saves a vote of its own (if at all),
    // so its appends take the early path.
    run(FirebreakSuite::get_log_entries);
    run(FirebreakSuite::limited_get_log_entries);
    run(FirebreakSuite::try_get_log_entry);
    run(FirebreakSuite::initial_logs);
    run(FirebreakSuite::get_log_state);
    run(FirebreakSuite::get_log_id);
    run(FirebreakSuite::last_id_in_log);
    run(FirebreakSuite::purge_logs_upto_0);
    run(FirebreakSuite::purge_logs_upto_5);
    run(FirebreakSuite::purge_logs_upto_20);
    run(FirebreakSuite::delete_logs_since_11);
    run(FirebreakSuite::delete_logs_since_0);
    run(FirebreakSuite::append_to_log);
    run(FirebreakSuite::get_initial_state_log_ids);
}
