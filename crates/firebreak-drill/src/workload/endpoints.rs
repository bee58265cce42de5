//! How the bank, ranges, locks and watches workloads reach the cluster:
//! [`Endpoints`] fails over between the client's endpoints as the register
//! loop ([`super::client`]) and etcd's client libraries do, and [`call`]
//! bounds one request by the operation timeout and says what its failure
//! means ([`Answer`], through [`super::outcome`]); [`complete`] turns that
//! into the record's completion.
//!
//! # Correctness
//!
//! An error is `fail` only when [`super::outcome::classify`] says etcd
//! guarantees the request was not applied; a timeout and every other error
//! is `unknown`.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use firebreak_check::recorded::Recorded;
use firebreak_check::Outcome;

use super::outcome::{classify, should_fail_over};
use crate::clock::monotonic_ns;

/// What came of one request.
#[derive(Debug)]
pub enum Answer<T> {
    /// The response.
    Ok(T),
    /// An error, and what it says about the request's effect.
    Err(Outcome, etcd_client::Error),
    /// No answer within the operation timeout (outcome unknown).
    TimedOut,
}

impl<T> Answer<T> {
    /// `ok`, `fail` or `unknown`.
    pub fn outcome(&self) -> Outcome {
        match self {
            Answer::Ok(_) => Outcome::Ok,
            Answer::Err(outcome, _) => *outcome,
            Answer::TimedOut => Outcome::Unknown,
        }
    }
}

/// Runs one request, bounded by `timeout`.
pub async fn call<T>(timeout: Duration, request: impl Future<Output = Result<T, etcd_client::Error>>) -> Answer<T> {
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(value)) => Answer::Ok(value),
        Ok(Err(e)) => Answer::Err(classify(&e), e),
        Err(_elapsed) => Answer::TimedOut,
    }
}

/// Completes a record from its answer, now: `ok` with the result, `fail`
/// when the error guarantees no effect, else `unknown`.
pub fn complete<O, R>(event: Recorded<O, R>, answer: Answer<R>) -> Recorded<O, R> {
    let now = monotonic_ns();
    match answer {
        Answer::Ok(result) => event.ok(now, result),
        Answer::Err(Outcome::Fail, _) => event.fail(now),
        Answer::Err(..) | Answer::TimedOut => event.unknown(Some(now)),
    }
}

/// The header revision of a response (0 if absent).
pub fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> u64 {
    header.map_or(0, |h| h.revision().max(0) as u64)
}

/// A returned key as recorded.
pub fn kv_of(kv: &etcd_client::KeyValue) -> firebreak_check::Kv {
    firebreak_check::Kv {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: String::from_utf8_lossy(kv.value()).into_owned(),
        mod_revision: kv.mod_revision().max(0) as u64,
        create_revision: kv.create_revision().max(0) as u64,
    }
}

/// The client's endpoints, its own datacenter's first, connected lazily.
pub struct Endpoints {
    urls: Vec<String>,
    clients: Vec<Option<Client>>,
    current: usize,
    options: ConnectOptions,
    failures_in_a_row: u32,
}

impl Endpoints {
    /// Endpoints `urls` (not empty), connected with `options`.
    pub fn new(urls: &[String], options: ConnectOptions) -> Endpoints {
        Endpoints {
            urls: urls.to_vec(),
            clients: vec![None; urls.len()],
            current: 0,
            options,
            failures_in_a_row: 0,
        }
    }

    /// The endpoint in use.
    pub fn url(&self) -> &str {
        &self.urls[self.current]
    }

    /// A client of the endpoint in use, connecting if needed. If the
    /// connection fails, moves to the next endpoint after 50 ms and
    /// returns `None` (the caller tries again).
    pub async fn client(&mut self) -> Option<Client> {
        if let Some(client) = &self.clients[self.current] {
            return Some(client.clone());
        }
        match Client::connect([self.urls[self.current].as_str()], Some(self.options.clone())).await {
            Ok(client) => {
                self.clients[self.current] = Some(client.clone());
                Some(client)
            }
            Err(e) => {
                tracing::warn!(endpoint = %self.url(), error = %e, "cannot connect");
                self.rotate();
                tokio::time::sleep(Duration::from_millis(50)).await;
                None
            }
        }
    }

    /// Moves to the next endpoint.
    pub fn rotate(&mut self) {
        self.current = (self.current + 1) % self.urls.len();
    }

    /// After a request: on a failure that may be the endpoint's, moves to
    /// the next one and returns how long to back off (25, 50, 100, 200 ms
    /// as failures repeat), as the register loop does.
    pub fn after<T>(&mut self, what: &str, answer: &Answer<T>) -> Option<Duration> {
        let fail_over = match answer {
            Answer::Ok(_) => false,
            Answer::Err(outcome, e) => {
                tracing::info!(op = what, endpoint = %self.url(), error = %e, outcome = ?outcome, "operation failed");
                should_fail_over(*outcome, e)
            }
            Answer::TimedOut => {
                tracing::info!(op = what, endpoint = %self.url(), "operation timed out");
                true
            }
        };
        if !fail_over {
            self.failures_in_a_row = 0;
            return None;
        }
        self.failures_in_a_row += 1;
        self.rotate();
        Some(Duration::from_millis(
            25u64 << self.failures_in_a_row.min(4).saturating_sub(1),
        ))
    }
}

/// Sleeps for the back-off [`Endpoints::after`] asked for, if any.
pub async fn back_off(pause: Option<Duration>) {
    if let Some(pause) = pause {
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_move_on_and_back_off_longer_each_time() {
        let urls = vec!["http://a".to_owned(), "http://b".to_owned()];
        let mut e = Endpoints::new(&urls, ConnectOptions::new());
        assert_eq!(e.after("x", &Answer::Ok(())), None);
        assert_eq!(e.url(), "http://a");
        let pauses: Vec<Option<Duration>> = (0..5).map(|_| e.after("x", &Answer::<()>::TimedOut)).collect();
        assert_eq!(
            pauses,
            [25, 50, 100, 200, 200].map(|ms| Some(Duration::from_millis(ms)))
        );
        assert_eq!(e.url(), "http://b");
        let invalid = etcd_client::Error::GRpcStatus(tonic::Status::invalid_argument("bad"));
        assert_eq!(e.after("x", &Answer::<()>::Err(classify(&invalid), invalid)), None);
        assert_eq!(
            call(Duration::from_millis(5), std::future::pending::<Result<(), _>>())
                .await
                .outcome(),
            Outcome::Unknown
        );
    }
}
