//! The Rampart ESP dataplane: packet views, ESP (RFC 4303), anti-replay, SPD, SAD, flow
//! cache, crypto engines and the poll-mode workers that tie them together on DPDK ports.

pub mod buf;
pub mod crypto;
pub mod esp;
pub mod flowcache;
pub mod qsbr;
pub mod spd;
pub mod replay;
pub mod wire;
pub mod counters;
pub mod gateway;
pub mod hash;
pub mod ip;
pub mod l3;
pub mod local;
pub mod mbuf;
pub mod tables;
pub mod worker;
