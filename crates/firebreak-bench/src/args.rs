//! The command line of `firebreak bench`.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::BenchError;

/// Arguments of `firebreak bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Client endpoints, comma-separated: `host:port` or `http://host:port`.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Which endpoints take the load: all of them (connection i goes to
    /// endpoint i mod n), or only the one that reports itself leader.
    #[arg(long, value_enum, default_value_t = Target::All)]
    pub target: Target,
    /// Concurrent requests: each client sends one request at a time.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// gRPC (HTTP/2) connections shared by the clients; client i uses
    /// connection i mod conns.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// The workload.
    #[arg(long, value_enum, default_value_t = Op::Put)]
    pub op: Op,
    /// For `--op put`: keys written per request. Above 1 each request is a
    /// txn of that many puts to consecutive keys (for loading a keyspace
    /// fast; at most 128, etcd's limit).
    #[arg(long, default_value_t = 1)]
    pub batch: u64,
    /// Bytes per value written.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Size of the keyspace: keys are `<key-prefix><index>`, index in 0..keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Prefix of every key.
    #[arg(long, default_value = "bench/")]
    pub key_prefix: String,
    /// How each request picks its key: uniformly at random, or the next
    /// index in turn (with `--total` equal to `--keys`, every key once).
    #[arg(long, value_enum, default_value_t = KeyOrder::Random)]
    pub key_order: KeyOrder,
    /// How long to send requests, e.g. `10`, `10s`, `500ms`, `2m`
    /// (default 10 s unless `--total` is given).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Time at the start whose requests are not counted.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Stop after this many requests.
    #[arg(long)]
    pub total: Option<u64>,
    /// Open loop: requests per second, due at fixed times whether or not
    /// earlier ones were answered. Latency counts from the due time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// For `--op mixed`: the percentage of linearizable gets (the rest are puts).
    #[arg(long, default_value_t = 90)]
    pub read_percent: u8,
    /// Per-request timeout; a request that takes longer counts as an error.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Client implementation.
    #[arg(long, value_enum, default_value_t = ClientKind::Tonic)]
    pub client: ClientKind,
    /// Worker threads of the load generator (default 2).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed for key choice (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Instead of loading an endpoint, measure the latency of a write plus
    /// fdatasync in `--fsync-dir`, as a write-ahead log does.
    #[arg(long)]
    pub fsync_probe: bool,
    /// Directory for `--fsync-probe` (a temporary file is made and removed).
    #[arg(long, default_value = ".")]
    pub fsync_dir: PathBuf,
    /// Writes for `--fsync-probe`.
    #[arg(long, default_value_t = 500)]
    pub fsync_count: u32,
    /// Bytes per write for `--fsync-probe`.
    #[arg(long, default_value_t = 4096)]
    pub fsync_bytes: usize,
    /// Instead of loading an endpoint, run the drill's WAN link emulator
    /// for a lab of `--wan-dcs` network namespaces with one member each
    /// (addresses as the drill lays them out under `--wan-prefix`), until
    /// SIGTERM or SIGINT; then print its counters (CPU, bytes) as JSON.
    #[arg(long)]
    pub wan_relay: bool,
    /// First two octets of the lab's addresses: datacenter d owns
    /// `A.B.d.0/24`, its gateway (where the relay listens) is `A.B.d.1`,
    /// its member `A.B.d.10` with client port 2379 and peer port 2380.
    #[arg(long, default_value = "10.213")]
    pub wan_prefix: String,
    /// Round trip the relay adds between two datacenters.
    #[arg(long, value_parser = parse_duration, default_value = "4ms")]
    pub wan_rtt: Duration,
    /// Datacenters of the lab.
    #[arg(long, default_value_t = 3)]
    pub wan_dcs: usize,
}

/// The workload of a run.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// Put a value under a key.
    Put,
    /// Linearizable get of one key.
    Get,
    /// Serializable get of one key (served by the member's own replica).
    GetSerializable,
    /// Compare-and-set: read the key's mod revision (linearizable get), then
    /// a txn that puts a new value if the mod revision is unchanged.
    Txn,
    /// Linearizable gets (`--read-percent`) and puts.
    Mixed,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::GetSerializable => "get-serializable",
            Op::Txn => "txn",
            Op::Mixed => "mixed",
        }
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    All,
    Leader,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyOrder {
    Random,
    Sequential,
}

/// Which client library sends the requests.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientKind {
    /// A thin client over tonic: one HTTP/2 connection per `--conns`, the
    /// etcd protobuf messages, nothing else on the request path.
    Tonic,
    /// The `etcd-client` crate (a balanced channel, an auth interceptor and
    /// a retrying caller per request), for comparison.
    EtcdClient,
}

impl BenchArgs {
    /// Refuses combinations that cannot run.
    pub fn check(&self) -> Result<(), BenchError> {
        let usage = |m: &str| Err(BenchError::Usage(m.to_string()));
        if self.wan_relay {
            if !(1..=9).contains(&self.wan_dcs) {
                return usage("--wan-dcs must be between 1 and 9");
            }
            return crate::wan::prefix(&self.wan_prefix).map(|_| ());
        }
        if self.fsync_probe {
            if self.fsync_count == 0 || self.fsync_bytes == 0 {
                return usage("--fsync-count and --fsync-bytes must be positive");
            }
            return Ok(());
        }
        if self.endpoints.iter().all(|e| e.trim().is_empty()) {
            return usage("--endpoints is empty");
        }
        if self.clients == 0 || self.conns == 0 {
            return usage("--clients and --conns must be at least 1");
        }
        if self.keys == 0 {
            return usage("--keys must be at least 1");
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return usage("--rate must be a positive number of requests per second");
            }
        }
        if self.batch == 0 || self.batch > 128 || self.batch > self.keys {
            return usage("--batch must be between 1 and min(128, --keys)");
        }
        if self.batch > 1 && self.op != Op::Put {
            return usage("--batch applies to --op put only");
        }
        if self.read_percent > 100 {
            return usage("--read-percent must be between 0 and 100");
        }
        if self.total == Some(0) {
            return usage("--total must be at least 1");
        }
        Ok(())
    }

    /// How long requests are sent: `--duration`, or 10 s when neither it
    /// nor `--total` is given; `None` means until `--total` is reached.
    pub fn run_time(&self) -> Option<Duration> {
        match (self.duration, self.total) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        }
    }

    /// The endpoints as URLs.
    pub fn endpoint_urls(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|e| e.trim())
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e.contains("://") {
                    e.to_string()
                } else {
                    format!("http://{e}")
                }
            })
            .collect()
    }
}

/// Parses `10`, `2.5`, `10s`, `500ms`, `100us`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" | "µs" => number / 1e6,
        "m" | "min" => number * 60.0,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use s, ms, us or m)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn bare_endpoints_become_http_urls() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchArgs,
        }
        let cli = Cli::parse_from(["x", "--endpoints", "127.0.0.1:1,http://h:2"]);
        assert_eq!(cli.args.endpoint_urls(), ["http://127.0.0.1:1", "http://h:2"]);
        assert_eq!(cli.args.run_time(), Some(Duration::from_secs(10)));
        let cli = Cli::parse_from(["x", "--total", "5"]);
        assert_eq!(cli.args.run_time(), None);
        let cli = Cli::parse_from(["x", "--rate", "0"]);
        assert!(cli.args.check().is_err());
    }
}
