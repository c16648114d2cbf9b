//! The Rampart control plane: the config model, building and publishing dataplane tables,
//! the control thread (`rampart run`), and IKEv2.

pub mod build;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod ikeio;
pub mod keys;
pub mod ike;
pub mod logging;
pub mod peers;
pub mod report;
pub mod state;
