//! What every workload task of a client shares: [`Ctx`] (who the client
//! is, where the cluster is, when to start and stop, its seed) and
//! [`Pacer`] (operations per second, as the register loop paces).

use std::time::Duration;

use etcd_client::ConnectOptions;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::args::ClientArgs;
use crate::clock::{monotonic_ns, sleep_until_ns};

/// One client's settings, as the workload tasks need them.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Client id (unique in the drill).
    pub client: u64,
    /// Its datacenter.
    pub dc: String,
    /// Client URLs, its own datacenter's first.
    pub urls: Vec<String>,
    /// The drill's seed.
    pub seed: u64,
    /// Prefix of every workload key (`drill/`).
    pub prefix: String,
    /// `CLOCK_MONOTONIC` start of the load.
    pub start_ns: u64,
    /// No operation is invoked after this instant.
    pub stop_ns: u64,
    /// Per-request timeout.
    pub op_timeout: Duration,
    /// Operations per second (0: unlimited).
    pub rate: f64,
}

impl Ctx {
    /// The settings of `args`.
    pub fn from_args(args: &ClientArgs) -> Ctx {
        Ctx {
            client: args.id,
            dc: args.dc.clone(),
            urls: args.endpoints.clone(),
            seed: args.seed,
            prefix: args.key_prefix.clone(),
            start_ns: args.start_ns,
            stop_ns: args.stop_ns,
            op_timeout: Duration::from_millis(args.op_timeout_ms.max(1)),
            rate: args.rate,
        }
    }

    /// A random stream for one workload (`salt`) of this client, fixed by
    /// the seed.
    pub fn rng(&self, salt: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ self.client.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt)
    }

    /// Whether the load is still on.
    pub fn running(&self) -> bool {
        monotonic_ns() < self.stop_ns
    }

    /// Connection options for unary requests: every request bounded by the
    /// operation timeout, as the register loop's.
    pub fn unary_options(&self) -> ConnectOptions {
        ConnectOptions::new()
            .with_connect_timeout(self.op_timeout)
            .with_timeout(self.op_timeout)
            .with_keep_alive(Duration::from_secs(1), self.op_timeout)
    }

    /// Connection options for long-lived streams (watches, keep-alives,
    /// and Lock calls that wait): no per-request timeout (the caller
    /// bounds each step), HTTP/2 keep-alives to notice a dead member.
    pub fn stream_options(&self) -> ConnectOptions {
        ConnectOptions::new()
            .with_connect_timeout(self.op_timeout)
            .with_keep_alive(Duration::from_secs(1), self.op_timeout)
            .with_keep_alive_while_idle(true)
    }
}

/// Paces a loop at `rate` operations per second.
pub struct Pacer {
    pace: Option<u64>,
    next: u64,
}

impl Pacer {
    /// A pacer starting now (`rate` 0: no pacing).
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            pace: (rate > 0.0).then(|| (1e9 / rate) as u64),
            next: monotonic_ns(),
        }
    }

    /// Waits for the next slot; `false` once `stop_ns` has passed.
    pub async fn wait(&mut self, stop_ns: u64) -> bool {
        if let Some(pace) = self.pace {
            sleep_until_ns(self.next.min(stop_ns)).await;
            self.next = self.next.max(monotonic_ns().saturating_sub(pace)) + pace;
        }
        monotonic_ns() < stop_ns
    }
}
