//! The locks workload's client task: leases kept alive and v3lock locks
//! held with them (mutual exclusion checked by
//! [`firebreak_check::locks`]).
//!
//! Three loops of rounds run at once (see [`run`]). Each round: grant a
//! lease of 3 to 5 s; keep it alive from a task of its own (one request
//! every third of the TTL, one in flight, each recorded with its send time
//! and the TTL answered); Lock a name with it; hold it (for a while, or,
//! for a datacenter's resident, for as long as the lease lives); then
//! Unlock and revoke the lease, or let the lease lapse (the store then
//! releases the lock on its own). At the stop instant a held lock is
//! released by revoking its lease.
//!
//! # Correctness
//!
//! - A keep-alive is invoked when it is sent and completed with the TTL of
//!   the response to *that* request: after a timeout or an error the
//!   stream is dropped and a new one opened, so a late answer is never
//!   taken for a later request's (which would overstate the lease).
//! - The keep-alive that opens a stream is answered inside the client
//!   library, which hides the TTL: it is recorded with `ttl: null` and the
//!   checker does not count it.
//! - A Lock that waits behind another holder may take longer than the
//!   operation timeout: it is bounded by the timeout plus the longest TTL,
//!   and never past the stop instant plus the timeout.
//! - Records follow [`super::recorder`]'s discipline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::LockOptions;
use firebreak_check::locks::{LockEvent, LockOp, LockResult};
use firebreak_check::Outcome;
use rand::Rng;
use tokio::sync::watch;

use super::context::Ctx;
use super::endpoints::{back_off, call, complete, revision_of, Answer, Endpoints};
use super::recorder::LineRecorder;
use crate::clock::{monotonic_ns, sleep_until_ns};
use crate::error::DrillError;

/// Lock names of the varied loop.
const NAMES: u32 = 2;
/// Datacenters, one resident lock each.
const DATACENTERS: usize = 3;
/// Longest lease TTL asked for, in seconds.
const MAX_TTL: i64 = 5;
const SALT: u64 = 0x10c4;

/// How long a round holds the lock it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// 50 to 400 ms, three times in ten 4 to 10 s (on the keep-alives),
    /// and one round in ten lets the lease lapse instead of unlocking.
    Varied,
    /// 50 to 400 ms, then unlock.
    Short,
    /// As long as the lease lives as far as this client can tell (a
    /// keep-alive answered with a TTL within the last TTL), until the stop
    /// instant: a service that holds a lock for its lifetime.
    Resident,
}

/// Runs the locks workload until the stop instant: three loops at once.
/// One takes `<prefix>locks/L0` or `L1` and holds it for a varied time.
/// One is the *resident* of its own datacenter's lock, `R<n>` for `dcN`:
/// it holds it for as long as its lease lives. The last *contends* for the
/// next datacenter's lock, `R<n+1>`, holding it briefly when it gets it.
/// So whichever datacenter is cut off, its resident holds a lock that a
/// client of another datacenter is waiting for: a cut-off leader that
/// renews leases without a quorum lets that lock be held twice.
pub async fn run(ctx: Ctx, recorder: Arc<LineRecorder>) -> Result<(), DrillError> {
    let names: Vec<String> = (0..NAMES).map(|i| format!("{}locks/L{i}", ctx.prefix)).collect();
    let dc: usize = ctx
        .dc
        .strip_prefix("dc")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .saturating_sub(1);
    let resident = vec![format!("{}locks/R{dc}", ctx.prefix)];
    let contended = vec![format!("{}locks/R{}", ctx.prefix, (dc + 1) % DATACENTERS)];
    let tasks = [
        tokio::spawn(rounds(ctx.clone(), recorder.clone(), names, Hold::Varied, SALT)),
        tokio::spawn(rounds(
            ctx.clone(),
            recorder.clone(),
            resident,
            Hold::Resident,
            SALT + 1,
        )),
        tokio::spawn(rounds(ctx, recorder, contended, Hold::Short, SALT + 2)),
    ];
    for task in tasks {
        task.await
            .map_err(|e| DrillError::Internal(format!("a locks task failed: {e}")))??;
    }
    Ok(())
}

/// One loop of rounds on `names` (one picked at random each round).
async fn rounds(
    ctx: Ctx,
    recorder: Arc<LineRecorder>,
    names: Vec<String>,
    hold: Hold,
    salt: u64,
) -> Result<(), DrillError> {
    let mut rng = ctx.rng(salt);
    let mut unary = Endpoints::new(&ctx.urls, ctx.unary_options());
    let mut waiting = Endpoints::new(&ctx.urls, ctx.stream_options());
    sleep_until_ns(ctx.start_ns).await;
    while ctx.running() {
        let Some(client) = unary.client().await else { continue };
        let ttl = rng.gen_range(3..=MAX_TTL);
        let event: LockEvent = recorder.invoke(&ctx, LockOp::Grant { ttl })?;
        let granted_at = monotonic_ns();
        let answer = call(ctx.op_timeout, async {
            let resp = client.lease_client().grant(ttl, None).await?;
            Ok(LockResult::Grant {
                lease: resp.id(),
                ttl: resp.ttl(),
                revision: revision_of(resp.header()),
            })
        })
        .await;
        let pause = unary.after("grant", &answer);
        let event = complete(event, answer);
        recorder.record(&event)?;
        let Some(LockResult::Grant { lease, ttl, .. }) = event.ok_result().cloned() else {
            back_off(pause).await;
            continue;
        };
        // The send time of the last keep-alive answered with a TTL (the
        // grant's, to begin with): the lease lives until it plus the TTL.
        let renewed = Arc::new(AtomicU64::new(granted_at));
        let (stop_keeper, stopped) = watch::channel(false);
        let mut keeper = Some(tokio::spawn(keep_alive(
            ctx.clone(),
            recorder.clone(),
            lease,
            ttl,
            stopped,
            renewed.clone(),
        )));

        let held = lock(
            &ctx,
            &recorder,
            &mut waiting,
            &names[rng.gen_range(0..names.len())],
            lease,
        )
        .await?;
        if let Some((name, key)) = held {
            let lapse = match hold {
                Hold::Resident => {
                    let alive = || monotonic_ns() < renewed.load(Ordering::Relaxed) + ttl as u64 * 1_000_000_000;
                    while ctx.running() && alive() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    // A lease this client cannot vouch for any more is
                    // let go of, not unlocked: the store expires it.
                    ctx.running()
                }
                Hold::Short | Hold::Varied => {
                    // Mostly short holds; three in ten (of the varied
                    // loop) outlive the lease's TTL, kept by the
                    // keep-alives alone.
                    let hold_ms = if hold == Hold::Varied && rng.gen_bool(0.3) {
                        rng.gen_range(4_000..=10_000)
                    } else {
                        rng.gen_range(50..=400)
                    };
                    sleep_until_ns((monotonic_ns() + hold_ms * 1_000_000).min(ctx.stop_ns)).await;
                    hold == Hold::Varied && ctx.running() && rng.gen_bool(0.1)
                }
            };
            if lapse {
                // Let the lease lapse: no more keep-alives, no unlock.
                stop(&stop_keeper, &mut keeper).await?;
                sleep_until_ns((monotonic_ns() + (ttl as u64 + 1) * 1_000_000_000).min(ctx.stop_ns)).await;
            } else if ctx.running() {
                if let Some(client) = unary.client().await {
                    let event: LockEvent = recorder.invoke(
                        &ctx,
                        LockOp::Unlock {
                            name,
                            key: key.clone(),
                            lease,
                        },
                    )?;
                    let answer = call(ctx.op_timeout, async {
                        let resp = client.lock_client().unlock(key).await?;
                        Ok(LockResult::Unlock {
                            revision: revision_of(resp.header()),
                        })
                    })
                    .await;
                    let pause = unary.after("unlock", &answer);
                    recorder.record(&complete(event, answer))?;
                    back_off(pause).await;
                }
            }
        }
        stop(&stop_keeper, &mut keeper).await?;
        revoke(&ctx, &recorder, &mut unary, lease).await?;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=100))).await;
    }
    Ok(())
}

/// Stops the keep-alive task (if still running) and waits for it.
async fn stop(
    signal: &watch::Sender<bool>,
    keeper: &mut Option<tokio::task::JoinHandle<Result<(), DrillError>>>,
) -> Result<(), DrillError> {
    let _ = signal.send(true);
    match keeper.take() {
        Some(task) => task
            .await
            .map_err(|e| DrillError::Internal(format!("the keep-alive task failed: {e}")))?,
        None => Ok(()),
    }
}

/// Locks `name` with `lease`; the lock key if acquired.
async fn lock(
    ctx: &Ctx,
    recorder: &LineRecorder,
    endpoints: &mut Endpoints,
    name: &str,
    lease: i64,
) -> Result<Option<(String, String)>, DrillError> {
    let Some(client) = endpoints.client().await else {
        return Ok(None);
    };
    let limit = (ctx.op_timeout + Duration::from_secs(MAX_TTL as u64)).min(Duration::from_nanos(
        (ctx.stop_ns + ctx.op_timeout.as_nanos() as u64).saturating_sub(monotonic_ns()),
    ));
    let event: LockEvent = recorder.invoke(
        ctx,
        LockOp::Lock {
            name: name.to_owned(),
            lease,
        },
    )?;
    let answer = call(limit, async {
        let resp = client
            .lock_client()
            .lock(name, Some(LockOptions::new().with_lease(lease)))
            .await?;
        Ok(LockResult::Lock {
            key: String::from_utf8_lossy(resp.key()).into_owned(),
            revision: revision_of(resp.header()),
        })
    })
    .await;
    let pause = endpoints.after("lock", &answer);
    let event = complete(event, answer);
    recorder.record(&event)?;
    back_off(pause).await;
    Ok(match event.ok_result() {
        Some(LockResult::Lock { key, .. }) => Some((name.to_owned(), key.clone())),
        _ => None,
    })
}

/// Revokes `lease` (which also releases any lock held with it).
async fn revoke(ctx: &Ctx, recorder: &LineRecorder, endpoints: &mut Endpoints, lease: i64) -> Result<(), DrillError> {
    let Some(client) = endpoints.client().await else {
        return Ok(());
    };
    let event: LockEvent = recorder.invoke(ctx, LockOp::Revoke { lease })?;
    let answer = call(ctx.op_timeout, async {
        let resp = client.lease_client().revoke(lease).await?;
        Ok(LockResult::Revoke {
            revision: revision_of(resp.header()),
        })
    })
    .await;
    let pause = endpoints.after("revoke", &answer);
    recorder.record(&complete(event, answer))?;
    back_off(pause).await;
    Ok(())
}

/// Keeps `lease` alive every third of its TTL until told to stop or the
/// lease is gone.
async fn keep_alive(
    ctx: Ctx,
    recorder: Arc<LineRecorder>,
    lease: i64,
    ttl: i64,
    mut stop: watch::Receiver<bool>,
    renewed: Arc<AtomicU64>,
) -> Result<(), DrillError> {
    let interval = Duration::from_millis((ttl.max(1) as u64 * 1000 / 3).max(300));
    let mut endpoints = Endpoints::new(&ctx.urls, ctx.stream_options());
    let mut stream = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return Ok(()),
        }
        if *stop.borrow() {
            return Ok(());
        }
        let Some(client) = endpoints.client().await else {
            continue;
        };
        let event: LockEvent = recorder.invoke(&ctx, LockOp::KeepAlive { lease })?;
        let answer = match stream.as_mut() {
            None => {
                let opened = call(ctx.op_timeout, async { client.lease_client().keep_alive(lease).await }).await;
                match opened {
                    Answer::Ok(pair) => {
                        stream = Some(pair);
                        Answer::Ok(LockResult::KeepAlive { ttl: None })
                    }
                    Answer::Err(outcome, e) => Answer::Err(outcome, e),
                    Answer::TimedOut => Answer::TimedOut,
                }
            }
            Some((keeper, responses)) => {
                call(ctx.op_timeout, async {
                    keeper.keep_alive().await?;
                    match responses.message().await? {
                        Some(resp) => Ok(LockResult::KeepAlive { ttl: Some(resp.ttl()) }),
                        None => Err(etcd_client::Error::LeaseKeepAliveError("stream ended".into())),
                    }
                })
                .await
            }
        };
        if answer.outcome() != Outcome::Ok {
            stream = None;
        }
        let pause = endpoints.after("keep-alive", &answer);
        let event = complete(event, answer);
        recorder.record(&event)?;
        if let Some(LockResult::KeepAlive { ttl: Some(ttl) }) = event.ok_result() {
            if *ttl <= 0 {
                return Ok(());
            }
            renewed.fetch_max(event.invoke_ns, Ordering::Relaxed);
        }
        back_off(pause).await;
    }
}
