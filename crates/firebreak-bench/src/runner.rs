//! Runs the clients of one benchmark and gathers their figures.
//!
//! # Correctness
//! - Closed loop: each client sends its next request when the previous one
//!   is answered; latency is the time from send to answer.
//! - Open loop (`--rate r`): request `n` is due at `start + n / r` whatever
//!   happened to earlier ones; a client takes the next due request when it
//!   is free, waits for its due time if that is still ahead, and its latency
//!   counts from the due time. When the server falls behind, the requests
//!   that wait for a free client show that wait in their latency instead of
//!   silently not being sent (coordinated omission). The time from the
//!   actual send is reported apart, as service time.
//! - Only requests due (or sent) after the warm-up count; throughput counts
//!   successful requests answered before the end of the run, over the time
//!   from the end of the warm-up to the end of the run (or to the last
//!   answer, when `--total` ends it earlier).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::args::{BenchArgs, ClientKind, Target};
use crate::conn::{Conn, OpError};
use crate::error::BenchError;
use crate::report::{new_histogram, Latency, Report};
use crate::workload::{Outcome, Workload};

/// How long to wait for a connection before the run starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// When and how many requests are sent; shared by every client.
struct Plan {
    start: Instant,
    measure_from: Instant,
    end: Option<Instant>,
    total: Option<u64>,
    rate: Option<f64>,
    timeout: Duration,
    /// Requests handed out so far: the sequence number of the next one.
    issued: AtomicU64,
}

/// What one client saw.
struct ClientStats {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ok_in_window: u64,
    last_answer: Option<Instant>,
    errors: BTreeMap<String, u64>,
    samples: BTreeMap<String, String>,
    misses: u64,
    conflicts: u64,
}

impl ClientStats {
    fn new() -> ClientStats {
        ClientStats {
            latency: new_histogram(),
            service: new_histogram(),
            ok_in_window: 0,
            last_answer: None,
            errors: BTreeMap::new(),
            samples: BTreeMap::new(),
            misses: 0,
            conflicts: 0,
        }
    }

    fn error(&mut self, e: OpError) {
        *self.errors.entry(e.kind.clone()).or_default() += 1;
        self.samples.entry(e.kind).or_insert(e.message);
    }

    fn merge(&mut self, other: ClientStats) {
        self.latency.add(&other.latency).expect("histograms of one shape");
        self.service.add(&other.service).expect("histograms of one shape");
        self.ok_in_window += other.ok_in_window;
        self.last_answer = self.last_answer.max(other.last_answer);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        for (kind, message) in other.samples {
            self.samples.entry(kind).or_insert(message);
        }
        self.misses += other.misses;
        self.conflicts += other.conflicts;
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// One client: takes requests from the plan until the run ends.
async fn client_loop(plan: Arc<Plan>, workload: Arc<Workload>, mut conn: Conn, mut rng: StdRng) -> ClientStats {
    let mut stats = ClientStats::new();
    loop {
        let seq = plan.issued.fetch_add(1, Ordering::Relaxed);
        if plan.total.is_some_and(|total| seq >= total) {
            break;
        }
        let due = match plan.rate {
            Some(rate) => {
                let due = plan.start + Duration::from_secs_f64(seq as f64 / rate);
                if plan.end.is_some_and(|end| due >= end) {
                    break;
                }
                tokio::time::sleep_until(due).await;
                due
            }
            None => {
                let now = Instant::now();
                if plan.end.is_some_and(|end| now >= end) {
                    break;
                }
                now
            }
        };
        let sent = Instant::now();
        let result = match tokio::time::timeout(plan.timeout, workload.run_one(&mut conn, &mut rng)).await {
            Ok(result) => result,
            Err(_) => Err(OpError::client_timeout(plan.timeout)),
        };
        let answered = Instant::now();
        if due < plan.measure_from {
            continue;
        }
        match result {
            Ok(outcome) => {
                stats.latency.saturating_record(micros(answered - due));
                stats.service.saturating_record(micros(answered - sent));
                if !matches!(plan.end, Some(end) if answered > end) {
                    stats.ok_in_window += 1;
                }
                stats.last_answer = stats.last_answer.max(Some(answered));
                match outcome {
                    Outcome::Done => {}
                    Outcome::Miss => stats.misses += 1,
                    Outcome::Conflict => stats.conflicts += 1,
                }
            }
            Err(e) => stats.error(e),
        }
    }
    stats
}

/// How long `--target leader` waits for an endpoint that reports itself
/// leader (an election under way when the run starts).
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// The endpoint that reports itself leader, waiting up to [`LEADER_WAIT`]
/// for one while an election is under way.
async fn find_leader(kind: ClientKind, urls: &[String]) -> Result<String, BenchError> {
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    loop {
        match find_leader_once(kind, urls).await {
            Err(BenchError::NoLeader(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn find_leader_once(kind: ClientKind, urls: &[String]) -> Result<String, BenchError> {
    let mut seen = Vec::new();
    for url in urls {
        let answer = match Conn::connect(kind, url, CONNECT_TIMEOUT).await {
            Ok(mut conn) => tokio::time::timeout(CONNECT_TIMEOUT, conn.status())
                .await
                .unwrap_or_else(|_| Err(OpError::client_timeout(CONNECT_TIMEOUT))),
            Err(e) => {
                seen.push(format!("{url}: {e}"));
                continue;
            }
        };
        match answer {
            Ok((member, leader, _)) if member != 0 && member == leader => return Ok(url.clone()),
            Ok((member, leader, _)) => seen.push(format!("{url}: member {member:x}, leader {leader:x}")),
            Err(e) => seen.push(format!("{url}: {}: {}", e.kind, e.message)),
        }
    }
    Err(BenchError::NoLeader(seen.join("; ")))
}

/// The highest Raft term any of `urls` reports (`None`: none answered).
/// Terms only grow, by one per election: the difference over a run counts
/// the elections during it.
async fn highest_term(kind: ClientKind, urls: &[String]) -> Option<u64> {
    let mut highest = None;
    for url in urls {
        let Ok(mut conn) = Conn::connect(kind, url, CONNECT_TIMEOUT).await else {
            continue;
        };
        if let Ok(Ok((_, _, term))) = tokio::time::timeout(CONNECT_TIMEOUT, conn.status()).await {
            highest = highest.max(Some(term));
        }
    }
    highest
}

/// CPU seconds (user + system) used by this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Connects, runs the workload and reports.
pub async fn run(args: &BenchArgs) -> Result<Report, BenchError> {
    let urls = args.endpoint_urls();
    let targets = match args.target {
        Target::All => urls.clone(),
        Target::Leader => vec![find_leader(args.client, &urls).await?],
    };
    let mut conns = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        conns.push(Conn::connect(args.client, &targets[i % targets.len()], CONNECT_TIMEOUT).await?);
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let workload = Arc::new(Workload::new(args, seed));

    let term_before = highest_term(args.client, &urls).await;
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let plan = Arc::new(Plan {
        start,
        measure_from: start + args.warmup,
        end: args.run_time().map(|d| start + args.warmup + d),
        total: args.total,
        rate: args.rate,
        timeout: args.timeout,
        issued: AtomicU64::new(0),
    });
    let handles: Vec<_> = (0..args.clients)
        .map(|c| {
            let rng = StdRng::seed_from_u64(seed.wrapping_add((c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            tokio::spawn(client_loop(
                plan.clone(),
                workload.clone(),
                conns[c % conns.len()].clone(),
                rng,
            ))
        })
        .collect();
    let mut stats = ClientStats::new();
    for handle in handles {
        stats.merge(handle.await.expect("a client task panicked"));
    }
    let client_cpu_seconds = cpu_seconds() - cpu_before;
    let term_after = highest_term(args.client, &urls).await;

    let window_end = match (plan.end, stats.last_answer) {
        (Some(end), Some(last)) => end.min(last.max(plan.measure_from)),
        (Some(end), None) => end,
        (None, Some(last)) => last,
        (None, None) => Instant::now(),
    };
    let seconds = window_end.saturating_duration_since(plan.measure_from).as_secs_f64();
    let errors = stats.errors.values().sum();
    Ok(Report {
        op: args.op.name().to_string(),
        endpoints: targets,
        target: format!("{:?}", args.target).to_lowercase(),
        client: match args.client {
            ClientKind::Tonic => "tonic".into(),
            ClientKind::EtcdClient => "etcd-client".into(),
        },
        clients: args.clients,
        conns: args.conns,
        value_size: args.value_size,
        keys: args.keys,
        rate: args.rate,
        seconds,
        ops: stats.ok_in_window,
        ops_per_sec: if seconds > 0.0 {
            stats.ok_in_window as f64 / seconds
        } else {
            0.0
        },
        latency_us: Latency::of(&stats.latency),
        service_time_us: args.rate.map(|_| Latency::of(&stats.service)),
        errors,
        errors_by_kind: stats.errors,
        error_samples: stats.samples,
        misses: stats.misses,
        elections: match (term_before, term_after) {
            (Some(before), Some(after)) => Some(after.saturating_sub(before)),
            _ => None,
        },
        cas_conflicts: stats.conflicts,
        client_cpu_seconds,
    })
}
