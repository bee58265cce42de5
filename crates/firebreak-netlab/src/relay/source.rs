//! Which datacenter a relayed connection comes from.
//!
//! With namespaces the source address says it ([`AddressPlan::dc_of`]). On
//! loopback every process connects from `127.0.0.1`, so the relay looks the
//! connection up in `/proc/net/tcp` (its inode) and finds which of the
//! drill's children holds that socket ([`SourceMap::Processes`]).
//!
//! # Correctness
//!
//! A connection whose source cannot be identified is treated as coming from
//! outside every datacenter: it is delayed, and refused while any
//! datacenter is cut. It is never treated as local to its destination.
//!
//! The loopback look-up reads `/proc` and can take milliseconds, so the
//! relay runs it on a blocking thread, never on the relay thread itself.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::addr::AddressPlan;

/// The processes of the lab by pid, each with the index of its datacenter.
pub type Registry = Arc<Mutex<HashMap<u32, usize>>>;

/// How the relay identifies a connection's source datacenter.
#[derive(Clone)]
pub enum SourceMap {
    /// By source address (namespace mode).
    Addresses(AddressPlan),
    /// By the process that owns the connecting socket (loopback mode).
    Processes(Registry),
}

impl SourceMap {
    /// The source datacenter of a connection accepted on `local` from `peer`.
    pub fn identify(&self, peer: SocketAddr, local: SocketAddr) -> Option<usize> {
        match self {
            SourceMap::Addresses(plan) => plan.dc_of(peer),
            SourceMap::Processes(registry) => {
                let inode = socket_inode(peer, local)?;
                let pids: Vec<(u32, usize)> = registry
                    .lock()
                    .expect("registry lock")
                    .iter()
                    .map(|(p, d)| (*p, *d))
                    .collect();
                pids.into_iter()
                    .find(|(pid, _)| owns_socket(*pid, inode))
                    .map(|(_, dc)| dc)
            }
        }
    }
}

/// Parses `0100007F:1F90` (as in `/proc/net/tcp`) into `127.0.0.1:8080`.
pub fn parse_proc_addr(text: &str) -> Option<SocketAddrV4> {
    let (ip, port) = text.split_once(':')?;
    if ip.len() != 8 {
        return None;
    }
    let raw = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints the address as a native-endian u32 of network-order bytes.
    Some(SocketAddrV4::new(Ipv4Addr::from(raw.to_ne_bytes()), port))
}

/// The inode of the socket whose local end is `local_end` and remote end is
/// `remote_end`, from `/proc/net/tcp` text.
pub fn find_inode(table: &str, local_end: SocketAddrV4, remote_end: SocketAddrV4) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 {
            return None;
        }
        let local = parse_proc_addr(fields[1])?;
        let remote = parse_proc_addr(fields[2])?;
        (local == local_end && remote == remote_end)
            .then(|| fields[9].parse().ok())
            .flatten()
    })
}

/// The inode of the connecting (client) end of an accepted connection.
fn socket_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    let (SocketAddr::V4(peer), SocketAddr::V4(local)) = (peer, local) else {
        return None;
    };
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    find_inode(&table, peer, local)
}

/// Whether process `pid` has the socket `inode` open.
fn owns_socket(pid: u32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .map(|target| target.as_os_str() == wanted.as_str())
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_addresses_parse() {
        assert_eq!(
            parse_proc_addr("0100007F:1F90"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(parse_proc_addr("garbage"), None);
    }

    #[test]
    fn finds_the_connecting_socket() {
        let table =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0101657F:094B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0\n\
   1: 0100007F:A000 0101657F:094B 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 20 4 30 10 -1\n\
   2: 0101657F:094B 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0 20 4 30 10 -1\n";
        let client: SocketAddrV4 = "127.0.0.1:40960".parse().unwrap();
        let relay: SocketAddrV4 = "127.101.1.1:2379".parse().unwrap();
        assert_eq!(find_inode(table, client, relay), Some(2222));
        assert_eq!(find_inode(table, relay, client), Some(3333));
    }

    #[test]
    fn a_socket_of_this_process_is_found_by_inode() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        let inode = socket_inode(peer, server).expect("the connecting socket is in /proc/net/tcp");
        assert!(owns_socket(std::process::id(), inode));
        drop(client);
    }
}
