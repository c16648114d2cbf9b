//! Command-line options of `bench --pps` (hand-parsed: a dozen flags need no parser crate).

use rampart_dataplane::crypto::Engine;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
    Both,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Encrypt => "encrypt",
            Direction::Decrypt => "decrypt",
            Direction::Both => "both",
        }
    }
}

/// Frame sizes: one size, or the simple IMIX (7:4:1 of 64, 576 and 1500 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Size {
    Fixed(usize),
    Imix,
}

impl Size {
    /// The frame size of the i-th template.
    pub fn of(&self, i: usize) -> usize {
        match self {
            Size::Fixed(n) => *n,
            Size::Imix => [64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1500][i % 12],
        }
    }
    pub fn label(&self) -> String {
        match self {
            Size::Fixed(n) => n.to_string(),
            Size::Imix => "imix".into(),
        }
    }
}

/// `--rate`: a fixed offered load, or half of the saturated rate (found first, in the run).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    Pps(f64),
    Half,
}

#[derive(Clone, Debug)]
pub struct Args {
    pub size: Size,
    pub direction: Direction,
    pub workers: usize,
    pub sas: usize,
    pub flows: usize,
    pub policies: usize,
    pub duration: Duration,
    /// Selected with `crypto::select_engine` before any table is built.
    pub engine: Engine,
    pub hugepages: bool,
    /// Paced offered load (ring ports only); None: as fast as the worker takes frames.
    pub rate: Option<Rate>,
    /// SA replacements a second while measuring.
    pub rekeys: u64,
    /// Flow cache entries per worker; 0: off; None: sized to the flows.
    pub flow_cache: Option<usize>,
    pub ports: Vec<String>,
    /// Mbufs in the pool.
    pub mbufs: u32,
    /// Write the input frames (plaintext, or ESP for decrypt) to this pcap and exit.
    pub write_pcap: Option<String>,
    pub json: bool,
    pub warmup: Duration,
}

pub const USAGE: &str = "\
usage: bench --pps [options]      dataplane throughput and latency
       bench --ike [options]      IKEv2 setup rate and memory per IKE_SA (bench --ike --help)
  --size N|imix          frame bytes (Ethernet, no FCS): 64, 512, 1420, ... or imix (7:4:1 of 64/576/1500); default 64
  --direction D          encrypt | decrypt | both (encrypt then decrypt, two workers); default encrypt
  --workers N            workers (one queue pair each on every port); default 1
  --sas N                tunnels (1..1000000), policies spread flows over them; default 1
  --flows N              distinct 5-tuples; default 256
  --policies N           SPD entries (at least --sas); default = --sas
  --duration S           seconds measured (after 1 s of warm-up); default 5
  --engine E             crypto engine: auto | soft (ring) | ipsec-mb (intel-ipsec-mb AES-GCM); default auto
  --rate R|half           offered load in Mpps, or half of the saturated rate (measured first);
                         default: as fast as the worker takes frames. Latency is meaningful paced
  --rekeys N             replace N SAs a second while measuring (outbound: new SPI; inbound:
                         fresh entry, same SPI); the run reports frames lost
  --flow-cache N         flow cache entries per worker (default: the config default 65536, or
                         twice the flows if more, as an operator would size it; 0: off)
  --hugepages | --no-huge  EAL memory (default --no-huge)
  --ports DEV DEV        run against two devices (port 0 protected, port 1 unprotected), e.g.
                         'net_pcap0,rx_pcap=plain_64.pcap,infinite_rx=1' 'net_null1,no-rx=1';
                         rates from the output port's counters, no latency
  --mbufs N              mbufs in the pool (default 32767); net_pcap with infinite_rx keeps its
                         whole file in mbufs, so a pcap of 100,000 frames needs more
  --write-pcap FILE      write the frames this run would send (ESP for decrypt) to a pcap, for
                         `--ports 'net_pcap...,rx_pcap=FILE,infinite_rx=1'`, and exit
  --json                 one JSON object instead of the table
";

pub fn parse(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        size: Size::Fixed(64),
        direction: Direction::Encrypt,
        workers: 1,
        sas: 1,
        flows: 256,
        policies: 0,
        duration: Duration::from_secs(5),
        engine: Engine::Auto,
        hugepages: false,
        rate: None,
        rekeys: 0,
        flow_cache: None,
        ports: vec![],
        mbufs: 32767,
        write_pcap: None,
        json: false,
        warmup: Duration::from_secs(1),
    };
    let mut it = argv.iter().peekable();
    let num = |v: Option<&String>, what: &str| -> Result<usize, String> {
        v.ok_or(format!("{what} needs a value"))?.parse().map_err(|_| format!("{what}: not a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--pps" => {}
            "--size" => {
                let v = it.next().ok_or("--size needs a value")?;
                a.size = if v == "imix" {
                    Size::Imix
                } else {
                    let n: usize = v.parse().map_err(|_| "--size: a number or imix")?;
                    if !(64..=1500).contains(&n) {
                        return Err("--size: 64..=1500".into());
                    }
                    Size::Fixed(n)
                }
            }
            "--direction" => {
                a.direction = match it.next().map(String::as_str) {
                    Some("encrypt") => Direction::Encrypt,
                    Some("decrypt") => Direction::Decrypt,
                    Some("both") => Direction::Both,
                    _ => return Err("--direction: encrypt, decrypt or both".into()),
                }
            }
            "--workers" => a.workers = num(it.next(), "--workers")?.clamp(1, 16),
            "--sas" => {
                a.sas = num(it.next(), "--sas")?;
                if !(1..=1_000_000).contains(&a.sas) {
                    return Err("--sas: 1..=1000000".into());
                }
            }
            "--flows" => a.flows = num(it.next(), "--flows")?.max(1),
            "--policies" => a.policies = num(it.next(), "--policies")?,
            "--duration" => {
                let s: f64 = it.next().ok_or("--duration needs a value")?.parse().map_err(|_| "--duration: seconds")?;
                a.duration = Duration::from_secs_f64(s.max(0.1));
            }
            "--warmup" => {
                let s: f64 = it.next().ok_or("--warmup needs a value")?.parse().map_err(|_| "--warmup: seconds")?;
                a.warmup = Duration::from_secs_f64(s.max(0.0));
            }
            "--engine" => {
                a.engine = it.next().ok_or("--engine needs a value")?.parse().map_err(|e| format!("--engine: {e}"))?;
            }
            "--rate" => {
                let v = it.next().ok_or("--rate needs a value")?;
                a.rate = Some(if v == "half" {
                    Rate::Half
                } else {
                    let m: f64 = v.parse().map_err(|_| "--rate: Mpps or half")?;
                    Rate::Pps(m * 1e6)
                });
            }
            "--rekeys" => a.rekeys = num(it.next(), "--rekeys")? as u64,
            "--flow-cache" => a.flow_cache = Some(num(it.next(), "--flow-cache")?),
            "--hugepages" => a.hugepages = true,
            "--no-huge" => a.hugepages = false,
            "--ports" => {
                while let Some(p) = it.next_if(|p| !p.starts_with("--")) {
                    a.ports.push(p.clone());
                }
                if a.ports.len() != 2 {
                    return Err("--ports takes two devargs: protected, unprotected".into());
                }
            }
            "--mbufs" => a.mbufs = num(it.next(), "--mbufs")?.clamp(1023, 16 << 20) as u32,
            "--write-pcap" => a.write_pcap = Some(it.next().ok_or("--write-pcap needs a file")?.clone()),
            "--json" => a.json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    a.policies = a.policies.max(a.sas);
    if !a.ports.is_empty() && (a.rate.is_some() || a.rekeys > 0) {
        return Err("--rate and --rekeys need the generator: ring ports only".into());
    }
    if a.direction == Direction::Both && !a.ports.is_empty() {
        return Err("--direction both runs on ring ports only".into());
    }
    Ok(a)
}
