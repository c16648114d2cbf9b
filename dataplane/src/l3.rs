//! The L3 around ESP: the gateway's own addresses, static and connected routes, and the
//! neighbour (ARP/NDP) table that turns a next hop into an Ethernet address.

use crate::spd::Prefix;
use crate::hash::FastMap;
use std::net::IpAddr;

pub type Mac = [u8; 6];

/// An address the gateway owns on one of its ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalAddr {
    pub port: u16,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// A route: packets to `dst` leave by `port`, to `via` or (when connected) to the destination itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: Prefix,
    pub via: Option<IpAddr>,
    pub port: u16,
}

/// Where a packet goes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub port: u16,
    pub addr: IpAddr,
}

/// Longest-prefix-match routing over a handful of static and connected routes.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    // Sorted by prefix length, longest first, so the first match is the longest.
    routes: Vec<Route>,
}

impl Routes {
    /// Connected routes come from the local addresses; static routes are added to them.
    pub fn new(local: &[LocalAddr], statics: Vec<Route>) -> Self {
        let mut routes: Vec<Route> = local
            .iter()
            .map(|l| Route { dst: Prefix::new(l.addr, l.prefix_len), via: None, port: l.port })
            .chain(statics)
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.dst.len));
        Routes { routes }
    }

    #[inline]
    pub fn lookup(&self, dst: IpAddr) -> Option<NextHop> {
        let r = self.routes.iter().find(|r| r.dst.contains(&dst))?;
        Some(NextHop { port: r.port, addr: r.via.unwrap_or(dst) })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }
}

/// The resolved neighbours, keyed by (port, address).
#[derive(Clone, Debug, Default)]
pub struct Neighbors {
    map: FastMap<(u16, IpAddr), Mac>,
}

impl Neighbors {
    #[inline]
    pub fn get(&self, port: u16, addr: IpAddr) -> Option<&Mac> {
        self.map.get(&(port, addr))
    }
    /// Records a neighbour; returns true when that changed the table.
    pub fn learn(&mut self, port: u16, addr: IpAddr, mac: Mac) -> bool {
        self.map.insert((port, addr), mac) != Some(mac)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&(u16, IpAddr), &Mac)> {
        self.map.iter()
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The gateway's own addresses.
#[derive(Clone, Debug, Default)]
pub struct Locals {
    addrs: Vec<LocalAddr>,
    /// The `filter_bit` of every address: one whose bit is clear is not local, so most
    /// packets (transit, decrypted) are settled without a scan, however many addresses.
    filter: u64,
}

/// A bit picked by an address's last byte (hosts of one subnet differ there).
#[inline]
fn filter_bit(addr: IpAddr) -> u64 {
    let last = match addr {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    };
    1 << (last & 63)
}

impl Locals {
    pub fn new(addrs: Vec<LocalAddr>) -> Self {
        let filter = addrs.iter().fold(0, |f, l| f | filter_bit(l.addr));
        Locals { addrs, filter }
    }
    #[inline]
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.filter & filter_bit(addr) != 0 && self.addrs.iter().any(|l| l.addr == addr)
    }
    #[inline]
    pub fn owns_on(&self, port: u16, addr: IpAddr) -> bool {
        self.addrs.iter().any(|l| l.port == port && l.addr == addr)
    }
    /// The address to use as source on `port` towards `to`: one on the same subnet if there
    /// is one, else the first of the family.
    pub fn source_for(&self, port: u16, to: IpAddr) -> Option<IpAddr> {
        let on_port = || self.addrs.iter().filter(|l| l.port == port && l.addr.is_ipv4() == to.is_ipv4());
        on_port()
            .find(|l| Prefix::new(l.addr, l.prefix_len).contains(&to))
            .or_else(|| on_port().next())
            .map(|l| l.addr)
    }
    pub fn all(&self) -> &[LocalAddr] {
        &self.addrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_local_exactly_the_own_addresses() {
        // Enough addresses that their filter bits collide with outsiders' (last bytes 0..=99,
        // and 64 apart), both families.
        let own: Vec<IpAddr> = (0..100u8)
            .map(|i| IpAddr::from([10, 0, i, i]))
            .chain((0..5u8).map(|i| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16])))
            .collect();
        let locals = Locals::new(own.iter().map(|&addr| LocalAddr { port: 0, addr, prefix_len: 24 }).collect());
        for a in &own {
            assert!(locals.is_local(*a), "{a}");
        }
        for i in 0..=255u8 {
            for b in [IpAddr::from([10, 0, 200, i]), IpAddr::from([10, 1, i, i]), IpAddr::from([0x2001, 0xdb8, 1, 0, 0, 0, 0, i as u16])] {
                assert!(!locals.is_local(b), "{b}");
            }
        }
        assert!(!Locals::default().is_local(IpAddr::from([0, 0, 0, 0])));
    }
}
