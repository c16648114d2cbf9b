//! The Rampart control plane: the config model, building and publishing dataplane tables,
//! the control thread (`rampart run`), and IKEv2.

pub mod build;
pub mod config;
pub mod daemon;
pub mod ike;
pub mod logging;
pub mod report;
