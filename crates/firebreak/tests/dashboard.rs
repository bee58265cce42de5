//! The dashboard (`/dashboard`) in a real browser: headless Chromium,
//! driven over the Chrome DevTools protocol, loads it from a member of a
//! three-member cluster, and the tests read what the page shows from its
//! DOM while the cluster changes under it.
//!
//! How: Chromium is started with `--remote-debugging-port=0` and its own
//! profile directory, in its own process group; the port it picked is read
//! from `DevToolsActivePort` in that directory. One websocket to the
//! browser endpoint carries every command: `Target.createTarget` opens a
//! page, `Target.attachToTarget` (flattened) gives the session the page's
//! commands go to, `Emulation.setDeviceMetricsOverride` fixes the viewport
//! at 1280x1400, `Page.navigate` loads the dashboard, `Runtime.evaluate`
//! reads the DOM (the data attributes the page documents at its top), and
//! `Page.captureScreenshot` takes the pictures. The page stays open while
//! members are killed, so what is tested is the live page updating itself.
//!
//! Screenshots are written under the cargo target dir
//! (`target/tmp/dashboard*.png`) for people to look at.
//!
//! If `chromium` is not installed the tests are skipped, unless `CI` is
//! set, where they fail.

mod common;

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{installed, Cluster, Options};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1400;
/// The longest any one DevTools command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One test at a time: each runs a cluster and a browser, and the timing
/// of the second must not depend on the first on a two-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What each test starts from: a cluster, and its dashboard open in a
/// browser on member 0 (the observer), showing it healthy.
struct Scene {
    // The lock is let go last: then the next test may start.
    page: Page,
    _browser: Browser,
    cluster: Cluster,
    observer: String,
    started: Instant,
    _one: tokio::sync::MutexGuard<'static, ()>,
}

impl Scene {
    /// The scene, or `None` (the test is skipped) without Chromium; panics
    /// under CI without it.
    async fn open() -> Option<Scene> {
        if !installed("chromium", "apt-get install --no-install-recommends chromium") {
            return None;
        }
        let one = ONE_AT_A_TIME.lock().await;
        let started = Instant::now();
        let cluster = Cluster::start(Options::default()).await;
        let browser = Browser::launch();
        let observer = cluster.members[0].name.clone();
        let url = format!("{}/dashboard", cluster.members[0].endpoint());
        let mut page = Page::open(&browser, &url).await;
        page.wait_for("a healthy cluster", Duration::from_secs(20), |s| {
            healthy_cluster(s, &cluster, &observer)
        })
        .await;
        Some(Scene {
            page,
            _browser: browser,
            cluster,
            observer,
            started,
            _one: one,
        })
    }
}

/// Where screenshots go for people to look at.
fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// Headless Chromium in its own process group, killed (the whole group)
/// when dropped, also when the test fails.
struct Browser {
    process: Child,
    /// The browser's websocket endpoint.
    ws_url: String,
    log: PathBuf,
    // Dropped after the processes are killed (fields drop after `drop`).
    _dir: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        let log = dir.path().join("chromium.log");
        let out = std::fs::File::create(&log).unwrap();
        let process = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--mute-audio",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={WIDTH},{HEIGHT}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start chromium");
        let mut browser = Browser {
            process,
            ws_url: String::new(),
            log,
            _dir: dir,
        };
        let port_file = profile.join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Chromium writes the port, then the path, then a newline.
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    if let Ok(port) = port.trim().parse::<u16>() {
                        browser.ws_url = format!("ws://127.0.0.1:{port}{}", path.trim());
                        return browser;
                    }
                }
            }
            if let Ok(Some(status)) = browser.process.try_wait() {
                panic!("chromium exited ({status}) before it listened; log:\n{}", browser.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "chromium did not write {} in 30 s; log:\n{}",
                    port_file.display(),
                    browser.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser leads its process group: this takes its renderer,
        // GPU and utility processes with it.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-(self.process.id() as i32), libc::SIGKILL);
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A DevTools protocol connection: commands one at a time, events ignored.
struct Cdp {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Cdp {
    async fn connect(url: &str) -> Cdp {
        let (ws, _) = tokio::time::timeout(CALL_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connecting to chromium timed out")
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        Cdp { ws, next_id: 0 }
    }

    /// Sends `method` (to the page `session`, or to the browser) and waits
    /// for its answer: the result, or the protocol's error as text.
    async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let exchange = async {
            self.ws
                .send(Message::text(msg.to_string()))
                .await
                .map_err(|e| format!("send {method}: {e}"))?;
            loop {
                let frame = match self.ws.next().await {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => return Err(format!("{method}: websocket: {e}")),
                    None => return Err(format!("{method}: chromium closed the connection")),
                };
                let Message::Text(text) = frame else { continue };
                let answer: Value = serde_json::from_str(text.as_str()).map_err(|e| format!("{method}: {e}"))?;
                if answer["id"].as_u64() != Some(id) {
                    continue; // an event, or an answer nobody waits for
                }
                if let Some(error) = answer.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(answer["result"].clone());
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method}: no answer in {CALL_TIMEOUT:?}"))?
    }
}

/// One open page, the dashboard of one member.
struct Page {
    cdp: Cdp,
    session: String,
}

/// What the page shows, read from its DOM (see the hooks documented at the
/// top of dashboard.html).
const SNAPSHOT: &str = r#"(() => {
  const q = (s) => document.querySelector(s);
  const all = (s) => [...document.querySelectorAll(s)];
  const shown = (s) => { const e = q(s); return e && !e.hidden ? e.innerText : null; };
  const bool = (v) => v === undefined ? null : v === 'true';
  const d = document.body.dataset;
  return {
    connection: d.connection, loaded: d.loaded === 'true', failures: Number(d.failures),
    observer: shown('#observer'), leader: shown('#leader'), term: shown('#term'), updated: shown('#updated'),
    conn_error: shown('#conn-error'), render_error: shown('#render-error'),
    risk_unknown: shown('#risk-unknown'), unreachable: shown('#unreachable'),
    risk_known: q('#risk') ? bool(q('#risk').dataset.known) : null,
    verdict: q('#risk-verdict') ? q('#risk-verdict').dataset.verdict : null,
    verdict_text: shown('#risk-verdict'),
    held_in: q('#newest-write') ? q('#newest-write').dataset.heldIn : null,
    survives: Object.fromEntries(all('#survives-loss-of [data-dc]').map((e) => [e.dataset.dc, bool(e.dataset.survives)])),
    risk_rows: Object.fromEntries(all('#risk-table tr[data-dc]').map((e) => [e.dataset.dc, {
      survives: bool(e.dataset.survives), keeps_quorum: bool(e.dataset.keepsQuorum),
      loses_writes: e.dataset.losesWrites === undefined ? null : bool(e.dataset.losesWrites),
      holds_leader: bool(e.dataset.holdsLeader), text: e.innerText }])),
    rows: Object.fromEntries(all('#members-table tr.member-row').map((r) => {
      const detail = all('#members-table tr.detail-row').find((x) => x.dataset.detailFor === r.dataset.member);
      return [r.dataset.member, {
        id: r.dataset.id, dc: r.dataset.dc, role: r.dataset.role, state: r.dataset.state,
        healthy: bool(r.dataset.healthy), reachable: bool(r.dataset.reachable),
        text: r.innerText, detail: detail ? detail.innerText : null }];
    })),
    cards: Object.fromEntries(all('#topology .member-card').map((c) => [c.dataset.member, {
      dc: c.dataset.dc, placed_in: c.closest('.dc') ? c.closest('.dc').dataset.dc : null,
      id: c.dataset.id, role: c.dataset.role, state: c.dataset.state,
      healthy: bool(c.dataset.healthy), reachable: bool(c.dataset.reachable), text: c.innerText }])),
    timeline: all('#timeline-list li[data-term]').map((li) => ({ term: Number(li.dataset.term), leader: li.dataset.leader })),
    links: all('#links-table td[data-from]').length,
    fsync: all('#fsync-table tr[data-fsync]').length,
    alarms: shown('#alarms-body'),
  };
})()"#;

impl Page {
    async fn open(browser: &Browser, url: &str) -> Page {
        let mut cdp = Cdp::connect(&browser.ws_url).await;
        let target = cdp
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await
            .unwrap();
        let attached = cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await
            .unwrap();
        let session = attached["sessionId"].as_str().expect("a session id").to_string();
        let mut page = Page { cdp, session };
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await
        .unwrap();
        let nav = page.call("Page.navigate", json!({ "url": url })).await.unwrap();
        if let Some(error) = nav.get("errorText") {
            panic!("loading {url}: {error}");
        }
        page
    }

    async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.cdp.call(Some(&self.session), method, params).await
    }

    /// The value of a JavaScript expression.
    async fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(format!("script failed: {e}"));
        }
        Ok(r["result"]["value"].clone())
    }

    async fn snapshot(&mut self) -> Result<Value, String> {
        self.eval(SNAPSHOT).await
    }

    async fn screenshot(&mut self) -> Vec<u8> {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "fromSurface": true }),
            )
            .await
            .unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64")
    }

    /// Polls the page until `check` accepts what it shows, and returns
    /// that; fails with the last reason, the DOM summary and a screenshot
    /// after `limit`.
    async fn wait_for(&mut self, what: &str, limit: Duration, check: impl Fn(&Value) -> Result<(), String>) -> Value {
        let started = Instant::now();
        let mut last = (String::from("no snapshot yet"), Value::Null);
        while started.elapsed() < limit {
            match self.snapshot().await {
                Ok(snap) => {
                    if let Some(e) = snap["render_error"].as_str() {
                        panic!("the page failed to render: {e}");
                    }
                    match check(&snap) {
                        Ok(()) => {
                            println!("{what}: shown after {:.1} s", started.elapsed().as_secs_f64());
                            return snap;
                        }
                        Err(reason) => last = (reason, snap),
                    }
                }
                Err(e) => last.0 = e,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let shot = artifact(&format!(
            "dashboard-failed-{}.png",
            what.replace(|c: char| !c.is_alphanumeric(), "-")
        ));
        let png = self.screenshot().await;
        std::fs::write(&shot, png).unwrap();
        panic!(
            "the page did not show {what} within {limit:?}: {}\nscreenshot: {}\nDOM summary: {:#}",
            last.0,
            shot.display(),
            last.1
        );
    }
}

/// The row of member `name` in the members table.
fn row<'a>(snap: &'a Value, name: &str) -> Result<&'a Value, String> {
    snap["rows"]
        .get(name)
        .ok_or_else(|| format!("no row for {name} in the members table"))
}

/// The card of member `name` in the topology.
fn card<'a>(snap: &'a Value, name: &str) -> Result<&'a Value, String> {
    snap["cards"]
        .get(name)
        .ok_or_else(|| format!("no card for {name} in the topology"))
}

fn expect(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

/// Every member shown, in its datacenter, healthy, with the leader marked,
/// and every datacenter's loss survivable.
fn healthy_cluster(snap: &Value, cluster: &Cluster, observer: &str) -> Result<(), String> {
    expect(snap["connection"] == "ok", || {
        format!("connection is {}", snap["connection"])
    })?;
    expect(snap["observer"] == observer, || {
        format!("observer is {}", snap["observer"])
    })?;
    for m in &cluster.members {
        let r = row(snap, &m.name)?;
        expect(r["dc"] == m.datacenter.as_str(), || {
            format!("{} is in {} in the table", m.name, r["dc"])
        })?;
        expect(r["healthy"] == true && r["reachable"] == true, || {
            format!("{} is shown {r}", m.name)
        })?;
        expect(r["text"].as_str().unwrap_or("").contains(&m.datacenter), || {
            format!("{}'s row does not say {}", m.name, m.datacenter)
        })?;
        let c = card(snap, &m.name)?;
        expect(c["placed_in"] == m.datacenter.as_str(), || {
            format!("{} is placed in {} in the topology", m.name, c["placed_in"])
        })?;
        expect(c["healthy"] == true, || format!("{}'s card is {c}", m.name))?;
    }
    expect(
        snap["rows"].as_object().map(|r| r.len()) == Some(cluster.members.len()),
        || format!("{} rows", snap["rows"].as_object().map_or(0, |r| r.len())),
    )?;
    // Exactly one leader, marked in the table, the topology and the header.
    let leaders: Vec<&String> = snap["rows"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["role"] == "leader")
        .map(|(n, _)| n)
        .collect();
    expect(leaders.len() == 1, || format!("leaders in the table: {leaders:?}"))?;
    let leader = leaders[0];
    expect(snap["leader"] == leader.as_str(), || {
        format!("header says leader {}, table {leader}", snap["leader"])
    })?;
    let c = card(snap, leader)?;
    expect(
        c["role"] == "leader" && c["text"].as_str().unwrap_or("").contains("LEADER"),
        || format!("the leader's card is not marked: {c}"),
    )?;
    expect(
        row(snap, leader)?["text"].as_str().unwrap_or("").contains("LEADER"),
        || "the leader's row is not marked".to_string(),
    )?;
    // The risk: known, every datacenter holds the newest write and can be lost.
    expect(snap["risk_known"] == true, || {
        format!("risk known: {}", snap["risk_known"])
    })?;
    expect(snap["risk_unknown"].is_null(), || {
        "the risk-unknown banner is shown".into()
    })?;
    expect(snap["verdict"] == "safe", || {
        format!("verdict {}", snap["verdict_text"])
    })?;
    expect(snap["held_in"] == "dc1 dc2 dc3", || {
        format!("newest write held in {}", snap["held_in"])
    })?;
    for dc in ["dc1", "dc2", "dc3"] {
        expect(snap["survives"][dc] == true, || {
            format!("survives loss of {dc}: {}", snap["survives"][dc])
        })?;
        let r = &snap["risk_rows"][dc];
        expect(
            r["survives"] == true && r["keeps_quorum"] == true && r["loses_writes"] == false,
            || format!("risk row {dc}: {r}"),
        )?;
    }
    expect(snap["unreachable"].is_null(), || {
        format!("unreachable banner: {}", snap["unreachable"])
    })?;
    expect(snap["conn_error"].is_null(), || "the connection error is shown".into())?;
    expect(!snap["timeline"].as_array().unwrap().is_empty(), || {
        "empty timeline".into()
    })?;
    expect(snap["links"].as_u64() == Some(6), || {
        format!("{} link cells", snap["links"])
    })?;
    expect(snap["fsync"].as_u64() == Some(3), || {
        format!("{} fsync rows", snap["fsync"])
    })?;
    Ok(())
}

/// Checks that `png` is a PNG of the viewport's size with real content:
/// many colours, no colour covering nearly everything, and the page's own
/// colours (the header's, the healthy green) present.
fn check_screenshot(png_bytes: &[u8]) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a valid PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a buffer size")];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    assert_eq!((info.width, info.height), (WIDTH, HEIGHT), "screenshot size");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    let mut colours: HashMap<[u8; 3], usize> = HashMap::new();
    for px in buf[..info.buffer_size()].chunks_exact(channels) {
        *colours.entry([px[0], px[1], px[2]]).or_default() += 1;
    }
    let pixels = (WIDTH * HEIGHT) as usize;
    let (top, most) = colours.iter().max_by_key(|(_, n)| **n).unwrap();
    println!(
        "screenshot: {} colours; the commonest, {top:?}, covers {:.0}%",
        colours.len(),
        *most as f64 * 100.0 / pixels as f64
    );
    assert!(
        colours.len() >= 50,
        "a blank-looking screenshot: {} colours",
        colours.len()
    );
    assert!(*most < pixels * 85 / 100, "one colour covers {most} of {pixels} pixels");
    // The header bar (#24292f) and the "healthy" green (#dafbe1).
    for (name, rgb) in [("header", [0x24, 0x29, 0x2f]), ("healthy green", [0xda, 0xfb, 0xe1])] {
        let n = colours.get(&rgb).copied().unwrap_or(0);
        assert!(n > 2000, "the {name} colour {rgb:?} covers only {n} pixels");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_healthy_cluster() {
    let Some(mut scene) = Scene::open().await else {
        return;
    };
    // The leader the page marks is the one the members report over gRPC
    // (waited for: under load an election may come between the two).
    let (cluster, observer) = (&scene.cluster, &scene.observer);
    let leader = cluster.members[cluster.leader().await].name.clone();
    scene
        .page
        .wait_for(&format!("{leader} as the leader"), Duration::from_secs(10), |s| {
            healthy_cluster(s, cluster, observer)?;
            expect(s["leader"] == leader.as_str(), || {
                format!("the page's leader is {}", s["leader"])
            })
        })
        .await;

    let png = scene.page.screenshot().await;
    let path = artifact("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
    check_screenshot(&png);
    println!("took {:.1} s", scene.started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_members_dying() {
    let Some(scene) = Scene::open().await else {
        return;
    };
    // The browser and the lock stay in `scene` until the end.
    let Scene {
        mut page,
        mut cluster,
        observer,
        started,
        ..
    } = scene;

    // A member dies: the page, still open on member 0, must say so, and
    // that losing either other datacenter now would cost the quorum.
    let victim = cluster.members[2].name.clone();
    let victim_dc = cluster.members[2].datacenter.clone();
    let others: Vec<String> = cluster.members[..2].iter().map(|m| m.datacenter.clone()).collect();
    let survivors: Vec<String> = cluster.members[..2].iter().map(|m| m.name.clone()).collect();
    cluster.kill(2);
    page.wait_for(&format!("{victim} dead"), Duration::from_secs(10), |s| {
        expect(s["connection"] == "ok", || format!("connection is {}", s["connection"]))?;
        let r = row(s, &victim)?;
        expect(
            r["reachable"] == false && r["healthy"] == false && r["state"] == "unreachable",
            || format!("{victim}'s row: {r}"),
        )?;
        expect(r["text"].as_str().unwrap_or("").contains("UNREACHABLE"), || {
            format!("{victim}'s row does not say UNREACHABLE")
        })?;
        // The error, as the observer got it, under the row.
        expect(r["detail"].as_str().is_some_and(|d| d.contains("error")), || {
            format!("no error under {victim}'s row: {}", r["detail"])
        })?;
        let c = card(s, &victim)?;
        expect(c["reachable"] == false && c["healthy"] == false, || {
            format!("{victim}'s card: {c}")
        })?;
        expect(s["unreachable"].as_str().is_some_and(|b| b.contains(&victim)), || {
            format!("unreachable banner: {}", s["unreachable"])
        })?;
        for name in &survivors {
            expect(row(s, name)?["healthy"] == true, || {
                format!("{name} is not shown healthy")
            })?;
        }
        expect(s["risk_known"] == true, || {
            format!("risk not known: {}", s["risk_unknown"])
        })?;
        expect(s["verdict"] == "at-risk", || format!("verdict: {}", s["verdict_text"]))?;
        for dc in &others {
            expect(s["survives"][dc] == false, || {
                format!("survives loss of {dc}: {}", s["survives"][dc])
            })?;
            let r = &s["risk_rows"][dc];
            expect(r["keeps_quorum"] == false && r["survives"] == false, || {
                format!("risk row {dc}: {r}")
            })?;
        }
        // Losing the dead member's own datacenter changes nothing more.
        expect(s["survives"][&victim_dc] == true, || {
            format!("survives loss of {victim_dc}: {}", s["survives"][&victim_dc])
        })?;
        Ok(())
    })
    .await;
    std::fs::write(artifact("dashboard-member-down.png"), page.screenshot().await).unwrap();

    // The member serving the page dies: the page must say it cannot reach
    // it, and keep trying.
    cluster.kill(0);
    let snap = page
        .wait_for(&format!("{observer} unreachable"), Duration::from_secs(10), |s| {
            expect(s["connection"] == "lost", || {
                format!("connection is {}", s["connection"])
            })?;
            let banner = s["conn_error"].as_str().unwrap_or("");
            expect(banner.contains(&format!("Cannot reach {observer}")), || {
                format!("connection banner: {:?}", s["conn_error"])
            })?;
            expect(s["failures"].as_u64() >= Some(1), || {
                format!("failures: {}", s["failures"])
            })
        })
        .await;
    let failures = snap["failures"].as_u64().unwrap();
    page.wait_for("more failed attempts", Duration::from_secs(10), |s| {
        expect(s["failures"].as_u64() >= Some(failures + 2), || {
            format!("failures: {} (were {failures})", s["failures"])
        })?;
        expect(s["connection"] == "lost", || {
            format!("connection is {}", s["connection"])
        })
    })
    .await;
    std::fs::write(artifact("dashboard-observer-down.png"), page.screenshot().await).unwrap();
    println!("took {:.1} s", started.elapsed().as_secs_f64());
}
