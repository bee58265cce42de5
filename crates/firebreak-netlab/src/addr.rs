//! The lab's address plan: which address and port each member listens on,
//! where the WAN relay listens for it, and how a source address maps back
//! to a datacenter. Pure data, no system calls.
//!
//! With namespaces, datacenter `d` (1-based) owns `A.B.d.0/24`: the root
//! namespace's end of its veth is the gateway `A.B.d.1`, where the relay
//! listens for the datacenter's members; member `j` (0-based) listens on
//! `A.B.d.(10+j)` inside the namespace. On loopback the same layout lives in
//! `127.B.d.0/24`. Member `j` uses client port `2379 + 10j` and peer port
//! `2380 + 10j` on both its own address and its gateway.
//!
//! # Correctness
//!
//! - Every datacenter's /24 is distinct, so in namespace mode a source
//!   address identifies its datacenter ([`AddressPlan::dc_of`]).
//! - Relay listeners and member listeners never share an address, so the
//!   relay can never connect to itself.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// Client port of the first member of a datacenter (etcd's).
pub const CLIENT_PORT: u16 = 2379;
/// Peer port of the first member of a datacenter (etcd's).
pub const PEER_PORT: u16 = 2380;

/// How the lab separates datacenters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One network namespace per datacenter (needs root).
    Netns,
    /// Loopback addresses in the drill's own namespace (weaker).
    Loopback,
}

impl Mode {
    /// `netns` or `loopback`, as in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netns => "netns",
            Mode::Loopback => "loopback",
        }
    }
}

/// The addresses of one lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPlan {
    /// Namespaces or loopback.
    pub mode: Mode,
    /// First two octets (`10.B` or `127.B`).
    pub prefix: [u8; 2],
    /// Number of datacenters.
    pub dcs: usize,
    /// Members in each datacenter.
    pub nodes_per_dc: usize,
}

impl AddressPlan {
    fn ip(&self, dc: usize, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.prefix[0], self.prefix[1], dc as u8 + 1, host)
    }

    /// The datacenter's name, `dc1` for index 0.
    pub fn dc_name(dc: usize) -> String {
        format!("dc{}", dc + 1)
    }

    /// The gateway of datacenter `dc` (0-based): the relay listens here.
    pub fn gateway(&self, dc: usize) -> Ipv4Addr {
        self.ip(dc, 1)
    }

    /// The address member `j` of datacenter `dc` listens on.
    pub fn member_ip(&self, dc: usize, j: usize) -> Ipv4Addr {
        self.ip(dc, 10 + j as u8)
    }

    /// `A.B.d.0/24`.
    pub fn subnet(&self, dc: usize) -> String {
        format!("{}/24", self.ip(dc, 0))
    }

    /// Client port of member `j`.
    pub fn client_port(j: usize) -> u16 {
        CLIENT_PORT + 10 * j as u16
    }

    /// Peer port of member `j`.
    pub fn peer_port(j: usize) -> u16 {
        PEER_PORT + 10 * j as u16
    }

    /// Where member `j` of `dc` serves clients.
    pub fn member_client(&self, dc: usize, j: usize) -> SocketAddr {
        SocketAddrV4::new(self.member_ip(dc, j), Self::client_port(j)).into()
    }

    /// Where member `j` of `dc` serves peers.
    pub fn member_peer(&self, dc: usize, j: usize) -> SocketAddr {
        SocketAddrV4::new(self.member_ip(dc, j), Self::peer_port(j)).into()
    }

    /// Where the relay accepts client traffic for member `j` of `dc`.
    pub fn relay_client(&self, dc: usize, j: usize) -> SocketAddr {
        SocketAddrV4::new(self.gateway(dc), Self::client_port(j)).into()
    }

    /// Where the relay accepts peer traffic for member `j` of `dc`.
    pub fn relay_peer(&self, dc: usize, j: usize) -> SocketAddr {
        SocketAddrV4::new(self.gateway(dc), Self::peer_port(j)).into()
    }

    /// The datacenter a source address belongs to (namespace mode only: on
    /// loopback every process connects from 127.0.0.1).
    pub fn dc_of(&self, addr: SocketAddr) -> Option<usize> {
        if self.mode != Mode::Netns {
            return None;
        }
        let SocketAddr::V4(v4) = addr else { return None };
        let [a, b, c, _] = v4.ip().octets();
        if [a, b] != self.prefix || c == 0 || usize::from(c) > self.dcs {
            return None;
        }
        Some(usize::from(c) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(mode: Mode) -> AddressPlan {
        AddressPlan {
            mode,
            prefix: [10, 213],
            dcs: 3,
            nodes_per_dc: 2,
        }
    }

    #[test]
    fn layout_matches_the_docs() {
        let p = plan(Mode::Netns);
        assert_eq!(p.gateway(0).to_string(), "10.213.1.1");
        assert_eq!(p.member_ip(2, 1).to_string(), "10.213.3.11");
        assert_eq!(p.subnet(1), "10.213.2.0/24");
        assert_eq!(p.member_client(0, 1).to_string(), "10.213.1.11:2389");
        assert_eq!(p.relay_peer(1, 0).to_string(), "10.213.2.1:2380");
    }

    #[test]
    fn source_addresses_map_to_their_datacenter() {
        let p = plan(Mode::Netns);
        assert_eq!(p.dc_of("10.213.2.10:40000".parse().unwrap()), Some(1));
        assert_eq!(p.dc_of("10.213.3.1:40000".parse().unwrap()), Some(2));
        assert_eq!(p.dc_of("10.213.4.10:40000".parse().unwrap()), None);
        assert_eq!(p.dc_of("10.214.1.10:40000".parse().unwrap()), None);
        assert_eq!(p.dc_of("127.0.0.1:40000".parse().unwrap()), None);
        assert_eq!(plan(Mode::Loopback).dc_of("10.213.2.10:1".parse().unwrap()), None);
    }
}
