//! Brings the dataplane up: the EAL, the mbuf pool, the ports (one RX and one TX queue per
//! worker on each), the table publisher, and the pinned workers; and takes it down again.

use crate::l3::Mac;
use crate::qsbr::{self, Publisher};
use crate::tables::Tables;
use crate::worker::{Worker, WorkerShared};
use dpdk_sys::{Eal, Mempool, Port, PortConf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the dataplane needs to start.
#[derive(Clone, Debug)]
pub struct GatewaySpec {
    pub eal_args: Vec<String>,
    /// DPDK devargs of each port, in port-index order.
    pub ports: Vec<String>,
    /// One worker per core.
    pub cores: Vec<usize>,
    pub mbufs: u32,
    pub idle_sleep: Duration,
    /// Flow cache entries per worker (64 bytes each); 0 turns the cache off.
    pub flow_cache: usize,
}

#[derive(Debug)]
pub struct GatewayError(pub String);

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GatewayError {}

/// A dataplane with its ports open; workers run once `start` is called.
pub struct Gateway {
    pub pool: Mempool,
    pub ports: Vec<Port>,
    pub shared: Vec<Arc<WorkerShared>>,
    pub publisher: Option<Publisher<Tables>>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    spec: GatewaySpec,
    // Last: the EAL is cleaned up after everything that uses it is dropped.
    _eal: Eal,
}

impl Gateway {
    /// Starts the EAL and opens every port. Nothing is left running on error.
    pub fn open(spec: GatewaySpec) -> Result<Gateway, GatewayError> {
        let mut args: Vec<&str> = vec!["rampart"];
        args.extend(spec.eal_args.iter().map(String::as_str));
        let eal = Eal::init(&args).map_err(|e| GatewayError(format!("EAL: {e}")))?;
        let pool = Mempool::new_pktmbuf("rampart_mbufs", spec.mbufs, 256, 2048 + 128, -1)
            .map_err(|e| GatewayError(format!("mbuf pool: {e}")))?;
        let mut ports = Vec::new();
        for (i, devargs) in spec.ports.iter().enumerate() {
            let port = Port::probe(devargs).map_err(|e| GatewayError(format!("ports[{i}] `{devargs}`: {e}")))?;
            attach(port, spec.cores.len() as u16, &pool).map_err(|e| GatewayError(format!("ports[{i}] `{devargs}`: {e}")))?;
            ports.push(port);
        }
        let shared = spec.cores.iter().map(|_| Arc::new(WorkerShared::new())).collect();
        Ok(Gateway { _eal: eal, pool, ports, shared, publisher: None, stop: Arc::new(AtomicBool::new(false)), workers: vec![], spec })
    }

    /// Adds a port made outside `open` (ring ports for benches and tests, which can only be
    /// made once the EAL runs), set up as `open` sets up its own.
    pub fn attach(&mut self, port: Port) -> Result<(), GatewayError> {
        attach(port, self.spec.cores.len() as u16, &self.pool).map_err(|e| GatewayError(format!("port {}: {e}", port.id())))?;
        self.ports.push(port);
        Ok(())
    }

    pub fn macs(&self) -> Vec<Mac> {
        self.ports.iter().map(|p| p.mac_addr()).collect()
    }

    /// Publishes the first tables and starts one pinned worker per core.
    pub fn start(&mut self, tables: Tables) -> Result<(), GatewayError> {
        let (publisher, readers) = qsbr::publisher(tables, self.spec.cores.len());
        self.publisher = Some(publisher);
        for (id, (reader, &core)) in readers.into_iter().zip(&self.spec.cores).enumerate() {
            // Not looked up in core_affinity::get_core_ids(): that lists only the cores this
            // thread may run on, and the EAL has pinned it to the main lcore.
            let core_id = core_affinity::CoreId { id: core };
            let worker = Worker::new(
                id,
                self.ports.clone(),
                self.pool,
                self.shared[id].clone(),
                reader,
                self.stop.clone(),
                &self.spec,
            );
            let h = std::thread::Builder::new()
                .name(format!("worker{id}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_id) {
                        tracing::warn!(target: "dataplane", worker = id, core, "could not pin the worker to its core");
                    }
                    // An lcore id gives the worker its own mempool cache.
                    let _reg = dpdk_sys::register_thread();
                    worker.run();
                })
                .map_err(|e| GatewayError(format!("worker {id}: {e}")))?;
            self.workers.push(h);
        }
        Ok(())
    }

    pub fn publisher(&mut self) -> &mut Publisher<Tables> {
        self.publisher.as_mut().expect("started")
    }

    /// Stops the workers, then the ports.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
        for p in &self.ports {
            let _ = p.stop();
        }
    }
}

/// Configures a port with one RX and one TX queue per worker and starts it.
fn attach(port: Port, workers: u16, pool: &Mempool) -> Result<(), String> {
    let n = workers;
    let conf = PortConf { rx_queues: n, tx_queues: n, rx_desc: 1024, tx_desc: 1024, rss: n > 1, mtu: None };
    let granted = port.configure(&conf, pool).map_err(|e| e.to_string())?;
    if granted.rx_queues < n || granted.tx_queues < n {
        return Err(format!(
            "the device has {} RX and {} TX queues, {n} workers need {n} of each",
            granted.rx_queues, granted.tx_queues
        ));
    }
    // Some PMDs (net_null, net_ring) have no promiscuous mode; they need none.
    let _ = port.promiscuous(true);
    port.start().map_err(|e| e.to_string())
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}
