//! The ranges workload's client task: writes, and Ranges of a prefix at
//! the current or a past revision (checked against the store's history by
//! [`firebreak_check::ranges`]).
//!
//! Keys `<prefix>ranges/r00`…`r09`; every value written is unique
//! (`r<client>-<n>`). Paced mix: 30 % put, 10 % delete, 25 % linearizable
//! Range, 15 % serializable Range, 20 % Range at an explicit revision up to
//! 100 below the highest this client has seen. A Range covers
//! `<prefix>ranges/` three times out of four, and the whole `<prefix>`
//! keyspace (every workload's keys) otherwise.
//!
//! # Correctness
//!
//! Each Range records its header revision and every key returned with its
//! value, mod and create revision, so the checker can compare it with the
//! store's state exactly. Records follow [`super::recorder`]'s discipline.

use std::sync::Arc;

use etcd_client::{Client, GetOptions};
use firebreak_check::ranges::{RangeEvent, RangeOp, RangeResult};
use rand::Rng;

use super::context::{Ctx, Pacer};
use super::endpoints::{back_off, call, complete, kv_of, revision_of, Answer, Endpoints};
use super::recorder::LineRecorder;
use crate::clock::sleep_until_ns;
use crate::error::DrillError;

/// Keys written by the ranges workload.
const KEYS: u32 = 10;
const SALT: u64 = 0x4a4e;
/// How far below the highest revision seen a past Range may go.
const PAST_WINDOW: u64 = 100;

/// Runs the ranges workload until the stop instant.
pub async fn run(ctx: Ctx, recorder: Arc<LineRecorder>) -> Result<(), DrillError> {
    let own = format!("{}ranges/", ctx.prefix);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("{own}r{i:02}")).collect();
    let mut rng = ctx.rng(SALT);
    let mut endpoints = Endpoints::new(&ctx.urls, ctx.unary_options());
    let mut highest_seen = 0u64;
    let mut written = 0u64;
    sleep_until_ns(ctx.start_ns).await;
    let mut pacer = Pacer::new(ctx.rate);
    while pacer.wait(ctx.stop_ns).await {
        let Some(client) = endpoints.client().await else {
            continue;
        };
        let key = keys[rng.gen_range(0..keys.len())].clone();
        let prefix = if rng.gen_bool(0.75) {
            own.clone()
        } else {
            ctx.prefix.clone()
        };
        let op = match rng.gen_range(0..100) {
            0..=29 => {
                written += 1;
                RangeOp::Put {
                    key,
                    value: format!("r{}-{written}", ctx.client),
                }
            }
            30..=39 => RangeOp::Delete { key },
            40..=64 => RangeOp::Range {
                prefix,
                revision: None,
                serializable: false,
            },
            65..=79 => RangeOp::Range {
                prefix,
                revision: None,
                serializable: true,
            },
            _ => RangeOp::Range {
                prefix,
                revision: (highest_seen > 1)
                    .then(|| rng.gen_range(highest_seen.saturating_sub(PAST_WINDOW).max(1)..=highest_seen)),
                serializable: false,
            },
        };
        let event: RangeEvent = recorder.invoke(&ctx, op.clone())?;
        let answer = call(ctx.op_timeout, execute(client, &op)).await;
        let pause = endpoints.after("ranges", &answer);
        if let Answer::Ok(result) = &answer {
            highest_seen = highest_seen.max(result.revision());
        }
        let event = complete(event, answer);
        recorder.record(&event)?;
        back_off(pause).await;
    }
    Ok(())
}

async fn execute(client: Client, op: &RangeOp) -> Result<RangeResult, etcd_client::Error> {
    let mut kv = client.kv_client();
    match op {
        RangeOp::Put { key, value } => {
            let resp = kv.put(key.as_str(), value.as_str(), None).await?;
            Ok(RangeResult::Put {
                revision: revision_of(resp.header()),
            })
        }
        RangeOp::Delete { key } => {
            let resp = kv.delete(key.as_str(), None).await?;
            Ok(RangeResult::Delete {
                deleted: resp.deleted().max(0) as u64,
                revision: revision_of(resp.header()),
            })
        }
        RangeOp::Range {
            prefix,
            revision,
            serializable,
        } => {
            let mut options = GetOptions::new().with_prefix();
            if let Some(revision) = revision {
                options = options.with_revision(*revision as i64);
            }
            if *serializable {
                options = options.with_serializable();
            }
            let resp = kv.get(prefix.as_str(), Some(options)).await?;
            Ok(RangeResult::Range {
                revision: revision_of(resp.header()),
                kvs: resp.kvs().iter().map(kv_of).collect(),
            })
        }
    }
}
