//! Bindings to the system DPDK.
