//! The figures of a run: throughput, latency percentiles, errors by kind;
//! as text for people and as JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency histograms count microseconds, from 1 µs to one hour, to three
/// significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub op: String,
    pub endpoints: Vec<String>,
    pub target: String,
    pub client: String,
    pub clients: usize,
    pub conns: usize,
    pub value_size: usize,
    pub keys: u64,
    /// Offered load of an open-loop run, requests per second.
    pub rate: Option<f64>,
    /// Seconds over which `ops` were counted (after the warm-up).
    pub seconds: f64,
    /// Requests that succeeded (misses and compare-and-set conflicts
    /// included) and completed inside the measured time.
    pub ops: u64,
    pub ops_per_sec: f64,
    /// Latency of successful requests, in µs. In an open-loop run it counts
    /// from the time each request was due, so queueing behind a slow server
    /// shows (no coordinated omission); this includes up to about a
    /// millisecond of timer wake-up delay in the load generator.
    pub latency_us: Latency,
    /// Open loop only: from the moment a request was actually sent.
    pub service_time_us: Option<Latency>,
    /// Requests that failed, in total and by kind.
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first message seen for each kind of error.
    pub error_samples: BTreeMap<String, String>,
    /// Gets that found no key.
    pub misses: u64,
    /// Compare-and-sets whose compare failed (another client won).
    pub cas_conflicts: u64,
    /// Elections during the run, warm-up included: how far the highest
    /// Raft term the members report grew (`null`: no member answered
    /// Status before or after). A store whose timeouts are too short for
    /// the load shows needless elections here.
    pub elections: Option<u64>,
    /// CPU seconds (user + system) the load generator itself used while
    /// measuring: it shares the machine with the servers.
    pub client_cpu_seconds: f64,
}

impl Report {
    pub fn to_text(&self) -> String {
        let mut t = String::new();
        let l = &self.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(
            t,
            "{} against {} ({} endpoint{}, target {}), {} client{} on {} connection{}, {}-byte values, {} keys, client {}",
            self.op,
            self.endpoints.join(","),
            self.endpoints.len(),
            if self.endpoints.len() == 1 { "" } else { "s" },
            self.target,
            self.clients,
            if self.clients == 1 { "" } else { "s" },
            self.conns,
            if self.conns == 1 { "" } else { "s" },
            self.value_size,
            self.keys,
            self.client,
        );
        match self.rate {
            Some(rate) => {
                let _ = writeln!(
                    t,
                    "open loop at {rate:.0} requests/s (latency from each request's due time)"
                );
            }
            None => {
                let _ = writeln!(t, "closed loop");
            }
        }
        let _ = writeln!(
            t,
            "  {:>10.1} ops/s   {} ops in {:.2} s",
            self.ops_per_sec, self.ops, self.seconds
        );
        let _ = writeln!(
            t,
            "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            l.mean / 1000.0
        );
        if let Some(s) = &self.service_time_us {
            let _ = writeln!(
                t,
                "  service ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (from the actual send)",
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.p999),
                ms(s.max)
            );
        }
        if self.misses > 0 {
            let _ = writeln!(t, "  misses (key not found): {}", self.misses);
        }
        if self.cas_conflicts > 0 {
            let _ = writeln!(t, "  compare-and-set conflicts: {}", self.cas_conflicts);
        }
        let _ = writeln!(t, "  errors: {}", self.errors);
        if let Some(n) = self.elections {
            let _ = writeln!(t, "  elections during the run: {n}");
        }
        for (kind, n) in &self.errors_by_kind {
            let sample = self.error_samples.get(kind).map(String::as_str).unwrap_or("");
            let _ = writeln!(t, "    {kind}: {n}  (e.g. {sample})");
        }
        let _ = writeln!(t, "  load generator CPU: {:.2} s", self.client_cpu_seconds);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert_eq!(l.p50, 500);
        assert_eq!(l.p90, 900);
        assert_eq!(l.p99, 990);
        assert_eq!(l.p999, 999);
        assert_eq!(l.max, 1000);
        assert_eq!(Latency::of(&new_histogram()), Latency::default());
    }
}
