//! `firebreak drill-client`: one workload client, one OS process, so that a
//! fire can SIGKILL it together with its datacenter.
//!
//! It waits for the drill's start instant, then runs its [`Mix`] with at
//! most one request in flight until the stop instant, against its own
//! datacenter's member first and, after a failure, the next endpoint in
//! its list (as an etcd client library fails over).
//!
//! Every client runs that register loop: it is what the drill's
//! linearizability, lost-write and recovery checks read. `--workload`
//! chooses what else runs, as a concurrent task of the same process:
//! nothing (`registers`); `bank`, `ranges`, `locks` or `watches`
//! ([`super::bank`], [`super::ranges`], [`super::locks`],
//! [`super::watches`]); or, for `mixed`, the one `--id` modulo 4 picks (0
//! bank, 1 ranges, 2 locks, 3 watches). (`firebreak drill` names one for
//! each client itself, so that every datacenter runs locks.) The register history
//! (`--history`) is the same whatever else runs; another workload records
//! in its own file next to it ([`super::recorder::workload_history_path`]).
//!
//! # Correctness
//!
//! For every operation the client appends to its history file, each with
//! one `write(2)` on an `O_APPEND` file (no user-space buffer, so nothing is
//! lost when the process is killed):
//! 1. the invocation (outcome `unknown`, no completion), *before* sending;
//! 2. the completion: `ok` with the response, `fail` when the error
//!    guarantees it was not applied, or `unknown` with the time it gave up.
//!
//! Both lines carry the same id; the drill keeps the last line of each id
//! ([`super::merge`]). An invocation without a completion line stays
//! `unknown`. Times are `CLOCK_MONOTONIC` ([`crate::clock`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};
use firebreak_check::{to_jsonl_line, HistoryEvent, OpResult, Operation, Outcome};

use super::context::Ctx;
use super::mix::Mix;
use super::outcome::{classify, should_fail_over};
use super::recorder::{workload_history_path, LineRecorder};
use crate::args::{ClientArgs, WorkloadArg};
use crate::clock::{monotonic_ns, sleep_until_ns};
use crate::error::DrillError;

/// Runs the client process.
pub fn run(args: ClientArgs) -> Result<ExitCode, DrillError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DrillError::io("cannot start the client runtime", "tokio"))?;
    runtime.block_on(run_async(args))?;
    Ok(ExitCode::SUCCESS)
}

/// The client's history file.
struct Recorder {
    file: File,
    path: std::path::PathBuf,
}

impl Recorder {
    fn record(&mut self, event: &HistoryEvent) -> Result<(), DrillError> {
        let mut line = to_jsonl_line(event)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(DrillError::io("cannot record the history", &self.path))
    }
}

/// One endpoint, connected lazily.
struct Endpoint {
    url: String,
    client: Option<Client>,
}

/// The workload other than registers that `workload` runs in client `id`,
/// and its name (that of its file).
pub fn other_workload(workload: WorkloadArg, id: u64) -> Option<(WorkloadArg, &'static str)> {
    let other = match workload {
        WorkloadArg::Registers => return None,
        WorkloadArg::Mixed => [
            WorkloadArg::Bank,
            WorkloadArg::Ranges,
            WorkloadArg::Locks,
            WorkloadArg::Watches,
        ][(id % 4) as usize],
        other => other,
    };
    let name = match other {
        WorkloadArg::Bank => "bank",
        WorkloadArg::Ranges => "ranges",
        WorkloadArg::Locks => "locks",
        _ => "watches",
    };
    Some((other, name))
}

async fn run_async(args: ClientArgs) -> Result<(), DrillError> {
    let other = match other_workload(args.workload, args.id) {
        Some((workload, name)) => {
            let recorder = LineRecorder::open(&workload_history_path(&args.history, name))?;
            let ctx = Ctx::from_args(&args);
            Some(tokio::spawn(async move {
                match workload {
                    WorkloadArg::Bank => super::bank::run(ctx, recorder).await,
                    WorkloadArg::Ranges => super::ranges::run(ctx, recorder).await,
                    WorkloadArg::Locks => super::locks::run(ctx, recorder).await,
                    _ => super::watches::run(ctx, recorder).await,
                }
            }))
        }
        None => None,
    };
    let registers = run_registers(args).await;
    let other = match other {
        Some(task) => task
            .await
            .map_err(|e| DrillError::Internal(format!("a workload task failed: {e}")))
            .and_then(|done| done),
        None => Ok(()),
    };
    registers.and(other)
}

/// The register loop (the `registers` workload).
async fn run_registers(args: ClientArgs) -> Result<(), DrillError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.history)
        .map_err(DrillError::io("cannot open the history", &args.history))?;
    let mut recorder = Recorder {
        file,
        path: args.history.clone(),
    };
    let timeout = Duration::from_millis(args.op_timeout_ms.max(1));
    let options = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(Duration::from_secs(1), timeout);
    let mut endpoints: Vec<Endpoint> = args
        .endpoints
        .iter()
        .map(|url| Endpoint {
            url: url.clone(),
            client: None,
        })
        .collect();
    let mut current = 0usize;
    let mut mix = Mix::new(args.seed, args.id, args.keys, &args.key_prefix);
    let pace = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let mut failures_in_a_row = 0u32;
    let mut seq = 0u64;

    sleep_until_ns(args.start_ns).await;
    let mut next_start = monotonic_ns();
    while monotonic_ns() < args.stop_ns {
        if let Some(pace) = pace {
            sleep_until_ns(next_start).await;
            next_start = next_start.max(monotonic_ns().saturating_sub(pace.as_nanos() as u64)) + pace.as_nanos() as u64;
            if monotonic_ns() >= args.stop_ns {
                break;
            }
        }
        let endpoint = &mut endpoints[current];
        let client = match &endpoint.client {
            Some(client) => client.clone(),
            None => match Client::connect([endpoint.url.as_str()], Some(options.clone())).await {
                Ok(client) => {
                    endpoint.client = Some(client.clone());
                    client
                }
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint.url, error = %e, "cannot connect");
                    current = (current + 1) % endpoints.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        seq += 1;
        let op = mix.next_op();
        let invoked = HistoryEvent::invoked(seq, args.id, Some(&args.dc), op.clone(), monotonic_ns());
        recorder.record(&invoked)?;
        let attempt = tokio::time::timeout(timeout, execute(client, &op)).await;
        let now = monotonic_ns();
        let (event, error) = match attempt {
            Ok(Ok(result)) => (invoked.ok(now, result), None),
            Ok(Err(e)) => {
                let outcome = classify(&e);
                let event = match outcome {
                    Outcome::Fail => invoked.fail(now),
                    _ => invoked.unknown(Some(now)),
                };
                (event, Some((outcome, e)))
            }
            Err(_elapsed) => (invoked.unknown(Some(now)), None),
        };
        recorder.record(&event)?;
        mix.observe(&op, event.outcome, event.result.as_ref());
        let fail_over = match (&error, event.outcome) {
            (_, Outcome::Ok) => false,
            (Some((outcome, e)), _) => should_fail_over(*outcome, e),
            (None, _) => true,
        };
        if let Some((_, e)) = &error {
            tracing::info!(op = seq, endpoint = %endpoints[current].url, error = %e, outcome = ?event.outcome, "operation failed");
        } else if event.outcome != Outcome::Ok {
            tracing::info!(op = seq, endpoint = %endpoints[current].url, "operation timed out");
        }
        if fail_over {
            failures_in_a_row += 1;
            current = (current + 1) % endpoints.len();
            // Back off a little, as client libraries do: 25, 50, 100, 200 ms.
            let backoff = 25u64 << failures_in_a_row.min(4).saturating_sub(1);
            tokio::time::sleep(Duration::from_millis(backoff)).await;
        } else {
            failures_in_a_row = 0;
        }
    }
    Ok(())
}

/// Sends one operation and turns the response into its [`OpResult`].
async fn execute(client: Client, op: &Operation) -> Result<OpResult, etcd_client::Error> {
    let mut kv = client.kv_client();
    match op {
        Operation::Put { key, value } => {
            let resp = kv.put(key.as_str(), value.as_str(), None).await?;
            Ok(OpResult::put(header_revision(resp.header())))
        }
        Operation::Get { key } => {
            let resp = kv.get(key.as_str(), None::<GetOptions>).await?;
            let revision = header_revision(resp.header());
            match resp.kvs().first() {
                Some(kv) => Ok(OpResult::get(
                    Some(String::from_utf8_lossy(kv.value()).into_owned()),
                    revision,
                    Some(kv.mod_revision() as u64),
                )),
                None => Ok(OpResult::get(None, revision, None)),
            }
        }
        Operation::Cas { key, expected, new } => {
            let compare = match expected {
                Some(value) => Compare::value(key.as_str(), CompareOp::Equal, value.as_str()),
                None => Compare::create_revision(key.as_str(), CompareOp::Equal, 0),
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key.as_str(), new.as_str(), None)]);
            let resp = kv.txn(txn).await?;
            Ok(OpResult::cas(resp.succeeded(), header_revision(resp.header())))
        }
        Operation::Delete { key } => {
            let resp = kv.delete(key.as_str(), None).await?;
            Ok(OpResult::delete(resp.deleted() as u64, header_revision(resp.header())))
        }
        Operation::Append { .. } => Err(etcd_client::Error::InvalidArgs("the drill never issues append".into())),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| h.revision().max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ClientArgs,
    }

    fn parse(extra: &[&str]) -> ClientArgs {
        let base = [
            "drill-client",
            "--id",
            "6",
            "--dc",
            "dc2",
            "--endpoints",
            "http://a,http://b",
            "--seed",
            "1",
            "--keys",
            "10",
            "--start-ns",
            "1",
            "--stop-ns",
            "2",
            "--history",
            "/x/c6.jsonl",
        ];
        Cli::parse_from(base.iter().chain(extra)).args
    }

    #[test]
    fn workloads_by_name_and_mixed_by_id() {
        assert_eq!(parse(&[]).workload, WorkloadArg::Registers);
        assert_eq!(other_workload(parse(&[]).workload, 6), None);
        assert_eq!(parse(&["--workload", "locks"]).workload, WorkloadArg::Locks);
        let mixed = parse(&["--workload", "mixed"]).workload;
        let names: Vec<&str> = (0..8)
            .filter_map(|id| other_workload(mixed, id))
            .map(|(_, n)| n)
            .collect();
        assert_eq!(
            names,
            ["bank", "ranges", "locks", "watches", "bank", "ranges", "locks", "watches"]
        );
        assert_eq!(
            other_workload(WorkloadArg::Watches, 4),
            Some((WorkloadArg::Watches, "watches"))
        );
        assert_eq!(other_workload(WorkloadArg::Bank, 3).map(|(_, n)| n), Some("bank"));
        assert!(Cli::try_parse_from(["x", "--workload", "nope"]).is_err());
    }
}
