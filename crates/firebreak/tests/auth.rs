//! Auth as etcd 3.5 has it, through real clients against real clusters:
//! users, roles and permissions for every kind of request, tokens that
//! every member accepts (also once the member that issued them is gone,
//! and past their TTL while they are used elsewhere), old credentials,
//! refused watches, and an etcdctl session.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::grpc::unary;
use common::{login, Cluster, Options};
use etcd_client::proto::{PbPutRequest, PbPutResponse};
use etcd_client::{
    Client, DeleteOptions, GetOptions, LeaseTimeToLiveOptions, LockOptions, Permission, PutOptions, Txn, TxnOp,
    WatchOptions,
};

/// The gRPC status of a failed call: (code, message).
fn status<T: std::fmt::Debug>(r: Result<T, etcd_client::Error>) -> (tonic::Code, String) {
    match r {
        Err(etcd_client::Error::GRpcStatus(s)) => (s.code(), s.message().to_owned()),
        other => panic!("expected a gRPC error, got {other:?}"),
    }
}

const DENIED: (tonic::Code, &str) = (tonic::Code::PermissionDenied, "etcdserver: permission denied");

fn denied<T: std::fmt::Debug>(r: Result<T, etcd_client::Error>) {
    let (code, message) = status(r);
    assert_eq!((code, message.as_str()), DENIED);
}

/// root (role root); alice (role `app`: read-write on `app/`); bob (role
/// `reader`: read on `app/`); then auth enabled.
async fn set_up(client: &mut Client) {
    client.user_add("root", "rootpw", None).await.unwrap();
    client.user_grant_role("root", "root").await.unwrap();
    for (user, role, perm) in [
        ("alice", "app", Permission::read_write("app/").with_prefix()),
        ("bob", "reader", Permission::read("app/").with_prefix()),
    ] {
        client.user_add(user, "pw", None).await.unwrap();
        client.role_add(role).await.unwrap();
        client.role_grant_permission(role, perm).await.unwrap();
        client.user_grant_role(user, role).await.unwrap();
    }
    client.auth_enable().await.unwrap();
}

/// A put sent with `token` as its metadata, straight over gRPC: how a
/// client carries a token it got from one member to another.
async fn put_with_token(endpoint: &str, token: &str, key: &str) -> Result<PbPutResponse, tonic::Status> {
    let request = PbPutRequest {
        key: key.as_bytes().to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    unary(endpoint, "/etcdserverpb.KV/Put", Some(token), request).await
}

/// A token for alice (see [`set_up`]), from member 0 of `cluster`.
async fn alices_token(cluster: &Cluster) -> String {
    cluster
        .client_of(0)
        .await
        .auth_client()
        .authenticate("alice".into(), "pw".into())
        .await
        .unwrap()
        .token()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_kind_is_judged_as_etcd_judges_it() {
    let cluster = Cluster::start(Options::default()).await;
    let endpoints = cluster.endpoints();
    let mut anonymous = cluster.client().await;
    set_up(&mut anonymous).await;

    // Without credentials, and with wrong ones.
    let (code, message) = status(anonymous.put("app/x", "1", None).await);
    assert_eq!(
        (code, message.as_str()),
        (tonic::Code::InvalidArgument, "etcdserver: user name is empty")
    );
    let (code, message) = status(anonymous.get("app/x", None).await);
    assert_eq!(message, "etcdserver: user name is empty", "{code:?}");
    for (user, password) in [("alice", "wrong"), ("nobody", "pw")] {
        let (code, message) = status(login(&endpoints, user, password).await.map(|_| ()));
        assert_eq!(
            (code, message.as_str()),
            (
                tonic::Code::InvalidArgument,
                "etcdserver: authentication failed, invalid user ID or password"
            )
        );
    }

    let mut root = login(&endpoints, "root", "rootpw").await.unwrap();
    let mut alice = login(&endpoints, "alice", "pw").await.unwrap();
    let mut bob = login(&endpoints, "bob", "pw").await.unwrap();

    // Range, Put, DeleteRange.
    alice.put("app/x", "1", None).await.unwrap();
    denied(alice.put("other", "1", None).await);
    root.put("other", "1", None).await.unwrap();
    assert_eq!(bob.get("app/x", None).await.unwrap().kvs().len(), 1);
    bob.get("app/", Some(GetOptions::new().with_prefix())).await.unwrap();
    denied(bob.get("other", None).await);
    denied(bob.get("app/", Some(GetOptions::new().with_from_key())).await);
    denied(bob.put("app/x", "2", None).await);
    denied(bob.delete("app/x", None).await);
    denied(alice.delete("app/", Some(DeleteOptions::new().with_from_key())).await);
    alice
        .delete("app/", Some(DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    alice
        .put("app/x", "1", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();

    // A txn is judged on its compares and both branches, nested too,
    // whichever branch runs.
    let txn = |compare_key: &str, failure_key: &str| {
        Txn::new()
            .when([etcd_client::Compare::value(
                compare_key,
                etcd_client::CompareOp::Equal,
                "1",
            )])
            .and_then([TxnOp::put("app/y", "2", None)])
            .or_else([TxnOp::txn(Txn::new().and_then([TxnOp::get(failure_key, None)]))])
    };
    alice.txn(txn("app/x", "app/z")).await.unwrap();
    denied(alice.txn(txn("other", "app/z")).await);
    denied(alice.txn(txn("app/x", "other")).await);
    // A read-only txn is judged by the member that serves it.
    denied(bob.txn(Txn::new().and_then([TxnOp::get("other", None)])).await);
    bob.txn(Txn::new().and_then([TxnOp::get("app/x", None)])).await.unwrap();

    // Watch: READ on the range; a refusal is created and canceled at once.
    let mut watch = bob.watch("other", None).await.unwrap();
    let refused = watch.message().await.unwrap().expect("a refusal");
    assert!(refused.created() && refused.canceled(), "{refused:?}");
    assert_eq!(refused.watch_id(), -1);
    assert_eq!(
        refused.cancel_reason(),
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    );
    let mut watch = bob
        .watch("app/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    let created = watch.message().await.unwrap().expect("created");
    assert!(created.created() && !created.canceled(), "{created:?}");
    alice.put("app/w", "seen", None).await.unwrap();
    let event = watch.message().await.unwrap().expect("an event");
    assert_eq!(event.events()[0].kv().unwrap().value(), b"seen");

    // Leases: revoking needs WRITE on every attached key; TTL with keys
    // and the lease list need READ on them.
    let lease = root.lease_grant(60, None).await.unwrap().id();
    root.put("other/leased", "1", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    denied(alice.lease_revoke(lease).await);
    denied(
        alice
            .put("app/leased", "1", Some(PutOptions::new().with_lease(lease)))
            .await,
    );
    bob.lease_time_to_live(lease, None).await.unwrap();
    denied(
        bob.lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
            .await,
    );
    denied(bob.leases().await);
    root.lease_revoke(lease).await.unwrap();
    bob.leases().await.unwrap();

    // Lock through the KV checks, with the caller's identity (etcd's lock
    // service loses the code and keeps the message).
    let alice_lease = alice.lease_grant(60, None).await.unwrap().id();
    alice
        .lock("app/lock", Some(LockOptions::new().with_lease(alice_lease)))
        .await
        .unwrap();
    let bob_lease = bob.lease_grant(60, None).await.unwrap().id();
    let (code, message) = status(
        bob.lock("app/lock", Some(LockOptions::new().with_lease(bob_lease)))
            .await,
    );
    assert_eq!(
        (code, message.as_str()),
        (tonic::Code::Unknown, "etcdserver: permission denied")
    );

    // Calls reserved to root.
    denied(alice.compact(1, None).await);
    denied(alice.user_list().await);
    denied(alice.role_list().await);
    denied(alice.role_add("mine").await);
    denied(alice.auth_disable().await);
    denied(alice.user_get("bob").await);
    denied(alice.role_get("reader").await);
    assert_eq!(alice.user_get("alice").await.unwrap().roles(), ["app"]);
    assert_eq!(alice.role_get("app").await.unwrap().permissions().len(), 1);
    alice.member_list().await.unwrap();
    alice.status().await.unwrap();
    // etcd sends these untranslated.
    let (code, message) = status(alice.hash_kv(0).await);
    assert_eq!(
        (code, message.as_str()),
        (tonic::Code::Unknown, "auth: permission denied")
    );
    let (code, message) = status(alice.defragment().await);
    assert_eq!(
        (code, message.as_str()),
        (tonic::Code::Unknown, "auth: permission denied")
    );
    root.hash_kv(0).await.unwrap();
    let revision = root.get("app/x", None).await.unwrap().header().unwrap().revision();
    root.compact(revision, None).await.unwrap();
    let users = root.user_list().await.unwrap();
    assert_eq!(users.users(), ["alice", "bob", "root"]);

    // root stays root while auth is on.
    for result in [
        status(root.user_delete("root").await),
        status(root.user_revoke_role("root", "root").await),
    ] {
        assert_eq!(
            (result.0, result.1.as_str()),
            (tonic::Code::InvalidArgument, "etcdserver: invalid auth management")
        );
    }

    // Permissions follow changes at once, on every member.
    root.role_revoke_permission(
        "reader",
        "app/",
        Some(etcd_client::RoleRevokePermissionOptions::new().with_prefix()),
    )
    .await
    .unwrap();
    let mut bob = login(&endpoints, "bob", "pw").await.unwrap();
    denied(bob.get("app/x", None).await);

    // Disabled: everything goes again, without credentials.
    root.auth_disable().await.unwrap();
    anonymous.put("other", "2", None).await.unwrap();
    anonymous.get("app/x", None).await.unwrap();
}

/// A simple token issued by one member is accepted by every member; it
/// outlives the member that issued it; used through one member past its
/// TTL it stays valid on the others (its renewal is replicated), and once
/// unused for longer than its TTL it is refused everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_one_member_is_good_on_every_member_and_lives_while_used_anywhere() {
    const TTL: Duration = Duration::from_secs(3);
    let mut cluster = Cluster::start(Options {
        env: vec![("FIREBREAK_AUTH_TOKEN_TTL".into(), TTL.as_secs().to_string())],
        ..Options::default()
    })
    .await;
    let mut admin = cluster.client().await;
    set_up(&mut admin).await;
    let issuer = cluster.members[0].endpoint();
    let token = alices_token(&cluster).await;
    let (one, two) = (cluster.members[1].endpoint(), cluster.members[2].endpoint());
    put_with_token(&issuer, &token, "app/a").await.unwrap();
    put_with_token(&one, &token, "app/a").await.unwrap();
    put_with_token(&two, &token, "app/a").await.unwrap();

    // The member that issued it burns.
    cluster.kill(0);
    // Used through member 1 for twice its TTL...
    let until = Instant::now() + TTL * 2;
    while Instant::now() < until {
        put_with_token(&one, &token, "app/b")
            .await
            .unwrap_or_else(|e| panic!("the token expired while used: {e:?}"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // ...it is still good at member 2, which has not seen it for that long.
    put_with_token(&two, &token, "app/c")
        .await
        .unwrap_or_else(|e| panic!("member 2 let a token used on member 1 expire: {e:?}"));

    // Unused for longer than its TTL (plus a renewal tick), it is refused.
    tokio::time::sleep(TTL + Duration::from_millis(1500)).await;
    for endpoint in [&one, &two] {
        let refused = put_with_token(endpoint, &token, "app/d").await.unwrap_err();
        assert_eq!(
            (refused.code(), refused.message()),
            (tonic::Code::Unauthenticated, "etcdserver: invalid auth token")
        );
    }
    // A bogus token is refused as well.
    let refused = put_with_token(&one, "nonsense", "app/e").await.unwrap_err();
    assert_eq!(refused.message(), "etcdserver: invalid auth token");
}

/// JWTs: signed by one member, verified by any with the key; a JWT from
/// before a change of the auth state is old, as etcd judges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_are_verified_everywhere_and_old_ones_are_refused() {
    let keys = tempfile::tempdir().unwrap();
    let secret = keys.path().join("jwt.secret");
    std::fs::write(&secret, b"a secret every member of this cluster shares").unwrap();
    let cluster = Cluster::start(Options {
        env: vec![(
            "FIREBREAK_AUTH_TOKEN".into(),
            format!("jwt,sign-method=HS256,priv-key={}", secret.display()),
        )],
        ..Options::default()
    })
    .await;
    let mut admin = cluster.client().await;
    set_up(&mut admin).await;
    let token = alices_token(&cluster).await;
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    for m in &cluster.members {
        put_with_token(&m.endpoint(), &token, "app/jwt").await.unwrap();
    }
    let mut root = login(&cluster.endpoints(), "root", "rootpw").await.unwrap();
    root.role_add("another").await.unwrap();
    let old = put_with_token(&cluster.members[1].endpoint(), &token, "app/jwt")
        .await
        .unwrap_err();
    assert_eq!(
        (old.code(), old.message()),
        (
            tonic::Code::InvalidArgument,
            "etcdserver: revision of auth store is old"
        )
    );
    // Logging in again gives current credentials.
    let mut alice = login(&cluster.endpoints(), "alice", "pw").await.unwrap();
    alice.put("app/jwt", "again", None).await.unwrap();
}

fn etcdctl(endpoints: &str, args: &[&str]) -> Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .output()
        .expect("run etcdctl")
}

fn etcdctl_ok(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn etcdctl_err(endpoints: &str, args: &[&str]) -> String {
    let out = etcdctl(endpoints, args);
    assert!(!out.status.success(), "etcdctl {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The session an operator types, with Debian's etcdctl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcdctl_auth_session() {
    if Command::new("etcdctl").arg("version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "etcdctl is required in CI (apt-get install etcd-client)"
        );
        eprintln!("skipping: etcdctl is not installed (apt-get install etcd-client)");
        return;
    }
    let cluster = Cluster::start(Options::default()).await;
    let endpoints: Vec<String> = cluster
        .members
        .iter()
        .map(|m| format!("127.0.0.1:{}", m.client_port))
        .collect();
    let e = endpoints.join(",");
    let e = e.as_str();
    assert_eq!(
        etcdctl_ok(e, &["user", "add", "root:rootpw"]).trim(),
        "User root created"
    );
    etcdctl_ok(e, &["user", "grant-role", "root", "root"]);
    assert_eq!(etcdctl_ok(e, &["role", "add", "app"]).trim(), "Role app created");
    let granted = etcdctl_ok(e, &["role", "grant-permission", "app", "--prefix", "readwrite", "app/"]);
    assert_eq!(granted.trim(), "Role app updated");
    etcdctl_ok(e, &["user", "add", "alice:pw"]);
    assert_eq!(
        etcdctl_ok(e, &["user", "grant-role", "alice", "app"]).trim(),
        "Role app is granted to user alice"
    );
    assert_eq!(etcdctl_ok(e, &["auth", "enable"]).trim(), "Authentication Enabled");

    assert_eq!(etcdctl_ok(e, &["--user", "alice:pw", "put", "app/x", "1"]).trim(), "OK");
    assert_eq!(
        etcdctl_ok(e, &["--user", "alice:pw", "get", "app/x", "--print-value-only"]),
        "1\n"
    );
    let refused = etcdctl_err(e, &["--user", "alice:pw", "put", "other", "1"]);
    assert!(refused.contains("etcdserver: permission denied"), "{refused}");
    let refused = etcdctl_err(e, &["get", "app/x"]);
    assert!(refused.contains("etcdserver: user name is empty"), "{refused}");
    let refused = etcdctl_err(e, &["--user", "alice:nope", "get", "app/x"]);
    assert!(
        refused.contains("authentication failed, invalid user ID or password"),
        "{refused}"
    );
    let role = etcdctl_ok(e, &["--user", "root:rootpw", "role", "get", "app"]);
    assert!(role.contains("[app/, app0)"), "{role}");
    let refused = etcdctl_err(e, &["--user", "alice:pw", "auth", "disable"]);
    assert!(refused.contains("etcdserver: permission denied"), "{refused}");

    assert_eq!(
        etcdctl_ok(e, &["--user", "root:rootpw", "auth", "disable"]).trim(),
        "Authentication Disabled"
    );
    assert_eq!(etcdctl_ok(e, &["put", "other", "1"]).trim(), "OK");
}
