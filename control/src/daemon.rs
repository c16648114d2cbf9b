//! `rampart run`: the control thread. It starts the dataplane from the config, serves what
//! the workers hand up (neighbours, packets for the gateway itself), publishes table updates,
//! reclaims old snapshots, and prints counters on SIGUSR1 and at exit.

use crate::build;
use crate::config::Config;
use crate::report;
use rampart_dataplane::gateway::{Gateway, GatewaySpec};
use rampart_dataplane::l3::Neighbors;
use rampart_dataplane::tables::Tables;
use rampart_dataplane::worker::ToControl;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The EAL arguments: the config's, plus what a gateway that must not clash with another on
/// the same machine needs when the config does not say (no shared runtime files).
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let mut args = cfg.eal.clone();
    let has = |args: &[String], flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if !has(&args, "--file-prefix") {
        // No runtime files shared with another DPDK process on this machine.
        args.extend(["--file-prefix".into(), format!("rampart-{}", std::process::id()), "--no-shconf".into()]);
    }
    if !has(&args, "--telemetry") && !has(&args, "--no-telemetry") {
        args.push("--no-telemetry".into());
    }
    if !has(&args, "-l") && !has(&args, "--lcores") && !has(&args, "-c") {
        // The main lcore is the control thread; workers are pinned by us and registered.
        let main = (0..).find(|c| !cfg.cores.contains(c)).unwrap_or(0);
        let main = if main < std::thread::available_parallelism().map_or(1, |n| n.get()) { main } else { 0 };
        args.extend(["-l".into(), main.to_string()]);
    }
    args
}

pub fn spec(cfg: &Config) -> GatewaySpec {
    GatewaySpec {
        eal_args: eal_args(cfg),
        ports: cfg.ports.iter().map(|p| p.devargs.clone()).collect(),
        cores: cfg.cores.clone(),
        mbufs: 16383,
        idle_sleep: Duration::from_micros(cfg.idle_sleep_us),
    }
}

pub fn run(path: &Path) -> Result<(), String> {
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
    crate::logging::init(&cfg.logging.level);
    let mut gw = Gateway::open(spec(&cfg)).map_err(|e| e.to_string())?;
    let tables = build::tables(&cfg, gw.macs(), cfg.cores.len()).map_err(|(f, m)| format!("{}: {f}: {m}", path.display()))?;
    gw.start(tables).map_err(|e| e.to_string())?;
    info!(target: "dataplane", ports = cfg.ports.len(), workers = cfg.cores.len(), sas = cfg.sas.len(), policies = cfg.policies.len(), "rampart up");

    let term = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).map_err(|e| e.to_string())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, usr1.clone()).map_err(|e| e.to_string())?;

    let started = Instant::now();
    while !term.load(Ordering::Relaxed) {
        if usr1.swap(false, Ordering::Relaxed) {
            println!("{}", report::text(&gw, started));
        }
        serve_workers(&mut gw);
        gw.publisher().reclaim();
        std::thread::sleep(Duration::from_millis(1));
    }
    info!(target: "dataplane", "stopping");
    gw.stop();
    println!("{}", report::text(&gw, started));
    Ok(())
}

/// Takes what the workers handed up; publishes new tables when a neighbour changed.
fn serve_workers(gw: &mut Gateway) {
    let mut learned: Option<Neighbors> = None;
    for shared in gw.shared.clone() {
        while let Some(msg) = shared.to_control.pop() {
            match msg {
                ToControl::Neighbor { port, addr, mac } => {
                    let n = learned.get_or_insert_with(|| (*gw.publisher().current().neighbors).clone());
                    if n.learn(port, addr, mac) {
                        info!(target: "dataplane", port, %addr, mac = %report::mac(&mac), "neighbour learned");
                    }
                }
                ToControl::Packet { port, mbuf } => {
                    // IKE and other local services plug in here.
                    warn!(target: "dataplane", port, len = mbuf.len(), "packet for the gateway with no local service");
                }
            }
        }
    }
    if let Some(n) = learned {
        let publisher = gw.publisher();
        let next = Tables { neighbors: Arc::new(n), ..publisher.current().clone() };
        publisher.publish(next);
    }
}
