//! `--wan-relay`: the drill's WAN link emulator
//! ([`firebreak_netlab::relay`]), run on its own for a benchmark lab.
//!
//! `bench/compare-etcd.sh` makes one network namespace per datacenter with
//! the drill's address plan ([`AddressPlan`]), starts the members of etcd or
//! Firebreak inside them with their peer URLs pointing at the gateways, and
//! runs this relay in the root namespace. Every byte between two members
//! then crosses the relay, which holds it for half the round trip in each
//! direction. Clients in the root namespace talk to the members directly,
//! as clients inside a member's datacenter would.
//!
//! The relay runs on one thread of its own; its CPU time is printed on exit
//! and can be read from `/proc` while it runs.

use std::time::Duration;

use firebreak_netlab::addr::{AddressPlan, Mode};
use firebreak_netlab::relay::{Relay, RelayStats, Route, SourceMap};

use crate::args::BenchArgs;
use crate::error::BenchError;

/// Parses `A.B` into the plan's prefix.
pub fn prefix(text: &str) -> Result<[u8; 2], BenchError> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [a, b] => match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) => Ok([a, b]),
            _ => Err(BenchError::Usage(format!(
                "--wan-prefix `{text}` is not two octets like 10.213"
            ))),
        },
        _ => Err(BenchError::Usage(format!(
            "--wan-prefix `{text}` is not two octets like 10.213"
        ))),
    }
}

/// The routes of a lab with one member per datacenter: its client and
/// peer ports, from its gateway to its own address.
pub fn routes(plan: &AddressPlan) -> Vec<Route> {
    (0..plan.dcs)
        .flat_map(|dc| {
            [
                Route {
                    listen: plan.relay_client(dc, 0),
                    upstream: plan.member_client(dc, 0),
                    dc,
                },
                Route {
                    listen: plan.relay_peer(dc, 0),
                    upstream: plan.member_peer(dc, 0),
                    dc,
                },
            ]
        })
        .collect()
}

/// Runs the relay until SIGTERM or SIGINT and returns its counters.
pub fn run_relay(args: &BenchArgs) -> Result<RelayStats, BenchError> {
    let plan = AddressPlan {
        mode: Mode::Netns,
        prefix: prefix(&args.wan_prefix)?,
        dcs: args.wan_dcs,
        nodes_per_dc: 1,
    };
    let relay = Relay::start(routes(&plan), args.wan_rtt, SourceMap::Addresses(plan))
        .map_err(|e| BenchError::Relay(e.to_string()))?;
    eprintln!(
        "relay ready: {} datacenters under {}, round trip {:?}",
        args.wan_dcs, args.wan_prefix, args.wan_rtt
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(BenchError::Runtime)?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), BenchError>(())
    })?;
    let stats = relay.stats();
    drop(relay);
    // Give a closing peer a moment to see its connections end.
    std::thread::sleep(Duration::from_millis(10));
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_go_from_each_gateway_to_its_member() {
        let plan = AddressPlan {
            mode: Mode::Netns,
            prefix: prefix("10.213").unwrap(),
            dcs: 3,
            nodes_per_dc: 1,
        };
        let routes = routes(&plan);
        assert_eq!(routes.len(), 6);
        assert_eq!(routes[0].listen.to_string(), "10.213.1.1:2379");
        assert_eq!(routes[0].upstream.to_string(), "10.213.1.10:2379");
        assert_eq!(routes[5].listen.to_string(), "10.213.3.1:2380");
        assert_eq!(routes[5].upstream.to_string(), "10.213.3.10:2380");
        assert!(prefix("10").is_err());
        assert!(prefix("10.300").is_err());
    }
}
