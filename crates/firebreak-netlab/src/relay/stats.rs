//! What the relay did and what it cost: bytes and connections, the delay it
//! actually added to each chunk (timer granularity and scheduling make it
//! larger than asked), and the CPU time of its thread.
//!
//! # Correctness
//!
//! The CPU figure is the relay thread's own `CLOCK_THREAD_CPUTIME_ID`
//! (through `pthread_getcpuclockid`), so it counts relaying only: accepting,
//! copying, timers and source look-ups, not the drill's other work.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Width of a delay-histogram bucket, in microseconds.
const BUCKET_US: u64 = 50;
/// Buckets (the last one collects everything above 100 ms).
const BUCKETS: usize = 2001;
/// No CPU clock registered.
const NO_CLOCK: i64 = i64::MIN;

/// Shared counters of the relay.
pub struct Counters {
    pub(crate) bytes: AtomicU64,
    pub(crate) chunks: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) cut_connections: AtomicU64,
    pub(crate) upstream_failures: AtomicU64,
    pub(crate) unidentified: AtomicU64,
    /// CPU spent identifying sources on blocking threads (loopback mode).
    pub(crate) lookup_cpu_ns: AtomicU64,
    delays: Vec<AtomicU64>,
    /// The relay thread's CPU clock id, once the thread runs ([`NO_CLOCK`]: none;
    /// thread clock ids are negative numbers).
    cpu_clock: AtomicI64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            bytes: AtomicU64::new(0),
            chunks: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cut_connections: AtomicU64::new(0),
            upstream_failures: AtomicU64::new(0),
            unidentified: AtomicU64::new(0),
            lookup_cpu_ns: AtomicU64::new(0),
            delays: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            cpu_clock: AtomicI64::new(NO_CLOCK),
        }
    }
}

/// A snapshot of the relay's counters, as in `report.json` (`relay`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RelayStats {
    /// CPU time of the relay thread, in milliseconds (`null` if unknown).
    pub cpu_ms: Option<f64>,
    /// Bytes relayed, both directions.
    pub bytes: u64,
    /// Chunks (reads) relayed across datacenters, each delayed.
    pub delayed_chunks: u64,
    /// Connections accepted and relayed.
    pub connections: u64,
    /// Connections refused because of a cut.
    pub refused: u64,
    /// Relayed connections dropped by a cut.
    pub cut_connections: u64,
    /// Connections whose destination could not be reached.
    pub upstream_failures: u64,
    /// Connections whose source datacenter could not be identified
    /// (treated as foreign, and refused while any datacenter is cut).
    pub unidentified: u64,
    /// Median one-way delay actually added to a cross-datacenter chunk, ms.
    pub delay_p50_ms: Option<f64>,
    /// 99th percentile of the same, ms.
    pub delay_p99_ms: Option<f64>,
}

fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: the call writes one timespec; an invalid clock id is an error
    // return, not undefined behaviour. Thread clocks are read only while
    // their thread runs (the relay thread unregisters before exiting).
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU nanoseconds of the calling thread.
pub fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

impl Counters {
    /// Records the calling thread as the relay thread.
    pub(crate) fn register_relay_thread(&self) {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: pthread_self is always valid; the call writes one clockid_t.
        let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
        if rc == 0 {
            self.cpu_clock.store(i64::from(clock), Ordering::SeqCst);
        }
    }

    /// Forgets the relay thread (before it exits).
    pub(crate) fn unregister_relay_thread(&self) {
        self.cpu_clock.store(NO_CLOCK, Ordering::SeqCst);
    }

    /// CPU nanoseconds of the relay so far: its thread, plus source
    /// look-ups done on blocking threads.
    pub fn cpu_ns(&self) -> Option<u64> {
        let clock = self.cpu_clock.load(Ordering::SeqCst);
        if clock == NO_CLOCK {
            return None;
        }
        let ns = clock_ns(clock as libc::clockid_t)?;
        Some(ns + self.lookup_cpu_ns.load(Ordering::Relaxed))
    }

    /// Records the delay actually added to one chunk.
    pub(crate) fn record_delay(&self, delay: Duration) {
        let bucket = ((delay.as_micros() as u64) / BUCKET_US).min(BUCKETS as u64 - 1) as usize;
        self.delays[bucket].fetch_add(1, Ordering::Relaxed);
        self.chunks.fetch_add(1, Ordering::Relaxed);
    }

    fn delay_quantile(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self.delays.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                // Upper edge of the bucket.
                return Some(((i as u64 + 1) * BUCKET_US) as f64 / 1000.0);
            }
        }
        None
    }

    /// The counters now.
    pub fn snapshot(&self) -> RelayStats {
        RelayStats {
            cpu_ms: self.cpu_ns().map(|ns| ns as f64 / 1e6),
            bytes: self.bytes.load(Ordering::Relaxed),
            delayed_chunks: self.chunks.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            cut_connections: self.cut_connections.load(Ordering::Relaxed),
            upstream_failures: self.upstream_failures.load(Ordering::Relaxed),
            unidentified: self.unidentified.load(Ordering::Relaxed),
            delay_p50_ms: self.delay_quantile(0.5),
            delay_p99_ms: self.delay_quantile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_quantiles_come_from_the_histogram() {
        let c = Counters::default();
        assert_eq!(c.delay_quantile(0.5), None);
        for _ in 0..99 {
            c.record_delay(Duration::from_micros(2_010));
        }
        c.record_delay(Duration::from_millis(30));
        assert_eq!(c.delay_quantile(0.5), Some(2.05));
        assert_eq!(c.delay_quantile(0.99), Some(2.05));
        assert_eq!(c.delay_quantile(1.0), Some(30.05));
    }

    #[test]
    fn thread_cpu_time_is_measured() {
        let c = Counters::default();
        assert_eq!(c.cpu_ns(), None);
        c.register_relay_thread();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(c.cpu_ns().unwrap() > 0);
        c.unregister_relay_thread();
    }
}
