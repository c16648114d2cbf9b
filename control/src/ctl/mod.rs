//! The control API: a unix socket that speaks newline-delimited JSON (`server`), the
//! `rampart ctl` client (`client`), and Prometheus metrics (`metrics`). All of it runs on the
//! control thread's mio loop, non-blocking, with no threads of its own.

pub mod client;
pub mod metrics;
pub mod proto;
pub mod server;

pub use proto::{Handler, Request};
pub use server::Server;

/// Where the daemon listens unless the config says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/rampart/rampart.sock";
