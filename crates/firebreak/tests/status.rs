//! `firebreak status` and the risk it shows ("could we lose data right
//! now?"), against real members: before and after a member dies, and with
//! one datacenter's links cut so that it falls behind.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Cluster, Options};
use firebreak_drill::lab::observe;
use serde_json::Value;

/// `firebreak status -w json` against `endpoints`: the view, or the
/// command's stderr.
fn status_json(endpoints: &[String]) -> Result<Value, String> {
    let out = Command::new(common::BIN)
        .args(["status", "-w", "json", "--endpoints"])
        .arg(endpoints.join(","))
        .env("FIREBREAK_LOG", "warn")
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn status_table(endpoints: &[String]) -> String {
    let out = Command::new(common::BIN)
        .args(["status", "--endpoints"])
        .arg(endpoints.join(","))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn member<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no member {name} in {view:#}"))
}

/// Polls `firebreak status` until `done` holds, or panics with the last
/// view after `limit`.
fn wait_for(endpoints: &[String], limit: Duration, what: &str, done: impl Fn(&Value) -> bool) -> (Value, Duration) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < limit {
        match status_json(endpoints) {
            Ok(view) if done(&view) => return (view, start.elapsed()),
            other => last = Some(other),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: not seen within {limit:?}; last answer: {last:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_before_and_after_a_member_dies() {
    let mut cluster = Cluster::start(Options::default()).await;
    let endpoints = cluster.endpoints();
    let names: Vec<String> = cluster.members.iter().map(|m| m.name.clone()).collect();
    let mut client = cluster.client().await;
    for i in 0..10 {
        client.put(format!("k{i}"), "v", None).await.unwrap();
    }

    let (view, _) = wait_for(&endpoints, Duration::from_secs(10), "every member healthy", |v| {
        v["members"].as_array().unwrap().iter().all(|m| m["healthy"] == true)
    });
    let leader = view["leader"].as_str().expect("a leader").to_string();
    assert_eq!(view["observer"], names[0], "the first endpoint answers");
    let mut roles: Vec<&str> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    roles.sort();
    assert_eq!(roles, ["follower", "follower", "leader"]);
    for (m, name) in cluster.members.iter().zip(&names) {
        let seen = member(&view, name);
        assert_eq!(seen["datacenter"], m.datacenter.as_str());
        assert!(seen["applied_index"].as_u64().unwrap() >= 10, "{seen:#}");
        assert!(seen["lag_entries"].is_u64(), "{seen:#}");
    }
    let survives = view["survives_loss_of"].as_object().unwrap();
    assert_eq!(survives.len(), 3);
    assert!(survives.values().all(|v| v == true), "{view:#}");
    let table = status_table(&endpoints);
    assert!(table.contains("Could we lose data right now?"), "{table}");
    assert!(table.contains(&format!("leader: {leader}")), "{table}");

    // A follower dies.
    let dead = (0..3).rev().find(|&i| names[i] != leader).unwrap();
    cluster.kill(dead);
    let dead_dc = cluster.members[dead].datacenter.clone();
    let alive = (0..3).find(|&i| i != dead).unwrap();
    let from_alive = vec![endpoints[alive].clone()];
    // The leader counts a member live for one election timeout after it
    // last answered; then losing any other datacenter costs the quorum.
    let (view, seen_after) = wait_for(&from_alive, Duration::from_secs(10), "the dead member", |v| {
        member(v, &names[dead])["reachable"] == false
            && v["survives_loss_of"]
                .as_object()
                .unwrap()
                .values()
                .filter(|s| **s == true)
                .count()
                == 1
    });
    let m = member(&view, &names[dead]);
    assert_eq!(m["healthy"], false);
    assert_eq!(m["state"], "unreachable");
    assert!(m["error"].as_str().is_some_and(|e| !e.is_empty()), "{m:#}");
    assert_eq!(view["unreachable"], serde_json::json!([names[dead]]));
    let survives = view["survives_loss_of"].as_object().unwrap();
    for (dc, ok) in survives {
        // Losing the dead member's datacenter costs nothing more; losing
        // any other now leaves one live voter of three.
        assert_eq!(ok == true, *dc == dead_dc, "{dc}: {view:#}");
    }
    eprintln!("the dead member was shown within {seen_after:?}");

    // With the dead member first in the list, status answers from the next.
    let mut order = vec![endpoints[dead].clone()];
    order.extend(endpoints.iter().filter(|e| **e != endpoints[dead]).cloned());
    let view = status_json(&order).unwrap();
    assert_ne!(view["observer"], names[dead]);

    // And with none alive, it fails and says why.
    let err = status_json(&[endpoints[dead].clone()]).unwrap_err();
    assert!(err.contains("no endpoint answered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datacenter_cut_off_falls_behind_and_the_risk_says_what_losing_another_would_cost() {
    let dir = tempfile::tempdir().unwrap();
    let mut lab = common::lab::start(dir.path(), Duration::from_secs(1));
    let leader = common::lab::ready_leader(&lab).await;
    let behind = (leader + 1) % lab.members.len();
    let behind_dc = lab.members[behind].datacenter.clone();
    let behind_name = lab.members[behind].name.clone();
    let addrs: Vec<String> = lab
        .members
        .iter()
        .map(|m| format!("http://{}", m.listen_client))
        .collect();
    let at = |i: usize| vec![addrs[i].clone()];
    let behind_dc_index = lab.members[behind].dc;
    let mut client = observe::connect(&lab.members[leader], Duration::from_secs(2))
        .await
        .unwrap();

    let (view, _) = wait_for(&at(leader), Duration::from_secs(10), "all in step", |v| {
        v["risk"]["known"] == true && v["survives_loss_of"].as_object().unwrap().values().all(|s| s == true)
    });
    assert_eq!(
        view["risk"]["newest_write"]["held_durably_in"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Cut the links of one follower's datacenter; write on.
    lab.isolate(behind_dc_index).expect("cut the datacenter off");
    for i in 0..20 {
        client.put(format!("behind/{i}"), "v", None).await.unwrap();
    }
    let (view, took) = wait_for(&at(leader), Duration::from_secs(10), "the datacenter behind", |v| {
        member(v, &behind_name)["lag_entries"].as_u64().unwrap_or(0) >= 20
            && v["survives_loss_of"][&behind_dc] == true
            && v["survives_loss_of"]
                .as_object()
                .unwrap()
                .iter()
                .all(|(dc, s)| *dc == behind_dc || s == false)
    });
    eprintln!("the leader showed the risk {took:?} after the writes");
    let newest = &view["risk"]["newest_write"];
    let held: Vec<&str> = newest["held_durably_in"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(held.len(), 2, "{view:#}");
    assert!(!held.contains(&behind_dc.as_str()), "{view:#}");
    for (dc, loss) in view["risk"]["datacenters"].as_object().unwrap() {
        // Nothing acknowledged is only in one datacenter...
        assert_eq!(loss["loses_acknowledged_writes"], false, "{dc}: {loss:#}");
        // ... but with one datacenter behind, the other two are each
        // needed for a quorum.
        assert_eq!(loss["keeps_quorum"] == true, *dc == behind_dc, "{dc}: {loss:#}");
    }
    let lag_s = member(&view, &behind_name)["lag_seconds"].as_f64().unwrap();
    assert!(lag_s > 0.0, "{view:#}");

    // The member cut off knows it cannot tell.
    let (alone, _) = wait_for(&at(behind), Duration::from_secs(10), "the cut-off member's view", |v| {
        v["risk"]["known"] == false && v["unreachable"].as_array().unwrap().len() == 2
    });
    assert!(alone["risk"]["reason"].as_str().is_some(), "{alone:#}");
    assert!(alone["survives_loss_of"]
        .as_object()
        .unwrap()
        .values()
        .all(|s| s == false));

    // Healed, it catches up and every loss is survivable again.
    lab.heal(behind_dc_index).unwrap();
    wait_for(&at(leader), Duration::from_secs(15), "caught up", |v| {
        member(v, &behind_name)["lag_entries"] == 0
            && v["survives_loss_of"].as_object().unwrap().values().all(|s| s == true)
    });
}
