//! Issue 9: a leader cut off from the majority stops renewing leases and
//! answering their TTLs before the majority can expire them, so a lock is
//! never held by two clients at once.
//!
//! Issue 14: a member that comes back from isolation does not unseat the
//! leader (pre-vote), and the same test fails when members campaign
//! without asking first.
//!
//! Three datacenters on loopback behind the drill's relay (the WAN link
//! that can be cut); the test's own clients talk straight to a member's
//! listener, as a client inside that member's datacenter does, so a cut
//! leaves them talking to the cut-off member.

mod common;

use std::time::{Duration, Instant};

use etcd_client::LockOptions;
use firebreak_drill::lab::observe;

/// A lease's TTL in this test, seconds.
const TTL: i64 = 3;
const ELECTION: Duration = Duration::from_millis(1000);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_stops_renewing_leases_before_the_majority_expires_them() {
    let _turn = common::lab::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let lab = common::lab::start(dir.path(), ELECTION);
    let leader = common::lab::ready_leader(&lab).await;
    let other = (leader + 1) % lab.members.len();
    let leader_dc = lab.members[leader].dc;

    // The holder lives in the leader's datacenter and talks to the leader.
    let mut holder = observe::connect(&lab.members[leader], Duration::from_secs(2))
        .await
        .unwrap();
    let lease = holder.lease_grant(TTL, None).await.unwrap().id();
    let held = holder
        .lock("the-lock", Some(LockOptions::new().with_lease(lease)))
        .await
        .unwrap();
    assert!(common::keep_alive_once(&mut holder, lease, Duration::from_secs(2))
        .await
        .is_some());

    // A contender in another datacenter queues for the same lock.
    let mut contender = observe::connect(&lab.members[other], Duration::from_secs(30))
        .await
        .unwrap();
    let contender_lease = contender.lease_grant(60, None).await.unwrap().id();
    let contender_task = tokio::spawn(async move {
        let got = contender
            .lock("the-lock", Some(LockOptions::new().with_lease(contender_lease)))
            .await;
        (Instant::now(), got.map(|r| r.key().to_vec()))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!contender_task.is_finished(), "the lock is held: the contender waits");

    // Cut the leader's datacenter off; the holder keeps renewing through
    // the member it can still reach.
    let mut lab = lab;
    let cut = Instant::now();
    lab.isolate(leader_dc).expect("cut the leader's datacenter off");
    // (sent at, renewed TTL) of every keep-alive the old leader accepted
    // after the cut.
    let mut renewed: Vec<(Instant, i64)> = Vec::new();
    let mut refused_since: Option<Instant> = None;
    let deadline = cut + Duration::from_secs(20);
    while !contender_task.is_finished() && Instant::now() < deadline {
        let sent = Instant::now();
        match common::keep_alive_once(&mut holder, lease, Duration::from_millis(400)).await {
            Some(ttl) if ttl > 0 => {
                renewed.push((sent, ttl));
                refused_since = None;
            }
            _ => {
                refused_since.get_or_insert(sent);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(contender_task.is_finished(), "the contender never got the lock");
    let (acquired_at, got) = contender_task.await.unwrap();
    let key = got.expect("the contender's lock call succeeded");
    assert_ne!(key, held.key(), "a different key holds the lock now");

    // The old holder believed its lease alive until its last renewal (as
    // sent) plus the TTL; that must end before the lock passed on.
    let believed_until = renewed
        .iter()
        .map(|(at, ttl)| *at + Duration::from_secs(*ttl as u64))
        .max();
    eprintln!(
        "cut at 0 ms; renewals by the old leader after the cut: {:?} (ms); refused from {:?} ms; lock passed at {} ms",
        renewed
            .iter()
            .map(|(at, _)| (*at - cut).as_millis())
            .collect::<Vec<_>>(),
        refused_since.map(|t| (t - cut).as_millis()),
        (acquired_at - cut).as_millis(),
    );
    if let Some(until) = believed_until {
        assert!(
            until < acquired_at,
            "the old holder was told its lease lived until {} ms after the cut, but the lock passed at {} ms",
            (until - cut).as_millis(),
            (acquired_at - cut).as_millis()
        );
    }
    let refused = refused_since.expect("the old leader never refused a keep-alive");
    assert!(
        refused - cut < ELECTION * 2,
        "the old leader renewed leases for {} ms after the cut",
        (refused - cut).as_millis()
    );

    // Nor does it answer the lease's remaining TTL any more.
    let ttl = tokio::time::timeout(Duration::from_secs(2), holder.lease_time_to_live(lease, None)).await;
    assert!(
        !matches!(ttl, Ok(Ok(_))),
        "the cut-off leader answered TimeToLive: {ttl:?}"
    );
    lab.heal(leader_dc).unwrap();
}

/// What a member says of itself on `/api/status`: its term, the election
/// timeout its timer uses now, and whether it knows a leader.
async fn own_report(member: &firebreak_drill::lab::Member) -> Option<(u64, Duration, bool)> {
    let answer = common::http::try_get_at(member.listen_client, "/api/status").await?;
    let report: serde_json::Value = serde_json::from_str(&answer.body).ok()?;
    Some((
        report["term"].as_u64()?,
        Duration::from_millis(report["election_timeout_effective_ms"].as_u64()?),
        !report["leader"].is_null(),
    ))
}

/// A follower cut off and healed: the leader and term before the cut and
/// after the heal, and the cut-off member's own term just before the heal.
struct Healed {
    before: (u64, u64),
    after: (u64, u64),
    cut_off_term: u64,
}

/// Cuts a follower's datacenter off until its timer has asked for an
/// election several times, heals it, and answers what came of it.
///
/// The member's timer uses its own election timeout, which its round
/// trips and the leader's heartbeat gaps may lengthen past the configured
/// one on a loaded machine: the cut lasts until the member has judged its
/// leader lost, then three of the timeouts it reports, so that it asks for
/// an election two or three times whatever its timeout is. With
/// `until_term_rises`, the cut also lasts until its term has risen.
async fn follower_isolated_and_healed(exe: &std::path::Path, env: &[(&str, &str)], until_term_rises: bool) -> Healed {
    let election = Duration::from_millis(firebreak_config::DEFAULT_ELECTION_TIMEOUT_MS);
    let _turn = common::lab::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lab = common::lab::start_with(dir.path(), election, exe, env);
    let leader = common::lab::ready_leader(&lab).await;
    let follower = (leader + 1) % lab.members.len();
    let all: Vec<usize> = (0..lab.members.len()).collect();
    let view = |statuses: Vec<observe::MemberStatus>| {
        let leading: Vec<_> = statuses.iter().filter(|s| s.is_leader).collect();
        assert_eq!(leading.len(), 1, "one leader: {statuses:?}");
        (leading[0].leader, leading[0].term)
    };
    let before = view(observe::statuses(&lab.members, &all, Duration::from_secs(2)).await);

    let dc = lab.members[follower].dc;
    let cut_off = lab.members[follower].clone();
    lab.isolate(dc).expect("cut a follower's datacenter off");
    let cut = Instant::now();
    let deadline = cut + Duration::from_secs(60);
    let mut silent_since: Option<Instant> = None;
    let cut_off_term = loop {
        assert!(
            Instant::now() < deadline,
            "the cut-off member did not judge its leader lost (or its term did not rise) within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some((term, timeout, knows_leader)) = own_report(&cut_off).await else {
            continue;
        };
        if knows_leader {
            continue;
        }
        let since = *silent_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= timeout * 3 && (!until_term_rises || term > before.1) {
            eprintln!(
                "the cut lasted {} ms; the cut-off member's election timeout {} ms, its term {term}",
                cut.elapsed().as_millis(),
                timeout.as_millis()
            );
            break term;
        }
    };
    lab.heal(dc).expect("heal");
    // Time for it to hear from the leader again, or to disrupt it.
    tokio::time::sleep(election * 6).await;
    observe::wait_ready(&lab.members, &all, Duration::from_secs(30))
        .await
        .expect("every member serves after the heal");
    let after = view(observe::statuses(&lab.members, &all, Duration::from_secs(2)).await);
    Healed {
        before,
        after,
        cut_off_term,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_comes_back_does_not_unseat_the_leader() {
    let healed = follower_isolated_and_healed(std::path::Path::new(common::BIN), &[], false).await;
    let (before, after) = (healed.before, healed.after);
    eprintln!("leader and term before the cut {before:x?}, after the heal {after:x?}");
    // A pre-vote that no majority grants raises no term.
    assert_eq!(
        healed.cut_off_term, before.1,
        "the cut-off member's term rose while it was cut off"
    );
    assert_eq!(
        after, before,
        "the leader or the term changed when the isolated member came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_pre_vote_a_member_that_comes_back_unseats_the_leader() {
    let exe = common::failpoints_binary();
    let healed = follower_isolated_and_healed(&exe, &[("FAILPOINTS", "elect-without-pre-vote=return")], true).await;
    let (before, after) = (healed.before, healed.after);
    eprintln!(
        "without the pre-vote: leader and term before the cut {before:x?}, the cut-off member's term {}, after the heal {after:x?}",
        healed.cut_off_term
    );
    assert!(
        after.1 > before.1,
        "the test cannot see a disruption: the term stayed {} without the pre-vote",
        before.1
    );
}
