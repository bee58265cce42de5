//! A real Prometheus scrapes a real cluster and evaluates the alert rules
//! of `deploy/prometheus/firebreak-alerts.yml`: the rules' expressions are
//! valid, they select what the members export, and they fire and clear
//! when members die and come back.
//!
//! If `prometheus` is not installed the test is skipped, unless `CI` is
//! set, where it fails (`.ci/run` installs Debian's `prometheus`, which
//! ships `promtool` too).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::try_get;
use common::{free_port, installed, on_path, Cluster, Options};
use serde_json::Value;

/// How long any alert may take to fire or clear once its condition holds
/// or ends (with 1 s scrapes and evaluations, it takes a few seconds).
const ALERT_LIMIT: Duration = Duration::from_secs(60);

fn rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/firebreak-alerts.yml")
}

/// Whether the test can run; panics under CI if it cannot.
fn have_prometheus() -> bool {
    installed("prometheus", "apt-get install prometheus")
}

/// Whether the tests of the rules with `promtool` (which comes with
/// Debian's `prometheus`) can run; panics under CI without `prometheus`.
fn have_promtool() -> bool {
    if !have_prometheus() {
        return false;
    }
    if !on_path("promtool") {
        println!("skipping: promtool not installed");
        return false;
    }
    true
}

/// Runs `promtool <command> <file>` and asserts it succeeded; its output.
fn promtool(command: [&str; 2], file: &Path) -> String {
    let out = Command::new("promtool").args(command).arg(file).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}:\n{text}", command.join(" "));
    text
}

#[test]
fn promtool_accepts_the_rules() {
    if !have_promtool() {
        return;
    }
    let text = promtool(["check", "rules"], &rules_file());
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Firebreak's own rules against series that a live three-datacenter
/// cluster cannot easily be made to show (`promtool test rules`): the loss
/// of a datacenter that would stop writes, as only members that know the
/// risk report it; acknowledged writes on disk in one datacenter only,
/// persistently and in a single blip; a follower that falls behind.
#[test]
fn promtool_unit_tests_of_firebreaks_rules() {
    if !have_promtool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file().canonicalize().unwrap();
    let tests = format!(
        r#"rule_files:
  - {rules:?}
evaluation_interval: 1m
tests:
  # dc3's member is down. m1 (dc1, the leader) and m2 (dc2) know the
  # risk: losing dc1 or dc2 now would leave no quorum. m4 knows no leader
  # and says dc3's loss would not keep one either; it does not count.
  - interval: 1m
    input_series:
      - series: 'firebreak_risk_known{{job="etcd",instance="m1"}}'
        values: '1x15'
      - series: 'firebreak_risk_known{{job="etcd",instance="m2"}}'
        values: '1x15'
      - series: 'firebreak_risk_known{{job="etcd",instance="m4"}}'
        values: '0x15'
      - series: 'firebreak_datacenter_loss_keeps_quorum{{job="etcd",instance="m1",datacenter="dc1"}}'
        values: '0x15'
      - series: 'firebreak_datacenter_loss_keeps_quorum{{job="etcd",instance="m1",datacenter="dc2"}}'
        values: '0x15'
      - series: 'firebreak_datacenter_loss_keeps_quorum{{job="etcd",instance="m1",datacenter="dc3"}}'
        values: '1x15'
      - series: 'firebreak_datacenter_loss_keeps_quorum{{job="etcd",instance="m2",datacenter="dc1"}}'
        values: '0x15'
      - series: 'firebreak_datacenter_loss_keeps_quorum{{job="etcd",instance="m2",datacenter="dc2"}}'
        values: '0x15'
      - series: 'firebreak_datacenter_loss_keeps_quorum{{job="etcd",instance="m2",datacenter="dc3"}}'
        values: '1x15'
      - series: 'firebreak_datacenter_loss_keeps_quorum{{job="etcd",instance="m4",datacenter="dc3"}}'
        values: '0x15'
    alert_rule_test:
      - eval_time: 4m
        alertname: FirebreakDatacenterLossLosesQuorum
        exp_alerts: []
      - eval_time: 6m
        alertname: FirebreakDatacenterLossLosesQuorum
        exp_alerts:
          - exp_labels: {{severity: critical, job: etcd, datacenter: dc1}}
            exp_annotations:
              summary: Losing one datacenter would stop writes.
              description: 'Cluster "etcd": if datacenter dc1 were lost now, the members left would not hold a quorum and writes would stop. A member elsewhere is down or unreachable, or too many voters are in dc1.'
          - exp_labels: {{severity: critical, job: etcd, datacenter: dc2}}
            exp_annotations:
              summary: Losing one datacenter would stop writes.
              description: 'Cluster "etcd": if datacenter dc2 were lost now, the members left would not hold a quorum and writes would stop. A member elsewhere is down or unreachable, or too many voters are in dc2.'
  # Acknowledged writes keep being only in dc1 (between catch-ups of the
  # others), and once, for one scrape, only in dc2.
  - interval: 1m
    input_series:
      - series: 'firebreak_datacenter_loss_loses_writes{{job="etcd",instance="m1",datacenter="dc1"}}'
        values: '1 0 0 1 0 0 1 0 0 1 0 0 1 0 0 1 0 0 1 0 0'
      - series: 'firebreak_datacenter_loss_loses_writes{{job="etcd",instance="m2",datacenter="dc1"}}'
        values: '0x20'
      - series: 'firebreak_datacenter_loss_loses_writes{{job="etcd",instance="m1",datacenter="dc2"}}'
        values: '0 0 1 0x18'
    alert_rule_test:
      - eval_time: 9m
        alertname: FirebreakDatacenterLossLosesWrites
        exp_alerts: []
      - eval_time: 12m
        alertname: FirebreakDatacenterLossLosesWrites
        exp_alerts:
          - exp_labels: {{severity: critical, job: etcd, datacenter: dc1}}
            exp_annotations:
              summary: Losing one datacenter would lose acknowledged writes.
              description: 'Cluster "etcd": acknowledged writes keep being on disk only in datacenter dc1; losing it would lose them.'
  # The leader reports m3 falling behind; m2 keeps up.
  - interval: 1m
    input_series:
      - series: 'firebreak_follower_lag_seconds{{job="etcd",instance="m1",follower="m3",datacenter="dc3"}}'
        values: '0 2 6 8 10 12 14 16'
      - series: 'firebreak_follower_lag_seconds{{job="etcd",instance="m1",follower="m2",datacenter="dc2"}}'
        values: '1x7'
    alert_rule_test:
      - eval_time: 3m
        alertname: FirebreakFollowerLagging
        exp_alerts: []
      - eval_time: 5m
        alertname: FirebreakFollowerLagging
        exp_alerts:
          - exp_labels: {{severity: warning, job: etcd, follower: m3, datacenter: dc3}}
            exp_annotations:
              summary: A follower lags behind the leader.
              description: 'Cluster "etcd": follower m3 in dc3 has been missing log entries for 12s.'
"#
    );
    let path = dir.path().join("firebreak-alerts.test.yml");
    std::fs::write(&path, tests).unwrap();
    let text = promtool(["test", "rules"], &path);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_when_members_die_and_clear_when_they_return() {
    if !have_prometheus() {
        return;
    }
    let started = Instant::now();
    let mut cluster = Cluster::start(Options::default()).await;
    // Found before Prometheus starts: from then on the test sends no gRPC
    // call, so that none of the alerts on gRPC latency or failures can see
    // one of its own.
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let survivor = (leader + 2) % 3;
    let targets: Vec<String> = cluster
        .members
        .iter()
        .map(|m| format!("127.0.0.1:{}", m.client_port))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path(), &targets, &std::fs::read_to_string(rules_file()).unwrap());

    // Every member scraped, every rule evaluated, and nothing fires.
    let p = &prometheus;
    let healthy = || async move {
        let targets = p.api("/api/v1/targets").await;
        let up = targets["data"]["activeTargets"]
            .as_array()
            .map_or(0, |t| t.iter().filter(|t| t["health"] == "up").count());
        let leaders = p.query("sum(etcd_server_has_leader)").await;
        let alerts = p.alerts().await;
        let settled = up == 3 && leaders.first().map(|(_, v)| *v) == Some(3.0) && alerts.is_empty();
        (
            settled,
            format!("{up} targets up, etcd_server_has_leader {leaders:?}, alerts {alerts:?}"),
        )
    };
    let t = p.wait_until("every target up and no alert", healthy).await;
    println!("{t:.1?}: every target up, no alert");
    // Every rule was evaluated without an error.
    let rules = p.api("/api/v1/rules").await;
    let groups = rules["data"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{rules}");
    for g in groups {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r}");
        }
    }

    // One member dies. Its target is down (etcdMembersDown), and with
    // one datacenter per member, losing either of the two others would now
    // leave no quorum (FirebreakDatacenterLossLosesQuorum for both).
    cluster.kill(follower);
    let others: BTreeSet<String> = (0..3)
        .filter(|&i| i != follower)
        .map(|i| cluster.members[i].datacenter.clone())
        .collect();
    let others = &others;
    let t = p
        .wait_until(
            "etcdMembersDown and FirebreakDatacenterLossLosesQuorum",
            || async move {
                let alerts = p.alerts().await;
                let loses: BTreeSet<String> = alerts
                    .iter()
                    .filter(|a| a.name == "FirebreakDatacenterLossLosesQuorum")
                    .map(|a| a.labels["datacenter"].as_str().unwrap_or_default().to_string())
                    .collect();
                let done = alerts.iter().any(|a| a.name == "etcdMembersDown") && loses == *others;
                (done, format!("alerts {alerts:?}"))
            },
        )
        .await;
    println!("{t:.1?}: one member down, alerts fire");

    // A second member dies: no quorum. The survivor has no leader
    // (etcdNoLeader, for its instance), and too few members are up
    // (etcdInsufficientMembers).
    cluster.kill(leader);
    let survivor_target = &targets[survivor];
    let t = p
        .wait_until(
            "etcdNoLeader, etcdInsufficientMembers and etcdMembersDown",
            || async move {
                let alerts = p.alerts().await;
                let no_leader = alerts
                    .iter()
                    .any(|a| a.name == "etcdNoLeader" && a.labels["instance"] == survivor_target.as_str());
                let insufficient = alerts
                    .iter()
                    .any(|a| a.name == "etcdInsufficientMembers" && a.labels["job"] == "etcd");
                let down = alerts.iter().any(|a| a.name == "etcdMembersDown");
                (no_leader && insufficient && down, format!("alerts {alerts:?}"))
            },
        )
        .await;
    println!("{t:.1?}: two members down, alerts fire");
    let members_down = p
        .alerts()
        .await
        .into_iter()
        .find(|a| a.name == "etcdMembersDown")
        .unwrap();
    assert_eq!(members_down.value, 2.0, "{members_down:?}");
    assert_eq!(members_down.labels["severity"], "critical");

    // They come back: every alert clears.
    cluster.start_member(leader);
    cluster.start_member(follower);
    let t = p.wait_until("every target up and no alert", healthy).await;
    println!("{t:.1?}: members back, no alert; {:.1?} in all", started.elapsed());
}

/// An alert that fires.
#[derive(Debug)]
struct Alert {
    name: String,
    labels: Value,
    value: f64,
}

/// A Prometheus server on loopback, killed when dropped (also when the
/// test fails).
struct Prometheus {
    port: u16,
    log: PathBuf,
    process: Option<Child>,
}

impl Prometheus {
    /// Starts Prometheus with 1 s scrapes and evaluations, the job `etcd`
    /// on `targets`, and `rules` with every `for:` shortened to 1 s (the
    /// rules' own durations are minutes; their expressions are left as
    /// they are).
    fn start(dir: &Path, targets: &[String], rules: &str) -> Prometheus {
        let mut shortened = 0;
        let rules: String = rules
            .lines()
            .map(|line| {
                let trimmed = line.trim_start();
                if trimmed.starts_with("for: ") {
                    shortened += 1;
                    format!("{}for: 1s\n", &line[..line.len() - trimmed.len()])
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        assert!(shortened >= 10, "only {shortened} `for:` lines in the rules");
        let rules_path = dir.join("alerts.yml");
        std::fs::write(&rules_path, rules).unwrap();
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules_path:?}\n\
             scrape_configs:\n  - job_name: etcd\n    static_configs:\n      - targets: [{list}]\n"
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        if on_path("promtool") {
            promtool(["check", "config"], &config_path);
        }
        let port = free_port();
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let process = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            port,
            log,
            process: Some(process),
        }
    }

    /// The `data` of an API answer; `Null` while the server does not answer.
    async fn api(&self, path: &str) -> Value {
        match try_get(self.port, path).await {
            Some(answer) if answer.status == 200 => serde_json::from_str(&answer.body).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// An instant query's samples: (labels, value).
    async fn query(&self, q: &str) -> Vec<(Value, f64)> {
        let answer = self.api(&format!("/api/v1/query?query={}", url_encode(q))).await;
        answer["data"]["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|s| (s["metric"].clone(), s["value"][1].as_str().unwrap().parse().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The alerts that fire (not those pending).
    async fn alerts(&self) -> Vec<Alert> {
        let answer = self.api("/api/v1/alerts").await;
        answer["data"]["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|a| a["state"] == "firing")
                    .map(|a| Alert {
                        name: a["labels"]["alertname"].as_str().unwrap().to_string(),
                        labels: a["labels"].clone(),
                        value: a["value"].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
                    })
                    .collect()
            })
            .unwrap_or_else(|| {
                vec![Alert {
                    name: "(Prometheus does not answer)".into(),
                    labels: Value::Null,
                    value: f64::NAN,
                }]
            })
    }

    /// Polls `check` (done, what it saw) every half second until it is
    /// done; answers how long that took, or panics after [`ALERT_LIMIT`]
    /// with what it saw last and Prometheus's log.
    async fn wait_until<F, Fut>(&self, what: &str, check: F) -> Duration
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = (bool, String)>,
    {
        let start = Instant::now();
        loop {
            let (done, saw) = check().await;
            if done {
                return start.elapsed();
            }
            if start.elapsed() > ALERT_LIMIT {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("waited {ALERT_LIMIT:?} for {what}; last saw {saw}\nPrometheus's log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
