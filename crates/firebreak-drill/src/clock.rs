//! The one clock of a drill: `CLOCK_MONOTONIC`, in nanoseconds. It is shared
//! by every process on the machine (network namespaces do not change it),
//! so the invocation and completion times recorded by separate client
//! processes, and the fault instant recorded by the drill, are comparable.

use std::time::Duration;

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we pass; CLOCK_MONOTONIC
    // always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps (asynchronously) until the monotonic clock reads `deadline_ns`.
pub async fn sleep_until_ns(deadline_ns: u64) {
    let now = monotonic_ns();
    if deadline_ns > now {
        tokio::time::sleep(Duration::from_nanos(deadline_ns - now)).await;
    }
}

/// Milliseconds between two monotonic readings (`0` if `to` is earlier).
pub fn ms_between(from_ns: u64, to_ns: u64) -> f64 {
    to_ns.saturating_sub(from_ns) as f64 / 1e6
}

/// Seconds as nanoseconds.
pub fn secs_to_ns(secs: f64) -> u64 {
    (secs * 1e9).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        assert_eq!(secs_to_ns(1.5), 1_500_000_000);
        assert_eq!(ms_between(10, 2_000_010), 2.0);
        assert_eq!(ms_between(10, 5), 0.0);
    }
}
