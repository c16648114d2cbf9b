//! The Rampart ESP dataplane: packet views, ESP (RFC 4303), anti-replay, SPD, SAD, flow
//! cache, crypto engines and the poll-mode workers that tie them together on DPDK ports.

pub mod buf;
