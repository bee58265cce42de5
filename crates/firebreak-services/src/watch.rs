//! Watch sessions: the watchers of one client stream, and the events each
//! is owed.
//!
//! A session is driven by its stream: requests create and cancel
//! watchers, and every time the replica applies new entries the session
//! is [synced](WatchSession::sync), producing the events of each watcher
//! since the last revision it was sent. The protocol layer only encodes
//! the [`WatchUpdate`]s.
//!
//! # Correctness
//! - Each watcher has `next`: the first revision it has not been sent.
//!   A sync sends every event in `next..=current` and sets `next` to
//!   `current + 1`, so events arrive in revision order with no gap and no
//!   duplicate. A client that resumes on another member from its last
//!   revision plus one therefore misses nothing (unless compacted, which
//!   is reported as etcd reports it).
//! - A progress notification carries the revision its own sync went to,
//!   never one read after it, so every event at or below it was sent
//!   before it.
//! - A watcher whose `next` falls below the compaction revision is
//!   cancelled with `compact_revision` set.
//!
//! # etcd's rules (3.4), as clients see them
//! - An empty key is `"\0"`. A range end that is neither empty nor `"\0"`
//!   must be above the key, else the create is refused ("watcher range is
//!   empty"). A requested id already taken on the stream is refused. A
//!   refusal is a created response that is also cancelled, with id -1.
//! - Ids the session chooses count up from 0 and are never reused on the
//!   stream, skipping ids taken by the client; any other id the client
//!   asks for (also a negative one) is its own.
//! - A watcher cancelled by compaction keeps its id until the client
//!   cancels it (which is answered); its compaction response has no
//!   reason and header revision 0.
//! - While auth is enabled, a create needs READ on its range (after the
//!   empty key became `"\0"`, before the range and id checks); a refusal
//!   carries the gRPC error's text as its reason, as etcd's
//!   ("rpc error: code = PermissionDenied desc = etcdserver: permission
//!   denied"). Watchers already created are not judged again.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use firebreak_auth::{AuthError, AuthInfo};
use firebreak_mvcc::{Event, EventKind};

use firebreak_raft::Node;

/// What a client asks to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    pub key: Bytes,
    pub range_end: Bytes,
    /// First revision to send; 0 for "after the current one".
    pub start_revision: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    pub progress_notify: bool,
    /// Requested watch id; 0 lets the session choose.
    pub watch_id: i64,
}

/// What the session has to tell the client. Every update carries the
/// replica's revision at the time, for the response header.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchUpdate {
    Created {
        id: i64,
        revision: i64,
    },
    Events {
        id: i64,
        revision: i64,
        events: Vec<Event>,
    },
    /// Cancelled by the client, or by compaction (`compact_revision` > 0,
    /// `revision` 0, as etcd sends it).
    Canceled {
        id: i64,
        revision: i64,
        compact_revision: i64,
        reason: String,
    },
    /// A create refused: answered as created and cancelled, with id -1.
    Refused {
        revision: i64,
        reason: String,
    },
    /// Nothing happened to this watcher (id -1: answer to a progress
    /// request, for the whole stream) up to `revision`.
    Progress {
        id: i64,
        revision: i64,
    },
}

struct Watcher {
    spec: WatchSpec,
    /// First revision not yet sent.
    next: i64,
    /// Whether any event was sent since the last progress tick.
    active: bool,
    /// Cancelled by compaction: sent nothing more, but keeps its id until
    /// the client cancels it.
    compacted: bool,
}

/// The watchers of one client stream.
pub struct WatchSession {
    node: Arc<Node>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
}

impl WatchSession {
    pub fn new(node: Arc<Node>) -> WatchSession {
        WatchSession {
            node,
            watchers: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// Number of watchers holding an id (also those cancelled by
    /// compaction, until the client cancels them).
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watchers.is_empty()
    }

    /// Creates a watcher for `who`, who needs READ on its range (checked
    /// once, at creation, as etcd does).
    pub fn create(&mut self, mut spec: WatchSpec, who: &AuthInfo) -> Vec<WatchUpdate> {
        let (current, _) = self.node.revision_window();
        let refuse = |reason: &str| {
            vec![WatchUpdate::Refused {
                revision: current,
                reason: reason.into(),
            }]
        };
        if spec.key.is_empty() {
            // "\0" is the smallest key.
            spec.key = Bytes::from_static(b"\0");
        }
        if let Err(e) = self.node.check_watch(who, &spec.key, &spec.range_end) {
            return refuse(&auth_refusal(&e));
        }
        if !spec.range_end.is_empty() && spec.range_end[..] != [0] && spec.key >= spec.range_end {
            return refuse("mvcc: watcher range is empty");
        }
        let id = if spec.watch_id == 0 {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id += 1;
            self.next_id - 1
        } else if self.watchers.contains_key(&spec.watch_id) {
            return refuse("mvcc: duplicate watch ID provided on the WatchStream");
        } else {
            spec.watch_id
        };
        let next = if spec.start_revision > 0 {
            spec.start_revision
        } else {
            current + 1
        };
        self.watchers.insert(
            id,
            Watcher {
                spec,
                next,
                active: false,
                compacted: false,
            },
        );
        let mut out = vec![WatchUpdate::Created { id, revision: current }];
        out.extend(self.sync_one(id, current));
        out
    }

    /// The refusal of a create whose credentials are not valid (a bad or
    /// expired token).
    pub fn refuse(&self, e: &AuthError) -> Vec<WatchUpdate> {
        let (current, _) = self.node.revision_window();
        vec![WatchUpdate::Refused {
            revision: current,
            reason: auth_refusal(e),
        }]
    }

    pub fn cancel(&mut self, id: i64) -> Vec<WatchUpdate> {
        let (current, _) = self.node.revision_window();
        match self.watchers.remove(&id) {
            Some(_) => vec![WatchUpdate::Canceled {
                id,
                revision: current,
                compact_revision: 0,
                reason: String::new(),
            }],
            None => Vec::new(),
        }
    }

    /// Events of every watcher up to the replica's current revision.
    pub fn sync(&mut self) -> Vec<WatchUpdate> {
        let (current, _) = self.node.revision_window();
        self.sync_to(current)
    }

    /// Events of every watcher up to `current`. A progress answer must
    /// carry the very revision its sync went to: the replica may apply
    /// more in between, and a progress at a revision whose events were not
    /// sent yet would promise what the next sync then breaks.
    fn sync_to(&mut self, current: i64) -> Vec<WatchUpdate> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        ids.into_iter().flat_map(|id| self.sync_one(id, current)).collect()
    }

    fn sync_one(&mut self, id: i64, current: i64) -> Vec<WatchUpdate> {
        let Some(w) = self.watchers.get_mut(&id) else {
            return Vec::new();
        };
        if w.compacted || w.next > current {
            return Vec::new();
        }
        match self.node.events(&w.spec.key, &w.spec.range_end, w.next, current) {
            Err(_) => {
                let (_, compacted) = self.node.revision_window();
                w.compacted = true;
                vec![WatchUpdate::Canceled {
                    id,
                    revision: 0,
                    compact_revision: compacted,
                    reason: String::new(),
                }]
            }
            Ok(events) => {
                w.next = current + 1;
                let events: Vec<Event> = events
                    .into_iter()
                    .map(|(_, e)| e)
                    .filter(|e| match e.kind {
                        EventKind::Put => !w.spec.no_put,
                        EventKind::Delete => !w.spec.no_delete,
                    })
                    .map(|mut e| {
                        if !w.spec.prev_kv {
                            e.prev_kv = None;
                        }
                        e
                    })
                    .collect();
                // Failpoint `watch-skip-event` (the `failpoints` feature
                // only): `watch-skip-event=return(N)` drops every event
                // whose revision is a multiple of N, a watch that skips
                // events, for the drill to catch.
                #[cfg(feature = "failpoints")]
                let events: Vec<Event> = match fail::eval("watch-skip-event", |arg| {
                    arg.and_then(|a| a.parse::<i64>().ok()).unwrap_or(10).max(1)
                }) {
                    Some(n) => events.into_iter().filter(|e| e.kv.mod_revision % n != 0).collect(),
                    None => events,
                };
                if events.is_empty() {
                    return Vec::new();
                }
                w.active = true;
                vec![WatchUpdate::Events {
                    id,
                    revision: current,
                    events,
                }]
            }
        }
    }

    /// The answer to a progress request: the stream is synced up to now.
    pub fn progress_all(&mut self) -> Vec<WatchUpdate> {
        let (current, _) = self.node.revision_window();
        let mut out = self.sync_to(current);
        out.push(WatchUpdate::Progress {
            id: -1,
            revision: current,
        });
        out
    }

    /// Periodic progress: for each watcher that asked for it and got no
    /// event since the last tick.
    pub fn progress_tick(&mut self) -> Vec<WatchUpdate> {
        let (current, _) = self.node.revision_window();
        let mut out = self.sync_to(current);
        for (id, w) in &mut self.watchers {
            if w.spec.progress_notify && !w.active && !w.compacted {
                out.push(WatchUpdate::Progress {
                    id: *id,
                    revision: current,
                });
            }
            w.active = false;
        }
        out
    }
}

/// The cancel reason etcd gives a watch refused by auth: the text of its
/// gRPC error (`status.Error().Error()`), for one of the four errors it
/// tells apart (any other is "permission denied").
fn auth_refusal(e: &AuthError) -> String {
    let (code, e) = match e {
        AuthError::InvalidAuthToken => ("Unauthenticated", e.clone()),
        AuthError::AuthOldRevision | AuthError::UserEmpty => ("InvalidArgument", e.clone()),
        _ => ("PermissionDenied", AuthError::PermissionDenied),
    };
    format!("rpc error: code = {code} desc = {e}")
}
