//! Ethernet ports (`rte_ethdev`): probing a device, configuring queues, burst rx/tx, stats.

use arrayvec::ArrayVec;
use std::ffi::{c_char, CStr};

use crate::mbuf::{fill_burst, give_burst};
use crate::{sys, Error, Mbuf, Mempool, Result};

/// The RSS hash types Rampart asks for (IPv4/IPv6, TCP, UDP, SCTP, IPv6-ex and ESP), masked
/// by what the PMD offers. Spelled out because bindgen cannot evaluate `RTE_ETH_RSS_*`.
const RSS_HF: u64 = 0x3ffc | (0x7 << 15) | (1 << 27);

/// An ethdev port id. `Copy`, `Send` and `Sync` like the id it is: DPDK's control calls are
/// thread safe, but each rx/tx queue must be polled by one thread at a time — that
/// partitioning (one queue per worker) is the caller's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port(u16);

/// What `Port::configure` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConf {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Spread flows over the rx queues, if the PMD can.
    pub rss: bool,
    pub mtu: Option<u16>,
}

impl Default for PortConf {
    fn default() -> Self {
        PortConf { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, rss: false, mtu: None }
    }
}

/// What `Port::configure` got: queue counts clamped to the device's maxima, descriptor
/// counts adjusted to its limits, and whether RSS is on (with which hash types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub rss: bool,
    pub rss_hf: u64,
}

/// The parts of `rte_eth_dev_info` Rampart looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// RSS hash types the PMD supports (`flow_type_rss_offloads`); 0 means no RSS.
    pub rss_offloads: u64,
    pub min_mtu: u16,
    pub max_mtu: u16,
    /// The kernel interface index, for PMDs that have one (0 otherwise).
    pub if_index: u32,
}

impl DevInfo {
    pub fn rss_capable(&self) -> bool {
        self.rss_offloads != 0
    }
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    /// Mb/s (0 when unknown).
    pub speed_mbps: u32,
}

impl Port {
    /// Probes a device from `devargs` (a vdev such as `net_af_packet0,iface=veth0` or
    /// `net_null0`, or a PCI address) and returns its port. A device EAL already probed
    /// (e.g. from `--vdev`) is found rather than probed again.
    pub fn probe(devargs: &str) -> Result<Port> {
        let name = devargs.split(',').next().unwrap_or(devargs);
        if let Ok(port) = Port::by_name(name) {
            return Ok(port);
        }
        let c = crate::cstring("rte_dev_probe", devargs)?;
        // SAFETY: c is a valid C string; DPDK copies what it keeps.
        let ret = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        if ret < 0 && -ret != libc::EEXIST {
            return Err(Error::ret("rte_dev_probe", ret));
        }
        Port::by_name(name)
    }

    /// The port whose ethdev name is `name`.
    pub fn by_name(name: &str) -> Result<Port> {
        const CALL: &str = "rte_eth_dev_get_port_by_name";
        let c = crate::cstring(CALL, name)?;
        let mut id = 0u16;
        // SAFETY: c is a valid C string, id a valid out pointer.
        Error::check(CALL, unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) })?;
        Ok(Port(id))
    }

    /// Every port EAL knows.
    pub fn all() -> Vec<Port> {
        let mut ports = Vec::new();
        // SAFETY: rte_eth_find_next only reads the port table.
        let mut id = unsafe { sys::rte_eth_find_next(0) };
        while u32::from(id) < sys::RTE_MAX_ETHPORTS {
            ports.push(Port(id));
            // SAFETY: as above.
            id = unsafe { sys::rte_eth_find_next(id + 1) };
        }
        ports
    }

    pub fn id(&self) -> u16 {
        self.0
    }

    /// The ethdev name (`net_ring0`, a PCI address...); `port<id>` if the id is not valid.
    pub fn name(&self) -> String {
        let mut buf = [0 as c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: buf has the RTE_ETH_NAME_MAX_LEN bytes the call may write.
        match unsafe { sys::rte_eth_dev_get_name_by_port(self.0, buf.as_mut_ptr()) } {
            0 => crate::from_cbuf(&buf),
            _ => format!("port{}", self.0),
        }
    }

    fn raw_info(&self) -> Result<sys::rte_eth_dev_info> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid out pointer of the right type.
        Error::check("rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(self.0, &mut info) })?;
        Ok(info)
    }

    pub fn dev_info(&self) -> Result<DevInfo> {
        let i = self.raw_info()?;
        let driver = if i.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-NULL driver_name is the PMD's static NUL-terminated name.
            unsafe { CStr::from_ptr(i.driver_name) }.to_string_lossy().into_owned()
        };
        Ok(DevInfo {
            driver,
            max_rx_queues: i.max_rx_queues,
            max_tx_queues: i.max_tx_queues,
            rss_offloads: i.flow_type_rss_offloads,
            min_mtu: i.min_mtu,
            max_mtu: i.max_mtu,
            if_index: i.if_index,
        })
    }

    /// Configures the port and sets up its queues (rx queues take mbufs from `pool`, which
    /// must outlive the port's use). Queue counts are clamped to what the device offers and
    /// RSS is enabled only if asked for and supported; the result says what was granted.
    /// The port must be stopped.
    pub fn configure(&self, conf: &PortConf, pool: &Mempool) -> Result<Granted> {
        let info = self.raw_info()?;
        let rx_queues = conf.rx_queues.clamp(1, info.max_rx_queues.max(1));
        let tx_queues = conf.tx_queues.clamp(1, info.max_tx_queues.max(1));
        let rss_hf = if conf.rss { RSS_HF & info.flow_type_rss_offloads } else { 0 };

        let mut eth = sys::rte_eth_conf::default();
        if rss_hf != 0 {
            eth.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            eth.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        if let Some(mtu) = conf.mtu {
            eth.rxmode.mtu = mtu.into();
        }
        // SAFETY: eth is a fully initialized rte_eth_conf; DPDK copies it.
        let ret = unsafe { sys::rte_eth_dev_configure(self.0, rx_queues, tx_queues, &eth) };
        Error::check("rte_eth_dev_configure", ret)?;

        let (mut rx_desc, mut tx_desc) = (conf.rx_desc, conf.tx_desc);
        // SAFETY: both are valid in/out pointers.
        let ret = unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.0, &mut rx_desc, &mut tx_desc) };
        Error::check("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;

        // SOCKET_ID_ANY (-1) as the unsigned the setup calls take is what DPDK expects.
        // SAFETY: plain query on a valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.0) } as u32;
        for q in 0..rx_queues {
            // SAFETY: NULL rxconf means the PMD's defaults; pool is a live pktmbuf pool.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(self.0, q, rx_desc, socket, std::ptr::null(), pool.as_ptr())
            };
            Error::check("rte_eth_rx_queue_setup", ret)?;
        }
        for q in 0..tx_queues {
            // SAFETY: NULL txconf means the PMD's defaults.
            let ret = unsafe { sys::rte_eth_tx_queue_setup(self.0, q, tx_desc, socket, std::ptr::null()) };
            Error::check("rte_eth_tx_queue_setup", ret)?;
        }
        Ok(Granted { rx_queues, tx_queues, rx_desc, tx_desc, rss: rss_hf != 0, rss_hf })
    }

    pub fn start(&self) -> Result<()> {
        // SAFETY: plain control call on a port id; DPDK validates it.
        Error::check("rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(self.0) }).map(drop)
    }

    pub fn stop(&self) -> Result<()> {
        // SAFETY: as start().
        Error::check("rte_eth_dev_stop", unsafe { sys::rte_eth_dev_stop(self.0) }).map(drop)
    }

    /// Releases the port (stop it first); its id is invalid afterwards.
    pub fn close(&self) -> Result<()> {
        // SAFETY: as start().
        Error::check("rte_eth_dev_close", unsafe { sys::rte_eth_dev_close(self.0) }).map(drop)
    }

    /// The port's MAC address (all zeros if the id is not valid).
    pub fn mac_addr(&self) -> [u8; 6] {
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: mac is a valid out pointer; on failure it stays zeroed.
        unsafe { sys::rte_eth_macaddr_get(self.0, &mut mac) };
        mac.addr_bytes
    }

    pub fn promiscuous(&self, on: bool) -> Result<()> {
        // SAFETY: plain control calls on a port id.
        let ret = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.0)
            } else {
                sys::rte_eth_promiscuous_disable(self.0)
            }
        };
        Error::check("rte_eth_promiscuous_enable/disable", ret).map(drop)
    }

    pub fn set_link_up(&self) -> Result<()> {
        // SAFETY: plain control call on a port id.
        Error::check("rte_eth_dev_set_link_up", unsafe { sys::rte_eth_dev_set_link_up(self.0) }).map(drop)
    }

    /// The link state, without waiting for autonegotiation.
    pub fn link(&self) -> Result<Link> {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: l is a valid out pointer.
        Error::check("rte_eth_link_get_nowait", unsafe { sys::rte_eth_link_get_nowait(self.0, &mut l) })?;
        Ok(Link { up: l.link_status() != 0, speed_mbps: l.link_speed })
    }

    /// The port's counters (all zero if the id is not valid).
    pub fn stats(&self) -> PortStats {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: s is a valid out pointer; on failure it stays zeroed.
        unsafe { sys::rte_eth_stats_get(self.0, &mut s) };
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: plain control call on a port id.
        Error::check("rte_eth_stats_reset", unsafe { sys::rte_eth_stats_reset(self.0) }).map(drop)
    }

    /// Receives packets from `queue` into the free room of `bufs` and returns how many came.
    /// Only one thread at a time may poll a given queue.
    #[inline]
    pub fn rx_burst<const N: usize>(&self, queue: u16, bufs: &mut ArrayVec<Mbuf, N>) -> usize {
        // SAFETY: the PMD writes owned mbufs and returns their count.
        unsafe { fill_burst(bufs, |p, n| sys::shim_rte_eth_rx_burst(self.0, queue, p, n.min(u16::MAX.into()) as u16).into()) }
    }

    /// Transmits `bufs` on `queue` and returns how many the PMD took: those leave `bufs`, the
    /// unsent rest stay, in order, for the caller to retry or drop. Only one thread at a time
    /// may use a given queue.
    #[inline]
    pub fn tx_burst<const N: usize>(&self, queue: u16, bufs: &mut ArrayVec<Mbuf, N>) -> usize {
        // SAFETY: the PMD takes ownership of the first k mbufs, which it returns as k.
        unsafe { give_burst(bufs, |p, n| sys::shim_rte_eth_tx_burst(self.0, queue, p, n.min(u16::MAX.into()) as u16).into()) }
    }
}
