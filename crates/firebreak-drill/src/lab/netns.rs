//! The datacenters as Linux network namespaces: [`Namespaces`] creates one
//! namespace per datacenter, a veth pair into the root namespace, the
//! addresses of the [`AddressPlan`], and an nftables table that keeps
//! traffic on the WAN relay and cuts a datacenter on command. Dropping it
//! removes all of that.
//!
//! Names carry the drill's pid so that two drills never collide and a dead
//! drill's leftovers can be recognised ([`super::sweep`]): namespaces
//! `fbdrill<pid>-dc<n>`, host-side veths `fbd<pid>h<n>`, nftables table
//! `inet fbdrill<pid>`.
//!
//! # Correctness
//!
//! - IP forwarding between the veths is dropped by the table's `forward`
//!   chain, whatever `net.ipv4.ip_forward` says: a datacenter reaches
//!   another only through the relay listening on the other's gateway.
//! - A cut datacenter `d` may exchange packets only with its own gateway
//!   `A.B.d.1` (its members' relay listeners, where the relay refuses
//!   traffic from the other datacenters, and the drill's observation path);
//!   everything else crossing its veth is dropped in both directions, so a
//!   cut holds even for a process that ignored the relay.
//! - Every object is recorded as soon as it exists, so a failure half way
//!   through creation still removes what was made.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};

use super::addr::AddressPlan;
use super::cmd;
use crate::error::DrillError;

/// Name prefix of everything a drill with this pid creates.
pub fn run_prefix(pid: u32) -> String {
    format!("fbdrill{pid}")
}

/// The namespace of datacenter `dc` (0-based).
pub fn namespace_name(pid: u32, dc: usize) -> String {
    format!("fbdrill{pid}-dc{}", dc + 1)
}

/// The root-namespace end of datacenter `dc`'s veth (at most 15 bytes).
pub fn host_link_name(pid: u32, dc: usize) -> String {
    format!("fbd{pid}h{}", dc + 1)
}

/// One created namespace.
struct Namespace {
    name: String,
    /// An open handle of `/run/netns/<name>`, for `setns(2)` in children.
    handle: Option<File>,
}

/// Namespaces, links and the nftables table of one drill.
pub struct Namespaces {
    pid: u32,
    plan: AddressPlan,
    namespaces: Vec<Namespace>,
    links: Vec<String>,
    table: Option<String>,
}

impl Namespaces {
    /// Builds the network of `plan` (which must be in namespace mode).
    pub fn create(pid: u32, plan: AddressPlan) -> Result<Namespaces, DrillError> {
        let mut me = Namespaces {
            pid,
            plan,
            namespaces: Vec::new(),
            links: Vec::new(),
            table: None,
        };
        me.create_table()?;
        for dc in 0..plan.dcs {
            me.create_dc(dc)?;
        }
        Ok(me)
    }

    fn create_table(&mut self) -> Result<(), DrillError> {
        let table = run_prefix(self.pid);
        let links = format!("fbd{}h*", self.pid);
        let mut rules = format!(
            "table inet {table} {{\n\
             \tchain forward {{ type filter hook forward priority -10; policy accept; \
             iifname \"{links}\" drop; oifname \"{links}\" drop; }}\n"
        );
        let mut input = String::new();
        let mut output = String::new();
        for dc in 0..self.plan.dcs {
            let link = host_link_name(self.pid, dc);
            let n = dc + 1;
            input.push_str(&format!("iifname \"{link}\" jump cut{n}_in; "));
            output.push_str(&format!("oifname \"{link}\" jump cut{n}_out; "));
            rules.push_str(&format!("\tchain cut{n}_in {{ }}\n\tchain cut{n}_out {{ }}\n"));
        }
        rules.push_str(&format!(
            "\tchain input {{ type filter hook input priority -10; policy accept; {input}}}\n\
             \tchain output {{ type filter hook output priority -10; policy accept; {output}}}\n}}\n"
        ));
        cmd::run_with_input("nft", &["-f", "-"], Some(&rules))?;
        self.table = Some(table);
        Ok(())
    }

    fn create_dc(&mut self, dc: usize) -> Result<(), DrillError> {
        let ns = namespace_name(self.pid, dc);
        let link = host_link_name(self.pid, dc);
        cmd::run("ip", &["netns", "add", &ns])?;
        self.namespaces.push(Namespace {
            name: ns.clone(),
            handle: None,
        });
        cmd::run(
            "ip",
            &[
                "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        self.links.push(link.clone());
        let gateway = format!("{}/24", self.plan.gateway(dc));
        cmd::run("ip", &["addr", "add", &gateway, "dev", &link])?;
        cmd::run("ip", &["link", "set", &link, "up"])?;
        cmd::run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        for j in 0..self.plan.nodes_per_dc {
            let addr = format!("{}/24", self.plan.member_ip(dc, j));
            cmd::run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        }
        cmd::run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        cmd::run(
            "ip",
            &[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &self.plan.gateway(dc).to_string(),
            ],
        )?;
        let path = format!("/run/netns/{ns}");
        let handle = File::open(&path).map_err(DrillError::io("cannot open the namespace", &path))?;
        self.namespaces.last_mut().expect("just pushed").handle = Some(handle);
        Ok(())
    }

    /// A descriptor of datacenter `dc`'s namespace, valid while `self` lives.
    pub fn handle(&self, dc: usize) -> Option<RawFd> {
        self.namespaces.get(dc)?.handle.as_ref().map(|f| f.as_raw_fd())
    }

    /// The namespace's name.
    pub fn name(&self, dc: usize) -> String {
        namespace_name(self.pid, dc)
    }

    /// Drops every packet crossing `dc`'s veth, both ways, except to and
    /// from its own gateway.
    pub fn cut(&self, dc: usize) -> Result<(), DrillError> {
        let Some(table) = &self.table else { return Ok(()) };
        let gateway = self.plan.gateway(dc).to_string();
        let n = dc + 1;
        let rules = format!(
            "add rule inet {table} cut{n}_in ip daddr != {gateway} drop\n\
             add rule inet {table} cut{n}_in meta nfproto ipv6 drop\n\
             add rule inet {table} cut{n}_out ip saddr != {gateway} drop\n\
             add rule inet {table} cut{n}_out meta nfproto ipv6 drop\n"
        );
        cmd::run_with_input("nft", &["-f", "-"], Some(&rules))?;
        Ok(())
    }

    /// Removes `dc`'s cut.
    pub fn heal(&self, dc: usize) -> Result<(), DrillError> {
        let Some(table) = &self.table else { return Ok(()) };
        let n = dc + 1;
        let rules = format!("flush chain inet {table} cut{n}_in\nflush chain inet {table} cut{n}_out\n");
        cmd::run_with_input("nft", &["-f", "-"], Some(&rules))?;
        Ok(())
    }

    /// The table, for the report.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.namespaces.drain(..).rev() {
            drop(ns.handle);
            cmd::run_quietly("ip", &["netns", "del", &ns.name]);
        }
        for link in self.links.drain(..) {
            // Usually gone with its peer's namespace already.
            if std::path::Path::new(&format!("/sys/class/net/{link}")).exists() {
                cmd::run_quietly("ip", &["link", "del", &link]);
            }
        }
        if let Some(table) = self.table.take() {
            cmd::run_quietly("nft", &["delete", "table", "inet", &table]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limits() {
        // pid_max is at most 4194304 (7 digits); interface names hold 15 bytes.
        assert!(host_link_name(4_194_304, 2).len() <= 15);
        assert_eq!(namespace_name(42, 0), "fbdrill42-dc1");
        assert_eq!(run_prefix(42), "fbdrill42");
    }
}
