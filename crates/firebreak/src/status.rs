//! `firebreak status`: the cluster as the first member that answers sees
//! it (its `/api/cluster`), as a table or as JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use firebreak_ops::view::ClusterView;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

/// How long one endpoint may take to answer.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Members to ask, in order, until one answers (host:port, or a URL).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
    )]
    pub endpoints: Vec<String>,
    /// Output format.
    #[arg(short = 'w', long = "write-out", value_enum, default_value_t = Format::Table)]
    pub write_out: Format,
    /// Verify the members' certificates with this CA (PEM); endpoints
    /// without a scheme then use https.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM), for members with client_cert_auth.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Its key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
}

/// An endpoint as `(https, host:port)`.
fn parse_endpoint(endpoint: &str, tls_default: bool) -> anyhow::Result<(bool, String)> {
    let (https, rest) = if let Some(rest) = endpoint.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = endpoint.strip_prefix("http://") {
        (false, rest)
    } else if endpoint.contains("://") {
        bail!("endpoint {endpoint:?}: only http:// and https:// are understood");
    } else {
        (tls_default, endpoint)
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
        bail!("endpoint {endpoint:?} is not host:port");
    }
    Ok((https, authority.to_string()))
}

/// GETs `path` from `authority` over HTTP/1.1, plain or TLS.
async fn get(
    authority: &str,
    tls: Option<&Arc<firebreak_tls::rustls::ClientConfig>>,
    path: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    let _ = tcp.set_nodelay(true);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(http_body_util::Empty::<bytes::Bytes>::new())?;
    let response = match tls {
        None => send(TokioIo::new(tcp), request).await?,
        Some(config) => {
            let name = firebreak_tls::server_name(authority)?;
            let stream = firebreak_tls::tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .with_context(|| format!("TLS handshake with {authority}"))?;
            send(TokioIo::new(stream), request).await?
        }
    };
    Ok(response)
}

async fn send<IO>(
    io: IO,
    request: hyper::Request<http_body_util::Empty<bytes::Bytes>>,
) -> anyhow::Result<(u16, Vec<u8>)>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    driver.abort();
    Ok((status, body))
}

/// The view from the first endpoint that gives one; the reasons of those
/// that did not.
async fn fetch(args: &StatusArgs) -> anyhow::Result<(String, ClusterView, Vec<String>)> {
    let tls = match &args.cacert {
        None => None,
        Some(ca) => {
            let identity = args.cert.as_deref().zip(args.key.as_deref());
            let config = firebreak_tls::tool_config(ca, identity, vec![b"http/1.1".to_vec()])?;
            Some(Arc::new(config))
        }
    };
    let mut failures = Vec::new();
    for endpoint in &args.endpoints {
        let (https, authority) = parse_endpoint(endpoint, tls.is_some())?;
        if https && tls.is_none() {
            bail!("endpoint {endpoint} is https: give --cacert");
        }
        let tls = if https { tls.as_ref() } else { None };
        let answer = tokio::time::timeout(ENDPOINT_TIMEOUT, get(&authority, tls, "/api/cluster")).await;
        match answer {
            Err(_) => failures.push(format!("{endpoint}: no answer within {ENDPOINT_TIMEOUT:?}")),
            Ok(Err(e)) => failures.push(format!("{endpoint}: {e:#}")),
            Ok(Ok((200, body))) => match serde_json::from_slice::<ClusterView>(&body) {
                Ok(view) => return Ok((endpoint.clone(), view, failures)),
                Err(e) => failures.push(format!("{endpoint}: not a Firebreak cluster view: {e}")),
            },
            Ok(Ok((code, body))) => failures.push(format!(
                "{endpoint}: HTTP {code}: {}",
                String::from_utf8_lossy(&body).trim()
            )),
        }
    }
    Err(anyhow!("no endpoint answered:\n  {}", failures.join("\n  ")))
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (endpoint, view, failures) = runtime.block_on(fetch(&args))?;
    for failure in &failures {
        eprintln!("firebreak status: {failure}");
    }
    match args.write_out {
        Format::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        Format::Table => print!("{}", render(&endpoint, &view)),
    }
    Ok(())
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn yes_no(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "NO"
    }
}

/// Left-aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The view as text for a terminal.
pub fn render(endpoint: &str, view: &ClusterView) -> String {
    let mut out = format!(
        "Seen from {} ({endpoint}); leader: {}; term {}\n\n",
        view.observer,
        view.leader.as_deref().unwrap_or("NONE"),
        view.term
    );
    let mut rows = vec![[
        "MEMBER",
        "ID",
        "DATACENTER",
        "ROLE",
        "STATE",
        "HEALTHY",
        "TERM",
        "APPLIED",
        "LAG",
        "LAG(s)",
        "CONTACT(ms)",
        "FSYNC p99(ms)",
    ]
    .map(String::from)
    .to_vec()];
    for m in &view.members {
        let place: Vec<&str> = [
            Some(m.datacenter.as_str()),
            m.room.as_deref(),
            m.rack.as_deref(),
            m.host.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        rows.push(vec![
            m.name.clone(),
            m.id.clone(),
            place.join("/"),
            m.role.clone(),
            m.state.clone(),
            yes_no(m.healthy).to_string(),
            opt(m.term),
            opt(m.applied_index),
            opt(m.lag_entries),
            opt(m.lag_seconds.map(|s| format!("{s:.1}"))),
            opt(m.last_contact_ms_ago),
            opt(m.fsync_p99_ms.map(|s| format!("{s:.0}"))),
        ]);
    }
    out.push_str(&table(&rows));
    for m in view.members.iter().filter(|m| !m.reachable) {
        out.push_str(&format!(
            "  {} cannot be seen: {}\n",
            m.name,
            m.error.as_deref().unwrap_or("unknown")
        ));
    }

    out.push_str("\nCould we lose data right now?\n");
    let risk = &view.risk;
    match (&risk.newest_write, &risk.reason) {
        (Some(w), _) => out.push_str(&format!(
            "  newest acknowledged write (index {}) is on disk in {} ({})\n",
            w.index,
            w.held_durably_in.join(", "),
            w.held_durably_by.join(", ")
        )),
        (None, reason) => out.push_str(&format!("  UNKNOWN: {}\n", reason.as_deref().unwrap_or("no leader"))),
    }
    let mut rows = vec![
        ["IF WE LOSE", "ACKED WRITES LOST", "QUORUM KEPT", "RECOVERY", "SURVIVES"]
            .map(String::from)
            .to_vec(),
    ];
    for (dc, loss) in &risk.datacenters {
        rows.push(vec![
            format!("{dc}{}", if loss.holds_leader { " (leader)" } else { "" }),
            match loss.loses_acknowledged_writes {
                Some(true) => "YES".to_string(),
                Some(false) => "no".to_string(),
                None => "unknown".to_string(),
            },
            yes_no(loss.keeps_quorum).to_string(),
            match loss.predicted_recovery_ms {
                Some(0) => "none needed".to_string(),
                Some(ms) => format!("~{ms} ms"),
                None => "-".to_string(),
            },
            yes_no(loss.survives).to_string(),
        ]);
    }
    for line in table(&rows).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str(&format!(
        "\nAlarms: {}\n",
        if view.alarms.is_empty() {
            "none".to_string()
        } else {
            view.alarms.join("; ")
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_etcdctls_forms() {
        assert_eq!(
            parse_endpoint("127.0.0.1:2379", false).unwrap(),
            (false, "127.0.0.1:2379".into())
        );
        assert_eq!(
            parse_endpoint("127.0.0.1:2379", true).unwrap(),
            (true, "127.0.0.1:2379".into())
        );
        assert_eq!(
            parse_endpoint("https://localhost:2379/", false).unwrap(),
            (true, "localhost:2379".into())
        );
        assert_eq!(parse_endpoint("http://h:1", true).unwrap(), (false, "h:1".into()));
        assert!(parse_endpoint("unix:///x", false).is_err());
        assert!(parse_endpoint("localhost", false).is_err());
    }
}
