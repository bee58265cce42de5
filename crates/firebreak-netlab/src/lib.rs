//! Datacenters on one machine, as the drill and the benchmarks build them:
//! the address plan of their members ([`addr`]) and the WAN relay on every
//! path between them ([`relay`]), which adds the round trip of a link
//! between datacenters (this kernel has no `netem`) and cuts links on
//! command.
//!
//! The drill (`firebreak-drill`) adds the rest of its lab around these
//! (network namespaces, nftables, processes, faults); the benchmarks
//! (`firebreak-bench`) use them alone for their WAN network.

pub mod addr;
pub mod relay;
