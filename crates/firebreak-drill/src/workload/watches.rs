//! The watches workload's client task: one watch on the whole workload
//! prefix, kept across reconnects, every response recorded (checked
//! against the store's history by [`firebreak_check::watches`]); plus a
//! writer so that the watch has something to see when no other workload
//! runs.
//!
//! The watch starts up to 20 revisions below the current one (so it
//! begins by replaying history). On an error, the end of the stream, or
//! every 3 to 8 s on purpose, it reconnects to the next endpoint and
//! resumes from the last revision it saw plus one (events or progress
//! notifications), as etcd's client does. It asks for a progress
//! notification every 2 s and once more at the stop instant, so the
//! checker knows up to where it must have seen everything. A watch
//! cancelled as compacted starts a new session from the current revision.
//! The writer puts and deletes `<prefix>watch/w00`…`w04` at half the rate
//! (values `w<client>-<n>`, unique).
//!
//! # Correctness
//!
//! - An `open` record is written before the watch is created, and each
//!   response is one record written when it arrives, events and all, so a
//!   killed client leaves whole responses only.
//! - The resume revision only moves up, and only from what was recorded,
//!   so the records show exactly which revisions the client asked for.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions, WatchResponse};
use firebreak_check::watches::{EventKind, WatchEntry, WatchEvent, WatchRecord};
use rand::Rng;

use super::context::{Ctx, Pacer};
use super::endpoints::{back_off, call, revision_of, Answer, Endpoints};
use super::recorder::LineRecorder;
use crate::clock::{monotonic_ns, sleep_until_ns};
use crate::error::DrillError;

const SALT: u64 = 0x3a7c;
/// Keys of the writer.
const KEYS: u32 = 5;
/// Seconds between progress requests.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Runs the watcher and its writer until the stop instant.
pub async fn run(ctx: Ctx, recorder: Arc<LineRecorder>) -> Result<(), DrillError> {
    let writer = tokio::spawn(write(ctx.clone()));
    let watched = watch(ctx, recorder).await;
    let _ = writer.await;
    watched
}

/// What the watcher knows of its session.
struct Session {
    number: u64,
    attempt: u64,
    /// The highest revision seen (events or progress).
    seen: u64,
}

fn record(ctx: &Ctx, recorder: &LineRecorder, session: &Session, entry: WatchEntry) -> Result<(), DrillError> {
    recorder.record(&WatchRecord {
        client: ctx.client,
        dc: Some(ctx.dc.clone()),
        session: session.number,
        t_ns: monotonic_ns(),
        entry,
    })
}

/// Records one response and learns from it; `Err(true)` when the watch was
/// cancelled as compacted (a new session must start), `Err(false)` when it
/// was cancelled otherwise.
fn on_response(
    ctx: &Ctx,
    recorder: &LineRecorder,
    session: &mut Session,
    resp: &WatchResponse,
) -> Result<Result<(), bool>, DrillError> {
    let attempt = session.attempt;
    let revision = revision_of(resp.header());
    if resp.canceled() {
        let compact_revision = resp.compact_revision().max(0) as u64;
        let reason = resp.cancel_reason().to_owned();
        record(
            ctx,
            recorder,
            session,
            WatchEntry::Canceled {
                attempt,
                compact_revision,
                reason,
            },
        )?;
        return Ok(Err(compact_revision > 0));
    }
    if resp.created() {
        let watch_id = resp.watch_id();
        record(
            ctx,
            recorder,
            session,
            WatchEntry::Created {
                attempt,
                watch_id,
                revision,
            },
        )?;
        return Ok(Ok(()));
    }
    if resp.events().is_empty() {
        session.seen = session.seen.max(revision);
        record(ctx, recorder, session, WatchEntry::Progress { attempt, revision })?;
        return Ok(Ok(()));
    }
    let events: Vec<WatchEvent> = resp
        .events()
        .iter()
        .filter_map(|e| {
            let kv = e.kv()?;
            let put = e.event_type() == EventType::Put;
            Some(WatchEvent {
                revision: kv.mod_revision().max(0) as u64,
                key: String::from_utf8_lossy(kv.key()).into_owned(),
                kind: if put { EventKind::Put } else { EventKind::Delete },
                value: put.then(|| String::from_utf8_lossy(kv.value()).into_owned()),
            })
        })
        .collect();
    session.seen = events.iter().map(|e| e.revision).fold(session.seen, u64::max);
    record(
        ctx,
        recorder,
        session,
        WatchEntry::Events {
            attempt,
            revision,
            events,
        },
    )?;
    Ok(Ok(()))
}

/// The current revision, asked of the endpoints in turn until one answers
/// or the load stops.
async fn current_revision(ctx: &Ctx, endpoints: &mut Endpoints) -> Option<u64> {
    while ctx.running() {
        let Some(client) = endpoints.client().await else {
            continue;
        };
        let answer = call(ctx.op_timeout, async {
            let resp = client
                .kv_client()
                .get(
                    ctx.prefix.as_str(),
                    Some(GetOptions::new().with_prefix().with_count_only()),
                )
                .await?;
            Ok(revision_of(resp.header()))
        })
        .await;
        let pause = endpoints.after("watch start", &answer);
        if let Answer::Ok(rev) = answer {
            return Some(rev);
        }
        back_off(pause).await;
    }
    None
}

async fn watch(ctx: Ctx, recorder: Arc<LineRecorder>) -> Result<(), DrillError> {
    let mut rng = ctx.rng(SALT);
    let mut unary = Endpoints::new(&ctx.urls, ctx.unary_options());
    let mut endpoints = Endpoints::new(&ctx.urls, ctx.stream_options());
    sleep_until_ns(ctx.start_ns).await;
    let Some(now) = current_revision(&ctx, &mut unary).await else {
        return Ok(());
    };
    let start = now.saturating_sub(rng.gen_range(0..=20)).max(1);
    let mut session = Session {
        number: 1,
        attempt: 0,
        seen: start - 1,
    };
    while ctx.running() {
        let Some(client) = endpoints.client().await else {
            continue;
        };
        session.attempt += 1;
        let attempt = session.attempt;
        let entry = WatchEntry::Open {
            attempt,
            endpoint: endpoints.url().to_owned(),
            prefix: ctx.prefix.clone(),
            start_revision: session.seen + 1,
        };
        record(&ctx, &recorder, &session, entry)?;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(session.seen as i64 + 1);
        let opened = call(ctx.op_timeout, async {
            client.watch_client().watch(ctx.prefix.as_str(), Some(options)).await
        })
        .await;
        let stream = match opened {
            Answer::Ok(stream) => stream,
            failed => {
                let reason = match &failed {
                    Answer::Err(_, e) => e.to_string(),
                    _ => "timed out opening the watch".to_owned(),
                };
                record(&ctx, &recorder, &session, WatchEntry::Closed { attempt, reason })?;
                let pause = endpoints.after("watch", &failed);
                back_off(pause.or(Some(Duration::from_millis(25)))).await;
                continue;
            }
        };
        let (mut requests, mut responses) = stream.split();
        let move_at = monotonic_ns() + rng.gen_range(3_000..=8_000) * 1_000_000;
        let mut progress_at = monotonic_ns() + PROGRESS_EVERY.as_nanos() as u64;
        let closed: Option<String> = loop {
            tokio::select! {
                message = responses.message() => match message {
                    Ok(Some(resp)) => match on_response(&ctx, &recorder, &mut session, &resp)? {
                        Ok(()) => {}
                        Err(true) => {
                            // Compacted: a new session from the current revision.
                            let Some(now) = current_revision(&ctx, &mut unary).await else { return Ok(()) };
                            session = Session { number: session.number + 1, attempt: 0, seen: now };
                            break None;
                        }
                        Err(false) => break Some("cancelled".to_owned()),
                    },
                    Ok(None) => break Some("stream ended".to_owned()),
                    Err(e) => break Some(e.to_string()),
                },
                _ = sleep_until_ns(progress_at) => {
                    progress_at += PROGRESS_EVERY.as_nanos() as u64;
                    if let Err(e) = requests.request_progress().await {
                        break Some(format!("cannot request progress: {e}"));
                    }
                }
                _ = sleep_until_ns(move_at) => {
                    endpoints.rotate();
                    break Some("moving to another endpoint".to_owned());
                }
                _ = sleep_until_ns(ctx.stop_ns) => {
                    finish(&ctx, &recorder, &mut session, &mut requests, &mut responses).await?;
                    return Ok(());
                }
            }
        };
        if let Some(reason) = closed {
            let failed = reason != "moving to another endpoint";
            record(&ctx, &recorder, &session, WatchEntry::Closed { attempt, reason })?;
            if failed {
                endpoints.rotate();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
    record(
        &ctx,
        &recorder,
        &session,
        WatchEntry::Stop {
            last_revision: session.seen,
        },
    )
}

/// At the stop instant: asks for a last progress notification, records
/// what arrives until it does (or the operation timeout), and stops.
async fn finish(
    ctx: &Ctx,
    recorder: &LineRecorder,
    session: &mut Session,
    requests: &mut etcd_client::WatchRequestSender,
    responses: &mut etcd_client::WatchResponseStream,
) -> Result<(), DrillError> {
    if requests.request_progress().await.is_ok() {
        let deadline = monotonic_ns() + ctx.op_timeout.as_nanos() as u64;
        while let Ok(Ok(Some(resp))) = tokio::time::timeout(
            Duration::from_nanos(deadline.saturating_sub(monotonic_ns())),
            responses.message(),
        )
        .await
        {
            let progress = !resp.created() && !resp.canceled() && resp.events().is_empty();
            if on_response(ctx, recorder, session, &resp)?.is_err() || progress {
                break;
            }
        }
    }
    record(
        ctx,
        recorder,
        session,
        WatchEntry::Stop {
            last_revision: session.seen,
        },
    )
}

/// Puts and deletes the writer's keys at half the client's rate.
async fn write(ctx: Ctx) {
    let mut rng = ctx.rng(SALT ^ 1);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("{}watch/w{i:02}", ctx.prefix)).collect();
    let mut endpoints = Endpoints::new(&ctx.urls, ctx.unary_options());
    sleep_until_ns(ctx.start_ns).await;
    let mut pacer = Pacer::new(ctx.rate / 2.0);
    let mut n = 0u64;
    while pacer.wait(ctx.stop_ns).await {
        let Some(client) = endpoints.client().await else {
            continue;
        };
        let key = keys[rng.gen_range(0..keys.len())].clone();
        n += 1;
        let value = format!("w{}-{n}", ctx.client);
        let delete = rng.gen_bool(0.2);
        let answer = call(ctx.op_timeout, async {
            let mut kv = client.kv_client();
            if delete {
                kv.delete(key, None).await.map(|_| ())
            } else {
                kv.put(key, value, None).await.map(|_| ())
            }
        })
        .await;
        back_off(endpoints.after("watch writer", &answer)).await;
    }
}
