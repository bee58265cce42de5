//! The failure-domain rule for a voter set.
//!
//! # Correctness
//! With `n` voters a quorum is `n / 2 + 1`. If the voters of one failure
//! domain number a quorum, losing that domain (a datacenter fire, a room's
//! power) loses the quorum and the cluster stops; if they number less than a
//! quorum, the other domains still hold one and elect a leader on their own.
//! A voter set is therefore accepted only when, at every level where labels
//! are given, no single label holds a quorum; at the datacenter and room
//! levels it must also span at least three labels (with two, one of them
//! always holds at least half, and one failure stops writes or reads).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The failure domains of one member, from the largest to the smallest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Domains {
    /// Datacenter: the unit a fire or a regional outage takes out. Required.
    pub datacenter: String,
    /// Room or power compartment (UPS and battery room) inside it.
    pub room: Option<String>,
    pub rack: Option<String>,
    pub host: Option<String>,
}

/// One failure-domain level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Datacenter,
    Room,
    Rack,
    Host,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Datacenter => "datacenter",
            Level::Room => "room",
            Level::Rack => "rack",
            Level::Host => "host",
        })
    }
}

/// Why a voter set is unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error(
        "unsafe topology: the {voters} voters span only {count} {level}(s) ({labels}); \
         at least 3 are needed so that losing any one {level} keeps a quorum"
    )]
    TooFewDomains {
        level: Level,
        count: usize,
        labels: String,
        voters: usize,
    },
    #[error(
        "unsafe topology: {level} {label:?} holds {members} of {voters} voters ({names}), \
         a quorum on its own (quorum is {quorum}); losing it would stop the cluster"
    )]
    DomainHoldsQuorum {
        level: Level,
        label: String,
        members: usize,
        voters: usize,
        quorum: usize,
        names: String,
    },
}

/// Reads one level's label of a member.
type LabelOf = fn(&Domains) -> Option<&str>;

/// Checks the rule for `voters` (name and domains of each). An empty set is
/// refused as spanning no datacenter.
pub fn check_topology<'a>(voters: impl IntoIterator<Item = (&'a str, &'a Domains)>) -> Result<(), TopologyError> {
    let voters: Vec<(&str, &Domains)> = voters.into_iter().collect();
    let n = voters.len();
    let quorum = n / 2 + 1;
    let levels: [(Level, LabelOf); 4] = [
        (Level::Datacenter, |d| Some(d.datacenter.as_str())),
        (Level::Room, |d| d.room.as_deref()),
        (Level::Rack, |d| d.rack.as_deref()),
        (Level::Host, |d| d.host.as_deref()),
    ];
    for (level, label_of) in levels {
        if voters.iter().all(|(_, d)| label_of(d).is_none()) {
            continue;
        }
        // A member without a label at this level is a domain of its own.
        let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (name, d) in &voters {
            let label = match label_of(d) {
                Some(label) => label.to_string(),
                None => format!("(unlabelled {name})"),
            };
            groups.entry(label).or_default().push(name);
        }
        if matches!(level, Level::Datacenter | Level::Room) && groups.len() < 3 {
            return Err(TopologyError::TooFewDomains {
                level,
                count: groups.len(),
                labels: groups.keys().cloned().collect::<Vec<_>>().join(", "),
                voters: n,
            });
        }
        if let Some((label, names)) = groups.iter().find(|(_, names)| names.len() >= quorum) {
            return Err(TopologyError::DomainHoldsQuorum {
                level,
                label: label.clone(),
                members: names.len(),
                voters: n,
                quorum,
                names: names.join(", "),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dc(name: &str) -> Domains {
        Domains {
            datacenter: name.into(),
            ..Default::default()
        }
    }

    fn check(dcs: &[&str]) -> Result<(), TopologyError> {
        let domains: Vec<(String, Domains)> = dcs.iter().enumerate().map(|(i, d)| (format!("n{i}"), dc(d))).collect();
        check_topology(domains.iter().map(|(n, d)| (n.as_str(), d)))
    }

    #[test]
    fn three_datacenters_pass() {
        check(&["a", "b", "c"]).unwrap();
        check(&["a", "a", "b", "b", "c", "c"]).unwrap();
        check(&["a", "a", "b", "b", "c"]).unwrap();
    }

    #[test]
    fn two_datacenters_fail() {
        let err = check(&["a", "a", "b"]).unwrap_err();
        assert!(matches!(err, TopologyError::TooFewDomains { count: 2, .. }), "{err}");
        assert!(err.to_string().contains("datacenter"), "{err}");
    }

    #[test]
    fn a_datacenter_with_a_quorum_fails() {
        let err = check(&["a", "a", "a", "b", "c"]).unwrap_err();
        assert!(
            matches!(&err, TopologyError::DomainHoldsQuorum { label, members: 3, quorum: 3, .. } if label == "a"),
            "{err}"
        );
    }

    #[test]
    fn rooms_are_checked_where_given() {
        let mut voters = vec![dc("a"), dc("b"), dc("c")];
        for d in &mut voters {
            d.room = Some("shared-power".into());
        }
        let named: Vec<(String, Domains)> = voters
            .into_iter()
            .enumerate()
            .map(|(i, d)| (format!("n{i}"), d))
            .collect();
        let err = check_topology(named.iter().map(|(n, d)| (n.as_str(), d))).unwrap_err();
        assert!(
            matches!(err, TopologyError::TooFewDomains { level: Level::Room, .. }),
            "{err}"
        );
    }
}
