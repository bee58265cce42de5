//! The node configuration file, and its validation.

use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::auth::{AuthConfig, RawAuth};
use crate::tls::{check_scheme, RawTls, TlsConfig};
use crate::topology::{check_topology, Domains, TopologyError};

/// The TOML file as written by an operator. Every field may also be set by a
/// flag or an environment variable of `firebreak serve`, which win over the
/// file. See [`RawConfig::validate`] for the rules.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Name of this member; must appear in `initial_cluster`. Required.
    pub name: Option<String>,
    /// Datacenter this member runs in. Required.
    pub datacenter: Option<String>,
    /// Room or power compartment (UPS and battery room) within the datacenter.
    pub room: Option<String>,
    /// Rack within the room.
    pub rack: Option<String>,
    /// Physical host.
    pub host: Option<String>,
    /// Directory for the Raft log, snapshots and metadata.
    /// Default: `<name>.firebreak` in the working directory.
    pub data_dir: Option<PathBuf>,
    /// Address for etcd-API clients (gRPC). Default `127.0.0.1:2379`.
    pub listen_client: Option<String>,
    /// Address for replication traffic from the other members, kept apart
    /// from client traffic so it can run on its own network.
    /// Default `127.0.0.1:2380`.
    pub listen_peer: Option<String>,
    /// Start even if the voter set breaks the topology rule (then warn).
    pub allow_unsafe_topology: Option<bool>,
    /// Space quota of the key-value state in bytes; above it the NOSPACE
    /// alarm is raised and writes that add data are refused, as in etcd.
    /// Default 2 GiB (etcd's default).
    pub quota_backend_bytes: Option<u64>,
    /// `new` (default): this member starts a new cluster with the others of
    /// `initial_cluster`. `existing`: it joins a running cluster that
    /// already added it (MemberAdd); it then waits to be replicated to.
    pub initial_cluster_state: Option<ClusterState>,
    /// Every member of the cluster at its first start (for a joining
    /// member: at least itself).
    #[serde(default)]
    pub initial_cluster: Vec<RawMember>,
    /// Raft timing and log retention.
    #[serde(default)]
    pub raft: RawRaft,
    /// TLS for clients and between members (see [`crate::tls`]).
    #[serde(default)]
    pub tls: RawTls,
    /// Auth: tokens and password hashing (see [`crate::auth`]).
    #[serde(default)]
    pub auth: RawAuth,
    /// Datacenters where the leader should live, most preferred first,
    /// e.g. `["dc1", "dc2", "dc3"]`. The leader moves to the most preferred
    /// datacenter with a healthy, caught-up voter, and back to a preferred
    /// one once it has recovered. Empty (default): wherever elections put it.
    #[serde(default)]
    pub leader_priority: Vec<String>,
    /// How long a more preferred datacenter must stay healthy and caught up
    /// before the leader moves (back) to it, ms: a flapping link never
    /// bounces the leader. Default 10000.
    pub leader_failback_after_ms: Option<u64>,
    /// Promote a learner to voter automatically once it has caught up, when
    /// the topology rule allows the larger voter set. Default false.
    pub auto_promote_learners: Option<bool>,
    /// With `auto_promote_learners`: how many voters the leader grows the
    /// voter set to on its own. Default: no limit (every caught-up learner).
    pub voters: Option<usize>,
    /// With `auto_promote_learners`: a voter the leader has not heard from
    /// for this long is replaced by a caught-up learner (one membership
    /// change; the old voter stays as a learner). Default: never.
    pub replace_unreachable_voter_after_ms: Option<u64>,
}

/// Where the leader should live and how the voter set grows by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Datacenters, most preferred first.
    pub leader_priority: Vec<String>,
    pub failback_after: Duration,
    pub auto_promote_learners: bool,
    /// The voter count that promotions stop at (`None`: no limit).
    pub voters: Option<usize>,
    /// How long a voter may be unreachable before a learner replaces it.
    pub replace_unreachable_voter_after: Option<Duration>,
}

/// [`RawConfig::leader_failback_after_ms`] unless configured.
pub const DEFAULT_LEADER_FAILBACK_AFTER_MS: u64 = 10_000;

/// One member of `initial_cluster`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMember {
    pub name: String,
    /// Where the other members reach its peer listener, e.g.
    /// `http://10.0.1.5:2380` or `10.0.1.5:2380`.
    pub peer_url: String,
    /// Where clients reach it, e.g. `http://10.0.1.5:2379`.
    pub client_url: String,
    pub datacenter: String,
    pub room: Option<String>,
    pub rack: Option<String>,
    pub host: Option<String>,
}

/// The leader's heartbeat interval unless configured, ms.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 100;
/// The election timeout unless configured, ms: three heartbeats. It is the
/// floor: each member lengthens it to ten of the round trips it measures
/// to the voters, and to four of the longest recent gap between its
/// leader's messages, so a slow network or a loaded member does not start
/// needless elections; a follower of a live leader also refuses pre-votes
/// (see `firebreak_raft::election`).
pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 300;

/// Raft settings. The defaults suit datacenters a few milliseconds apart.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRaft {
    /// Interval between leader heartbeats. Default 100 ms. openraft also
    /// gives every heartbeat and replication answer this long to arrive, so
    /// a shorter one fails them on a loaded machine or a slow disk.
    pub heartbeat_interval_ms: Option<u64>,
    /// A follower that hears no leader for a random time between this and
    /// 1.2 times this asks for a pre-vote, then starts an election. Default
    /// 300 ms; must be at least three heartbeats. It grows to ten of the
    /// largest recent round trips to a voter, and to four of the longest
    /// gap between the leader's messages in the last minute, when those
    /// call for more.
    pub election_timeout_ms: Option<u64>,
    /// Take a snapshot (and allow the log before it to be purged) after this
    /// many entries. Default 100000 (etcd's default).
    pub snapshot_entries: Option<u64>,
}

/// Whether a member starts a new cluster or joins a running one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterState {
    #[default]
    New,
    Existing,
}

/// A validated member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberConfig {
    pub name: String,
    /// Stable id derived from the name; the Raft node id and etcd member id.
    pub id: u64,
    /// `host:port` of the peer listener.
    pub peer_addr: String,
    pub peer_url: String,
    pub client_url: String,
    pub domains: Domains,
}

/// Validated Raft timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_entries: u64,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub id: u64,
    pub domains: Domains,
    pub data_dir: PathBuf,
    pub listen_client: SocketAddr,
    pub listen_peer: SocketAddr,
    pub members: Vec<MemberConfig>,
    pub raft: RaftTiming,
    /// The topology problem that `allow_unsafe_topology` let through.
    pub topology_warning: Option<TopologyError>,
    pub quota_backend_bytes: u64,
    pub initial_cluster_state: ClusterState,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub placement: Placement,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

pub(crate) fn invalid(field: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        value: value.into(),
        reason: reason.into(),
    }
}

/// The etcd member id of a member name: FNV-1a, never 0.
pub fn member_id(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// `host:port` of a URL such as `http://host:port` (or a bare `host:port`).
pub fn url_host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/')
}

fn socket_addr(field: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    url_host_port(value)
        .to_socket_addrs()
        .map_err(|e| invalid(field, value, e.to_string()))?
        .next()
        .ok_or_else(|| invalid(field, value, "resolves to no address"))
}

fn label(field: &'static str, value: Option<String>) -> Result<Option<String>, ConfigError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(invalid(field, v, "must not be empty")),
        other => Ok(other),
    }
}

impl RawConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Validates into a [`Config`]. Refuses a voter set that breaks the
    /// topology rule unless `allow_unsafe_topology` is set.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let name = self
            .name
            .filter(|n| !n.trim().is_empty())
            .ok_or(ConfigError::Missing("name"))?;
        let datacenter = self
            .datacenter
            .filter(|d| !d.trim().is_empty())
            .ok_or(ConfigError::Missing("datacenter"))?;
        let domains = Domains {
            datacenter,
            room: label("room", self.room)?,
            rack: label("rack", self.rack)?,
            host: label("host", self.host)?,
        };
        let listen_client = socket_addr(
            "listen_client",
            self.listen_client.as_deref().unwrap_or("127.0.0.1:2379"),
        )?;
        let listen_peer = socket_addr("listen_peer", self.listen_peer.as_deref().unwrap_or("127.0.0.1:2380"))?;
        if listen_client == listen_peer {
            return Err(invalid(
                "listen_peer",
                listen_peer.to_string(),
                "must differ from listen_client: replication traffic is kept apart from client traffic",
            ));
        }

        let heartbeat = self.raft.heartbeat_interval_ms.unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_MS);
        let election = self.raft.election_timeout_ms.unwrap_or(DEFAULT_ELECTION_TIMEOUT_MS);
        if heartbeat == 0 {
            return Err(invalid("raft.heartbeat_interval_ms", "0", "must be positive"));
        }
        if election < 3 * heartbeat {
            return Err(invalid(
                "raft.election_timeout_ms",
                election.to_string(),
                format!("must be at least 3 heartbeat intervals ({} ms)", 3 * heartbeat),
            ));
        }
        let snapshot_entries = self.raft.snapshot_entries.unwrap_or(100_000);
        if snapshot_entries == 0 {
            return Err(invalid("raft.snapshot_entries", "0", "must be positive"));
        }

        if self.initial_cluster.is_empty() {
            return Err(ConfigError::Missing("initial_cluster"));
        }
        let mut members = Vec::new();
        let placement_raw = PlacementRaw {
            leader_priority: self.leader_priority.clone(),
            failback_after_ms: self.leader_failback_after_ms,
            auto_promote_learners: self.auto_promote_learners,
            voters: self.voters,
            replace_after_ms: self.replace_unreachable_voter_after_ms,
        };
        let mut names = BTreeSet::new();
        let mut peers = BTreeSet::new();
        for m in self.initial_cluster {
            if m.name.trim().is_empty() {
                return Err(invalid("initial_cluster.name", m.name, "must not be empty"));
            }
            if !names.insert(m.name.clone()) {
                return Err(invalid("initial_cluster.name", m.name, "appears twice"));
            }
            if m.datacenter.trim().is_empty() {
                return Err(invalid(
                    "initial_cluster.datacenter",
                    m.name,
                    "every member needs a datacenter",
                ));
            }
            let peer_addr = url_host_port(&m.peer_url).to_string();
            socket_addr("initial_cluster.peer_url", &m.peer_url)?;
            socket_addr("initial_cluster.client_url", &m.client_url)?;
            if !peers.insert(peer_addr.clone()) {
                return Err(invalid("initial_cluster.peer_url", m.peer_url, "appears twice"));
            }
            members.push(MemberConfig {
                id: member_id(&m.name),
                name: m.name,
                peer_addr,
                peer_url: m.peer_url,
                client_url: m.client_url,
                domains: Domains {
                    datacenter: m.datacenter,
                    room: label("initial_cluster.room", m.room)?,
                    rack: label("initial_cluster.rack", m.rack)?,
                    host: label("initial_cluster.host", m.host)?,
                },
            });
        }
        let me = members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| invalid("name", &name, "is not a member of initial_cluster"))?;
        if me.domains != domains {
            return Err(invalid(
                "datacenter",
                &domains.datacenter,
                format!(
                    "this member's failure domains differ from its initial_cluster entry ({:?})",
                    me.domains
                ),
            ));
        }
        let tls = self.tls.validate()?;
        let auth = self.auth.validate()?;
        // Advertised URLs say whether TLS is on (etcd's convention): every
        // peer is reached the way this member's peer listener is secured.
        for m in &members {
            check_scheme("initial_cluster.peer_url", &m.peer_url, tls.peer.is_some())?;
        }
        check_scheme("initial_cluster.client_url", &me.client_url, tls.client.is_some())?;
        let ids: BTreeSet<u64> = members.iter().map(|m| m.id).collect();
        if ids.len() != members.len() {
            return Err(invalid(
                "initial_cluster.name",
                "",
                "two member names hash to the same id",
            ));
        }

        let initial_cluster_state = self.initial_cluster_state.unwrap_or_default();
        // A joining member's initial_cluster need not list the voters: the
        // running cluster checked the rule when it added the member.
        let topology = match initial_cluster_state {
            ClusterState::New => check_topology(members.iter().map(|m| (m.name.as_str(), &m.domains))),
            ClusterState::Existing => Ok(()),
        };
        let topology_warning = match topology {
            Ok(()) => None,
            Err(e) if self.allow_unsafe_topology.unwrap_or(false) => Some(e),
            Err(e) => return Err(e.into()),
        };

        let placement = placement_raw.validate(&members, initial_cluster_state)?;
        Ok(Config {
            placement,
            id: member_id(&name),
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("{name}.firebreak"))),
            name,
            domains,
            listen_client,
            listen_peer,
            members,
            raft: RaftTiming {
                heartbeat_interval: Duration::from_millis(heartbeat),
                election_timeout: Duration::from_millis(election),
                snapshot_entries,
            },
            topology_warning,
            initial_cluster_state,
            tls,
            auth,
            quota_backend_bytes: match self.quota_backend_bytes {
                Some(0) => return Err(invalid("quota_backend_bytes", "0", "must be positive")),
                Some(q) => q,
                None => 2 << 30,
            },
        })
    }
}

/// The placement settings of a [`RawConfig`], kept apart while it is taken
/// to pieces.
struct PlacementRaw {
    leader_priority: Vec<String>,
    failback_after_ms: Option<u64>,
    auto_promote_learners: Option<bool>,
    voters: Option<usize>,
    replace_after_ms: Option<u64>,
}

impl PlacementRaw {
    fn validate(self, members: &[MemberConfig], state: ClusterState) -> Result<Placement, ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for dc in &self.leader_priority {
            if dc.is_empty() {
                return Err(invalid("leader_priority", dc.clone(), "names an empty datacenter"));
            }
            if !seen.insert(dc) {
                return Err(invalid("leader_priority", dc.clone(), "names this datacenter twice"));
            }
            // A joining member's initial_cluster may list only itself.
            if state == ClusterState::New && !members.iter().any(|m| &m.domains.datacenter == dc) {
                return Err(invalid(
                    "leader_priority",
                    dc.clone(),
                    "no member of initial_cluster is in this datacenter",
                ));
            }
        }
        let failback = self.failback_after_ms.unwrap_or(DEFAULT_LEADER_FAILBACK_AFTER_MS);
        if failback == 0 {
            return Err(invalid(
                "leader_failback_after_ms",
                "0",
                "must be positive: without it a flapping link would bounce the leader",
            ));
        }
        let auto = self.auto_promote_learners.unwrap_or(false);
        if !auto && (self.voters.is_some() || self.replace_after_ms.is_some()) {
            return Err(invalid(
                "auto_promote_learners",
                "false",
                "voters and replace_unreachable_voter_after_ms act through automatic promotion: set auto_promote_learners = true",
            ));
        }
        if let Some(n) = self.voters {
            if n < 3 {
                return Err(invalid(
                    "voters",
                    n.to_string(),
                    "must be at least 3: fewer voters cannot span three datacenters",
                ));
            }
        }
        if self.replace_after_ms == Some(0) {
            return Err(invalid(
                "replace_unreachable_voter_after_ms",
                "0",
                "must be positive: a voter is never replaced for one missed heartbeat",
            ));
        }
        Ok(Placement {
            leader_priority: self.leader_priority,
            failback_after: Duration::from_millis(failback),
            auto_promote_learners: auto,
            voters: self.voters,
            replace_unreachable_voter_after: self.replace_after_ms.map(Duration::from_millis),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> RawConfig {
        let text = r#"
            name = "a"
            datacenter = "dc1"
            listen_client = "127.0.0.1:2379"
            listen_peer = "127.0.0.1:2380"
            [[initial_cluster]]
            name = "a"
            peer_url = "http://127.0.0.1:2380"
            client_url = "http://127.0.0.1:2379"
            datacenter = "dc1"
            [[initial_cluster]]
            name = "b"
            peer_url = "http://127.0.0.1:22380"
            client_url = "http://127.0.0.1:22379"
            datacenter = "dc2"
            [[initial_cluster]]
            name = "c"
            peer_url = "http://127.0.0.1:32380"
            client_url = "http://127.0.0.1:32379"
            datacenter = "dc3"
        "#;
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_three_datacenter_config_validates_with_defaults() {
        let c = three().validate().unwrap();
        assert_eq!(c.members.len(), 3);
        assert_eq!(
            c.raft.heartbeat_interval,
            Duration::from_millis(DEFAULT_HEARTBEAT_INTERVAL_MS)
        );
        assert_eq!(
            c.raft.election_timeout,
            Duration::from_millis(DEFAULT_ELECTION_TIMEOUT_MS)
        );
        assert_eq!(c.members[1].peer_addr, "127.0.0.1:22380");
        assert!(c.topology_warning.is_none());
    }

    #[test]
    fn leader_priority_names_known_datacenters_once() {
        let c = three().validate().unwrap();
        assert!(c.placement.leader_priority.is_empty());
        assert_eq!(
            c.placement.failback_after,
            Duration::from_millis(DEFAULT_LEADER_FAILBACK_AFTER_MS)
        );
        assert!(!c.placement.auto_promote_learners);

        let mut raw = three();
        raw.leader_priority = vec!["dc2".into(), "dc1".into()];
        raw.leader_failback_after_ms = Some(3000);
        raw.auto_promote_learners = Some(true);
        let c = raw.validate().unwrap();
        assert_eq!(c.placement.leader_priority, ["dc2", "dc1"]);
        assert_eq!(c.placement.failback_after, Duration::from_millis(3000));
        assert!(c.placement.auto_promote_learners);

        for (priority, problem) in [
            (vec!["dc9"], "no member of initial_cluster"),
            (vec!["dc1", "dc1"], "twice"),
            (vec![""], "empty"),
        ] {
            let mut raw = three();
            raw.leader_priority = priority.iter().map(|s| s.to_string()).collect();
            let err = raw.validate().unwrap_err().to_string();
            assert!(err.contains("leader_priority") && err.contains(problem), "{err}");
        }
        let mut raw = three();
        raw.leader_failback_after_ms = Some(0);
        assert!(raw
            .validate()
            .unwrap_err()
            .to_string()
            .contains("leader_failback_after_ms"));

        let mut raw = three();
        raw.voters = Some(3);
        assert!(raw
            .clone()
            .validate()
            .unwrap_err()
            .to_string()
            .contains("auto_promote_learners = true"));
        raw.auto_promote_learners = Some(true);
        raw.replace_unreachable_voter_after_ms = Some(30_000);
        let c = raw.clone().validate().unwrap();
        assert_eq!(c.placement.voters, Some(3));
        assert_eq!(
            c.placement.replace_unreachable_voter_after,
            Some(Duration::from_secs(30))
        );
        raw.voters = Some(2);
        assert!(raw.validate().unwrap_err().to_string().contains("at least 3"));
    }

    #[test]
    fn unsafe_topology_is_refused_unless_allowed() {
        let mut raw = three();
        raw.initial_cluster[2].datacenter = "dc2".into();
        let err = raw.clone().validate().unwrap_err();
        assert!(err.to_string().contains("span only 2 datacenter"), "{err}");
        raw.allow_unsafe_topology = Some(true);
        assert!(raw.validate().unwrap().topology_warning.is_some());
    }

    #[test]
    fn bad_input_is_named() {
        let mut raw = three();
        raw.datacenter = None;
        assert_eq!(raw.validate().unwrap_err().to_string(), "datacenter is required");
        let mut raw = three();
        raw.listen_peer = raw.listen_client.clone();
        assert!(raw.validate().unwrap_err().to_string().contains("listen_peer"));
        let mut raw = three();
        raw.raft.election_timeout_ms = Some(2 * DEFAULT_HEARTBEAT_INTERVAL_MS);
        assert!(raw.validate().unwrap_err().to_string().contains("election_timeout_ms"));
        let unknown: Result<RawConfig, _> = toml::from_str("nmae = \"x\"");
        assert!(unknown.is_err());
    }

    #[test]
    fn urls_follow_whether_tls_is_on() {
        let peer_tls = |raw: &mut RawConfig| {
            raw.tls.peer_cert_file = Some("m.crt".into());
            raw.tls.peer_key_file = Some("m.key".into());
            raw.tls.peer_trusted_ca_file = Some("ca.crt".into());
        };
        let mut raw = three();
        peer_tls(&mut raw);
        let err = raw.validate().unwrap_err().to_string();
        assert!(
            err.contains("initial_cluster.peer_url") && err.contains("https"),
            "{err}"
        );
        let mut raw = three();
        peer_tls(&mut raw);
        for m in &mut raw.initial_cluster {
            m.peer_url = m.peer_url.replace("http://", "https://");
        }
        let c = raw.validate().unwrap();
        assert!(c.tls.peer.is_some() && c.tls.client.is_none());
        let mut raw = three();
        raw.tls.cert_file = Some("m.crt".into());
        raw.tls.key_file = Some("m.key".into());
        assert!(raw.validate().unwrap_err().to_string().contains("client_url"));
    }
}
