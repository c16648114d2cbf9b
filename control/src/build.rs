//! Turns the validated config into dataplane tables: SAs, the SPD with each PROTECT policy's
//! SA, inbound SAs with the selectors they may carry, addresses and routes.

use crate::config::{ActionConfig, AlgConfig, Config, DirectionConfig, ModeConfig, SaConfig};
use crate::config::{parse_addr_prefix, parse_hex, parse_port_range, parse_prefix};
use rampart_dataplane::crypto::AeadAlg;
use rampart_dataplane::esp::{Lifetime, Mode, SaParams, UdpEncap};
use rampart_dataplane::l3::{LocalAddr, Locals, Mac, Route, Routes};
use rampart_dataplane::spd::{Action, Direction, Policy, Prefix, Selector};
use rampart_dataplane::tables::Tables;
use std::net::IpAddr;

/// A field path and what is wrong with it.
pub type FieldError = (String, String);

pub fn sa_params(s: &SaConfig) -> Result<SaParams, String> {
    Ok(SaParams {
        spi: s.spi.get(),
        alg: match s.alg {
            AlgConfig::AesGcm128 => AeadAlg::AesGcm128,
            AlgConfig::AesGcm256 => AeadAlg::AesGcm256,
            AlgConfig::Chacha20Poly1305 => AeadAlg::ChaCha20Poly1305,
        },
        key: parse_hex(&s.key)?,
        mode: match s.mode {
            ModeConfig::Tunnel => Mode::Tunnel,
            ModeConfig::Transport => Mode::Transport,
        },
        tunnel: s.local.zip(s.remote),
        encap: s.encap.as_ref().map(|e| UdpEncap { sport: e.sport, dport: e.dport }),
        esn: s.esn,
        replay_window: s.replay_window,
        lifetime: Lifetime {
            soft_bytes: s.lifetime.soft_bytes,
            hard_bytes: s.lifetime.hard_bytes,
            soft_packets: s.lifetime.soft_packets,
            hard_packets: s.lifetime.hard_packets,
        },
    })
}

fn prefix(s: &str, other: &str) -> Prefix {
    // `any` takes the family of the other side, so `any` to an IPv6 prefix is `::/0`.
    let (a, l) = parse_prefix(s).expect("validated");
    if s == "any" && parse_prefix(other).map(|(o, _)| o.is_ipv6()).unwrap_or(false) && other != "any" {
        return Prefix::new(IpAddr::from([0u16; 8]), 0);
    }
    Prefix::new(a, l)
}

/// The policies of the config as SPD entries. A policy with `any` on both sides covers both
/// families, so it becomes two entries. Returns the entries and, for each, the config index.
pub fn policies(cfg: &Config) -> (Vec<Policy>, Vec<usize>) {
    let mut out = Vec::new();
    let mut origin = Vec::new();
    for (i, p) in cfg.policies.iter().enumerate() {
        let range = |r: &Option<String>| r.as_deref().map(|r| parse_port_range(r).expect("validated")).unwrap_or((0, 65535));
        let mut sels = vec![Selector {
            src: prefix(&p.src, &p.dst),
            dst: prefix(&p.dst, &p.src),
            proto: p.proto,
            sport: range(&p.sport),
            dport: range(&p.dport),
        }];
        if p.src == "any" && p.dst == "any" {
            let v6 = Prefix::new(IpAddr::from([0u16; 8]), 0);
            sels.push(Selector { src: v6, dst: v6, ..sels[0] });
        }
        for sel in sels {
            out.push(Policy {
                id: i as u32,
                priority: p.priority,
                dir: match p.direction {
                    DirectionConfig::Outbound => Direction::Outbound,
                    DirectionConfig::Inbound => Direction::Inbound,
                },
                sel,
                action: action(p.action),
            });
            origin.push(i);
        }
    }
    (out, origin)
}

pub fn action(a: ActionConfig) -> Action {
    match a {
        ActionConfig::Protect => Action::Protect,
        ActionConfig::Bypass => Action::Bypass,
        ActionConfig::Discard => Action::Discard,
    }
}

/// The gateway's own addresses and its routes.
pub fn l3(cfg: &Config) -> (Locals, Routes) {
    let mut locals = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        for a in &p.addresses {
            let (addr, prefix_len) = parse_addr_prefix(a).expect("validated");
            locals.push(LocalAddr { port: i as u16, addr, prefix_len });
        }
    }
    let statics = cfg
        .routes
        .iter()
        .map(|r| {
            let (a, l) = parse_prefix(&r.dst).expect("validated");
            Route { dst: Prefix::new(a, l), via: r.via, port: cfg.port_index(&r.port).expect("validated") as u16 }
        })
        .collect();
    let routes = Routes::new(&locals, statics);
    (Locals::new(locals), routes)
}

/// Builds the first snapshot from a validated config.
pub fn tables(cfg: &Config, macs: Vec<Mac>, workers: usize) -> Result<Tables, FieldError> {
    Ok(crate::state::State::new(cfg, macs, workers)?.tables())
}
