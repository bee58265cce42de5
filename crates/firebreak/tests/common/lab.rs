//! The drill's lab, for tests that cut links between datacenters: one
//! member per datacenter on loopback, behind the relay, running the
//! `firebreak` under test.

use std::path::Path;
use std::time::Duration;

use firebreak_drill::lab::addr::Mode;
use firebreak_drill::lab::{observe, Lab, LabSettings};

/// The lab listens on fixed loopback addresses: tests of one binary that
/// build it take turns, holding this while their lab lives.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    TURN.lock().await
}

/// Builds the lab in `dir` with heartbeats every 100 ms and `election`
/// as the election timeout, and starts every member.
pub fn start(dir: &Path, election: Duration) -> Lab {
    start_with(dir, election, Path::new(super::BIN), &[])
}

/// [`start`], with members running `exe` with `env` added (a failpoints
/// build and its `FAILPOINTS`, say).
pub fn start_with(dir: &Path, election: Duration, exe: &Path, env: &[(&str, &str)]) -> Lab {
    let settings = LabSettings {
        mode: Mode::Loopback,
        nodes_per_dc: 1,
        rtt: Duration::ZERO,
        heartbeat_ms: 100,
        election_ms: election.as_millis() as u64,
        snapshot_entries: 10_000,
        keep_data: false,
        power_switch: false,
    };
    let mut lab = Lab::build(settings, dir).expect("build the lab");
    lab.exe = exe.into();
    lab.member_env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for i in 0..lab.members.len() {
        lab.start_member(i).expect("start a member");
    }
    lab
}

/// Waits until every member of `lab` is ready; the index of the leader.
pub async fn ready_leader(lab: &Lab) -> usize {
    let all: Vec<usize> = (0..lab.members.len()).collect();
    observe::wait_ready(&lab.members, &all, Duration::from_secs(30))
        .await
        .expect("the lab cluster is ready");
    observe::find_leader(&lab.members, &all, Duration::from_secs(2))
        .await
        .expect("a leader")
}
