//! Repeats of one library log line, dropped for a while.
//!
//! openraft logs a warning for every heartbeat and every replication
//! attempt that fails. A member whose peer is down (its datacenter burned,
//! which is what Firebreak is for) tries that peer at every heartbeat and
//! at every read index, so the warnings come tens of times a second for as
//! long as the outage lasts: the drill's four-second fire left 630 of them
//! in one survivor's log. [`RepeatLimit`] lets one line of a kind through
//! per interval and drops its repeats; errors always pass, and Firebreak's
//! own lines are not limited. The failures stay counted in the metrics
//! (`etcd_network_peer_sent_failures_total`).
//!
//! A *kind* is the log statement and the start of its message (where
//! openraft names the peer), so a second unreachable peer is still
//! reported while the first is being limited.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter};

/// How much of a message tells its kind.
const KIND_CHARS: usize = 80;

/// Kinds remembered at most; past that, the oldest are forgotten.
const MAX_KINDS: usize = 1024;

/// Lets one line of each kind from targets under `prefix` through per
/// `every` (see the module docs).
pub struct RepeatLimit {
    prefix: &'static str,
    every: Duration,
    last: Mutex<HashMap<(tracing::callsite::Identifier, String), Instant>>,
}

impl RepeatLimit {
    pub fn new(prefix: &'static str, every: Duration) -> RepeatLimit {
        RepeatLimit {
            prefix,
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    fn limited(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() != Level::ERROR && meta.target().starts_with(self.prefix)
    }
}

/// The start of an event's message.
#[derive(Default)]
struct MessageStart(String);

impl Visit for MessageStart {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
            if let Some((cut, _)) = self.0.char_indices().nth(KIND_CHARS) {
                self.0.truncate(cut);
            }
        }
    }
}

impl<S: Subscriber> Filter<S> for RepeatLimit {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        let meta = event.metadata();
        if !self.limited(meta) {
            return true;
        }
        let mut start = MessageStart::default();
        event.record(&mut start);
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let key = (meta.callsite(), start.0);
        match last.get(&key) {
            Some(at) if now.duration_since(*at) < self.every => false,
            _ => {
                if last.len() >= MAX_KINDS {
                    let every = self.every;
                    last.retain(|_, at| now.duration_since(*at) < every);
                    if last.len() >= MAX_KINDS {
                        last.clear();
                    }
                }
                last.insert(key, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer;

    use super::*;

    /// Collects the messages of the events it is given.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Collect {
        fn on_event(&self, event: &Event<'_>, _cx: tracing_subscriber::layer::Context<'_, S>) {
            let mut m = MessageStart::default();
            event.record(&mut m);
            self.0.lock().unwrap().push(m.0);
        }
    }

    /// The messages that pass `limit` while `emit` runs.
    fn passed(limit: RepeatLimit, emit: impl FnOnce()) -> Vec<String> {
        let seen = Collect::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone().with_filter(limit));
        tracing::subscriber::with_default(subscriber, emit);
        let seen = seen.0.lock().unwrap().clone();
        seen
    }

    fn peer_warning(peer: u64) {
        tracing::warn!(target: "openraft::core::heartbeat::worker", "HeartbeatWorker(target={peer}) failed to send a heartbeat");
    }

    #[test]
    fn repeats_are_dropped_per_kind_and_errors_and_others_pass() {
        let seen = passed(RepeatLimit::new("openraft", Duration::from_secs(3600)), || {
            for _ in 0..5 {
                peer_warning(2);
            }
            // Another peer: another kind.
            peer_warning(3);
            peer_warning(3);
            for _ in 0..2 {
                tracing::error!(target: "openraft::core", "fatal");
                tracing::warn!(target: "firebreak_raft::node", "ours");
            }
        });
        assert_eq!(
            seen,
            [
                "HeartbeatWorker(target=2) failed to send a heartbeat",
                "HeartbeatWorker(target=3) failed to send a heartbeat",
                "fatal",
                "ours",
                "fatal",
                "ours",
            ]
        );
    }

    #[test]
    fn a_kind_passes_again_after_the_interval() {
        let seen = passed(RepeatLimit::new("openraft", Duration::from_millis(50)), || {
            peer_warning(2);
            peer_warning(2);
            std::thread::sleep(Duration::from_millis(80));
            peer_warning(2);
        });
        assert_eq!(seen.len(), 2);
    }
}
