//! Human-readable one-line renderings of history events, used in
//! counterexamples and anomaly messages, e.g.
//! `#17 c3 put k1=c3-17 [t=1.203s..1.207s] ok rev=42 @dc2`.
//!
//! # Correctness
//!
//! - Rendering is for people only; nothing parses it back. Times are shown
//!   in seconds with millisecond precision when the timestamp is a whole
//!   number of milliseconds, and microsecond precision otherwise, so that
//!   distinct timestamps close together do not look equal.

use std::fmt::Write as _;

use crate::history::{HistoryEvent, Operation, Outcome};

/// Formats monotonic nanoseconds as seconds, e.g. `1.203s`.
pub fn format_ns(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    if frac % 1_000_000 == 0 {
        format!("{secs}.{:03}s", frac / 1_000_000)
    } else {
        format!("{secs}.{:06}s", frac / 1_000)
    }
}

fn show(value: Option<&str>) -> String {
    match value {
        Some(v) => v.to_owned(),
        None => "(absent)".to_owned(),
    }
}

/// Renders one event as a line of text.
pub fn describe_event(event: &HistoryEvent) -> String {
    let mut line = format!("#{} c{} ", event.id, event.client);
    let result = event.result.as_ref().filter(|_| event.outcome == Outcome::Ok);
    match &event.op {
        Operation::Put { key, value } => {
            let _ = write!(line, "put {key}={value}");
        }
        Operation::Get { key } => {
            let _ = write!(line, "get {key}");
            if let Some(seen) = result.and_then(|r| r.value.as_ref()) {
                let _ = write!(line, " -> {}", show(seen.as_deref()));
            }
        }
        Operation::Cas { key, expected, new } => {
            let _ = write!(line, "cas {key} {}->{new}", show(expected.as_deref()));
        }
        Operation::Delete { key } => {
            let _ = write!(line, "delete {key}");
        }
        Operation::Append { key, value } => {
            let _ = write!(line, "append {key}+={value:?}");
        }
    }
    let end = match (event.outcome, event.complete_ns) {
        (Outcome::Unknown, Some(t)) => format!("{} gave up", format_ns(t)),
        (_, Some(t)) => format_ns(t),
        (_, None) => "?".to_owned(),
    };
    let _ = write!(line, " [t={}..{end}] ", format_ns(event.invoke_ns));
    line.push_str(match event.outcome {
        Outcome::Ok => "ok",
        Outcome::Fail => "fail",
        Outcome::Unknown => "unknown",
    });
    if let Some(result) = result {
        match &event.op {
            Operation::Cas { .. } => match result.succeeded {
                Some(true) => line.push_str(" succeeded"),
                Some(false) => line.push_str(" not-succeeded"),
                None => {}
            },
            Operation::Delete { .. } => {
                if let Some(deleted) = result.deleted {
                    let _ = write!(line, " deleted={deleted}");
                }
            }
            _ => {}
        }
        if let Some(revision) = result.revision {
            let _ = write!(line, " rev={revision}");
        }
        if let Some(mod_revision) = result.mod_revision {
            let _ = write!(line, " mod_rev={mod_revision}");
        }
    }
    if let Some(dc) = &event.dc {
        let _ = write!(line, " @{dc}");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::OpResult;

    #[test]
    fn renders_like_the_contract_example() {
        let event = HistoryEvent::invoked(
            17,
            3,
            None,
            Operation::Put {
                key: "k1".into(),
                value: "c3-17".into(),
            },
            1_203_000_000,
        )
        .ok(1_207_000_000, OpResult::put(42));
        assert_eq!(
            describe_event(&event),
            "#17 c3 put k1=c3-17 [t=1.203s..1.207s] ok rev=42"
        );
    }

    #[test]
    fn renders_reads_cas_and_unknown() {
        let get = HistoryEvent::invoked(1, 2, Some("dc1"), Operation::Get { key: "k".into() }, 5)
            .ok(1_500, OpResult::get(None, 7, None));
        assert_eq!(
            describe_event(&get),
            "#1 c2 get k -> (absent) [t=0.000000s..0.000001s] ok rev=7 @dc1"
        );
        let cas = HistoryEvent::invoked(
            2,
            2,
            None,
            Operation::Cas {
                key: "k".into(),
                expected: None,
                new: "v".into(),
            },
            2_000_000_000,
        )
        .unknown(None);
        assert_eq!(describe_event(&cas), "#2 c2 cas k (absent)->v [t=2.000s..?] unknown");
    }
}
