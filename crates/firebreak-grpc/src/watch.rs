//! `etcdserverpb.Watch`: decodes stream requests into a
//! [`WatchSession`], encodes its updates.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::proto::{PbEvent, PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService};
use firebreak_auth::AuthError;
use firebreak_mvcc::KvError;
use firebreak_mvcc::{Event, EventKind, MAX_REQUEST_BYTES};
use firebreak_raft::{Node, NodeError};
use firebreak_services::watch::{WatchSession, WatchSpec, WatchUpdate};
use futures::StreamExt;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Credentials;
use crate::convert;

pub struct WatchService {
    node: Arc<Node>,
    /// Interval of progress notifications for watchers that ask for them
    /// (etcd's default is ten minutes).
    progress_interval: Duration,
}

impl WatchService {
    pub fn new(node: Arc<Node>, progress_interval: Duration) -> Self {
        WatchService {
            node,
            progress_interval,
        }
    }
}

fn event(e: Event) -> PbEvent {
    PbEvent {
        r#type: match e.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        },
        kv: Some(convert::key_value(e.kv)),
        prev_kv: e.prev_kv.map(convert::key_value),
    }
}

/// The responses for one update; events are split into fragments when the
/// watcher asked for it and they would not fit one message.
fn responses(node: &Node, update: WatchUpdate, fragment: bool) -> Vec<PbWatchResponse> {
    let base = |revision: i64, id: i64| PbWatchResponse {
        header: convert::header(node.header(revision)),
        watch_id: id,
        ..Default::default()
    };
    match update {
        WatchUpdate::Created { id, revision } => vec![PbWatchResponse {
            created: true,
            ..base(revision, id)
        }],
        WatchUpdate::Canceled {
            id,
            revision,
            compact_revision,
            reason,
        } => vec![PbWatchResponse {
            canceled: true,
            compact_revision,
            cancel_reason: reason,
            ..base(revision, id)
        }],
        WatchUpdate::Refused { revision, reason } => vec![PbWatchResponse {
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..base(revision, -1)
        }],
        WatchUpdate::Progress { id, revision } => vec![base(revision, id)],
        WatchUpdate::Events { id, revision, events } => {
            let events: Vec<PbEvent> = events.into_iter().map(event).collect();
            if !fragment {
                return vec![PbWatchResponse {
                    events,
                    ..base(revision, id)
                }];
            }
            let mut out = Vec::new();
            let mut chunk: Vec<PbEvent> = Vec::new();
            let mut size = 0;
            for e in events {
                let len = e.encoded_len();
                if !chunk.is_empty() && size + len > MAX_REQUEST_BYTES {
                    out.push(PbWatchResponse {
                        events: std::mem::take(&mut chunk),
                        fragment: true,
                        ..base(revision, id)
                    });
                    size = 0;
                }
                size += len;
                chunk.push(e);
            }
            out.push(PbWatchResponse {
                events: chunk,
                ..base(revision, id)
            });
            out
        }
    }
}

/// Drives one watch stream until the client goes away.
async fn run_session(
    node: Arc<Node>,
    creds: Credentials,
    mut inbound: Streaming<PbWatchRequest>,
    out: mpsc::Sender<Result<PbWatchResponse, Status>>,
    progress_interval: Duration,
) {
    let mut session = WatchSession::new(node.clone());
    let mut fragmented = std::collections::HashSet::new();
    let mut revisions = node.revisions();
    let mut ticker = tokio::time::interval(progress_interval);
    ticker.tick().await;
    loop {
        let updates = tokio::select! {
            req = inbound.next() => match req {
                Some(Ok(req)) => match req.request_union {
                    Some(PbWatchRequestUnion::CreateRequest(c)) => {
                        let spec = WatchSpec {
                            key: c.key.into(),
                            range_end: c.range_end.into(),
                            start_revision: c.start_revision,
                            no_put: c.filters.contains(&0),
                            no_delete: c.filters.contains(&1),
                            prev_kv: c.prev_kv,
                            progress_notify: c.progress_notify,
                            watch_id: c.watch_id,
                        };
                        // The stream's credentials, judged at every create
                        // as etcd does.
                        let updates = match node.auth_info(creds.token.as_deref(), creds.common_name.as_deref()).await {
                            Ok(who) => session.create(spec, &who),
                            Err(NodeError::Request(KvError::Auth(e))) => session.refuse(&e),
                            Err(_) => session.refuse(&AuthError::InvalidAuthToken),
                        };
                        if c.fragment {
                            if let Some(WatchUpdate::Created { id, .. }) = updates.first() {
                                fragmented.insert(*id);
                            }
                        }
                        updates
                    }
                    Some(PbWatchRequestUnion::CancelRequest(c)) => {
                        fragmented.remove(&c.watch_id);
                        session.cancel(c.watch_id)
                    }
                    Some(PbWatchRequestUnion::ProgressRequest(_)) => session.progress_all(),
                    None => Vec::new(),
                },
                _ => return,
            },
            changed = revisions.changed() => {
                if changed.is_err() {
                    return;
                }
                session.sync()
            }
            _ = ticker.tick() => session.progress_tick(),
        };
        for update in updates {
            let fragment = match &update {
                WatchUpdate::Events { id, .. } => fragmented.contains(id),
                _ => false,
            };
            for resp in responses(&node, update, fragment) {
                if out.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = ReceiverStream<Result<PbWatchResponse, Status>>;

    async fn watch(&self, request: Request<Streaming<PbWatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(256);
        let creds = Credentials::of(&request);
        tokio::spawn(run_session(
            self.node.clone(),
            creds,
            request.into_inner(),
            tx,
            self.progress_interval,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
