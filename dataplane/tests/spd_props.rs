//! The SPD's decision structure must pick exactly the policy a priority-ordered linear scan
//! picks, on random, heavily overlapping policy sets of both families.

use proptest::prelude::*;
use rampart_dataplane::spd::{Action, Direction, FlowKey, Policy, Prefix, Selector, Selectors, Spd, SpdError};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// The reference: RFC 4301 order (lowest priority value, then input order), written against
/// `Prefix::contains` and `IpAddr`s rather than the SPD's bit layout.
fn linear(policies: &[Policy], dir: Direction, key: &FlowKey) -> Option<usize> {
    policies
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let s = &p.sel;
            p.dir == dir
                && s.src.contains(&key.src())
                && s.dst.contains(&key.dst())
                && s.proto.is_none_or(|x| x == key.proto())
                && s.sport.0 <= key.sport()
                && key.sport() <= s.sport.1
                && s.dport.0 <= key.dport()
                && key.dport() <= s.dport.1
        })
        .min_by_key(|(i, p)| (p.priority, *i))
        .map(|(i, _)| i)
}

/// Addresses from a small pool, so prefixes overlap and keys hit them.
fn v4_addr() -> impl Strategy<Value = Ipv4Addr> {
    (0u8..2, 0u8..3, prop::sample::select(vec![0u8, 1, 5, 128, 200, 255]))
        .prop_map(|(a, b, c)| Ipv4Addr::new(10, a, b, c))
}

fn v6_addr() -> impl Strategy<Value = Ipv6Addr> {
    (0u16..2, 0u16..3, prop::sample::select(vec![0u16, 1, 0x8000, 0xffff]))
        .prop_map(|(a, b, c)| Ipv6Addr::new(0x2001, 0xdb8, a, b, 0, 0, 0, c))
}

fn prefix(v6: bool) -> impl Strategy<Value = Prefix> {
    if v6 {
        (
            v6_addr(),
            prop_oneof![prop::sample::select(vec![0u8, 32, 47, 48, 64, 112, 127, 128]), 0u8..=128],
        )
            .prop_map(|(a, l)| Prefix::new(IpAddr::V6(a), l))
            .boxed()
    } else {
        (
            v4_addr(),
            prop_oneof![prop::sample::select(vec![0u8, 8, 15, 16, 23, 24, 31, 32]), 0u8..=32],
        )
            .prop_map(|(a, l)| Prefix::new(IpAddr::V4(a), l))
            .boxed()
    }
}

fn ports() -> impl Strategy<Value = (u16, u16)> {
    prop::sample::select(vec![
        (0, 65535),
        (0, 65535),
        (80, 80),
        (443, 443),
        (1000, 2000),
        (0, 1023),
        (1500, 65535),
    ])
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Outbound), Just(Direction::Inbound)]
}

fn policy() -> impl Strategy<Value = Policy> {
    let sel = any::<bool>().prop_flat_map(|v6| {
        (
            prefix(v6),
            prefix(v6),
            prop::option::of(prop::sample::select(vec![1u8, 6, 17])),
            ports(),
            ports(),
        )
            .prop_map(|(src, dst, proto, sport, dport)| Selector {
                src,
                dst,
                proto,
                sport,
                dport,
            })
    });
    (
        0u32..4,
        direction(),
        sel,
        prop_oneof![Just(Action::Protect), Just(Action::Bypass), Just(Action::Discard)],
    )
        .prop_map(|(priority, dir, sel, action)| Policy { id: 0, priority, dir, sel, action })
}

fn key() -> impl Strategy<Value = FlowKey> {
    let proto = prop::sample::select(vec![1u8, 6, 17, 50]);
    let port = prop::sample::select(vec![0u16, 80, 443, 1000, 1500, 2000, 3000]);
    prop_oneof![
        (v4_addr(), v4_addr(), proto.clone(), port.clone(), port.clone())
            .prop_map(|(s, d, p, sp, dp)| FlowKey::new(s.into(), d.into(), p, sp, dp).unwrap()),
        (v6_addr(), v6_addr(), proto, port.clone(), port)
            .prop_map(|(s, d, p, sp, dp)| FlowKey::new(s.into(), d.into(), p, sp, dp).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lookup_agrees_with_a_linear_scan(
        mut policies in prop::collection::vec(policy(), 0..60),
        keys in prop::collection::vec((direction(), key()), 1..64),
    ) {
        for (i, p) in policies.iter_mut().enumerate() {
            p.id = i as u32 + 100;
        }
        let spd = Spd::new(policies.clone()).unwrap();
        prop_assert_eq!(spd.policies(), &policies[..]);
        for (dir, k) in &keys {
            let got = spd.lookup(*dir, k);
            let want = linear(&policies, *dir, k);
            prop_assert_eq!(got.map(|(i, _)| i as usize), want, "{:?} {:?}", dir, k);
            if let Some((i, p)) = got {
                prop_assert_eq!(p, &policies[i as usize]);
                prop_assert!(p.sel.matches(k));
            }
        }
    }

    /// An inbound SA's selectors decide as a scan of them does, indexed (many) or not (few).
    #[test]
    fn sa_selectors_agree_with_a_scan(
        mut policies in prop::collection::vec(policy(), 0..40),
        keys in prop::collection::vec(key(), 1..64),
    ) {
        policies.iter_mut().for_each(|p| p.dir = Direction::Inbound);
        let list: Vec<Selector> = policies.iter().map(|p| p.sel).collect();
        let sel = Selectors::new(list.clone());
        prop_assert_eq!(sel.as_slice(), &list[..]);
        for k in &keys {
            prop_assert_eq!(sel.matches(k), linear(&policies, Direction::Inbound, k).is_some(), "{:?}", k);
        }
    }

    /// One selector, alone and as an SA's only selector (checked as a precomputed pattern).
    #[test]
    fn selector_matches_agrees_with_prefix_contains(p in policy(), k in key()) {
        let p = Policy { dir: Direction::Inbound, ..p };
        let want = linear(std::slice::from_ref(&p), Direction::Inbound, &k).is_some();
        prop_assert_eq!(p.sel.matches(&k), want);
        prop_assert_eq!(Selectors::new(vec![p.sel]).matches(&k), want);
    }

    #[test]
    fn flow_key_round_trips(k in key()) {
        let back = FlowKey::new(k.src(), k.dst(), k.proto(), k.sport(), k.dport()).unwrap();
        prop_assert_eq!(back, k);
        prop_assert_eq!(back.hash32(), k.hash32());
    }
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

#[test]
fn prefixes_parse_and_mask() {
    assert_eq!(p("10.1.0.5/24"), p("10.1.0.0/24"));
    assert_eq!(p("10.1.0.5/24").to_string(), "10.1.0.0/24");
    assert_eq!(p("10.1.0.5").len, 32);
    let too_long = Prefix::try_new("10.0.0.0".parse().unwrap(), 33);
    assert_eq!(too_long, Err(SpdError::InvalidPrefix("10.0.0.0/33".into())));
    // A literal with host bits set matches like its network.
    let lit = Prefix { addr: "10.1.0.5".parse().unwrap(), len: 24 };
    assert!(lit.contains(&"10.1.0.77".parse().unwrap()));
    assert_eq!(p("2001:db8::1/32").to_string(), "2001:db8::/32");
    assert_eq!(p("::/0"), Prefix::any_v6());
    assert_eq!(p("0.0.0.0/0"), Prefix::any_v4());
    assert!(p("10.1.0.0/24").contains(&"10.1.0.77".parse().unwrap()));
    assert!(!p("10.1.0.0/24").contains(&"10.1.1.0".parse().unwrap()));
    assert!(!p("0.0.0.0/0").contains(&"::1".parse().unwrap()));
    assert!(p("2001:db8::/32").contains(&"2001:db8:ffff::1".parse().unwrap()));
    for bad in ["10.0.0.0/33", "::/129", "foo", "10.0.0.0/", "10.0.0/8", "/8", "10.0.0.0/-1"] {
        assert!(matches!(bad.parse::<Prefix>(), Err(SpdError::InvalidPrefix(_))), "{bad}");
    }
}

/// The edges the generated selectors do not reach: host bits in a prefix written as a
/// literal, mixed families and empty port ranges (which match nothing), the placeholder key.
#[test]
fn selector_edges() {
    let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let literal = Prefix { addr: IpAddr::V4(v4("10.1.0.5")), len: 24 };
    let sel = Selector::new(literal, "192.0.2.0/24".parse().unwrap());
    let key = |src: &str, dst: &str, sport, dport| FlowKey::v4(v4(src).octets(), v4(dst).octets(), 6, sport, dport);
    for s in [Selectors::new(vec![sel]), Selectors::new(vec![sel, sel])] {
        assert!(s.matches(&key("10.1.0.77", "192.0.2.9", 1, 2)));
        assert!(!s.matches(&key("10.1.1.77", "192.0.2.9", 1, 2)));
        assert!(!s.matches(&FlowKey::ZERO));
    }
    let v6: Prefix = "2001:db8::/32".parse().unwrap();
    let mixed = Selector::new(Prefix::any_v4(), v6);
    let empty = Selector { sport: (10, 9), ..Selector::new(Prefix::any_v4(), Prefix::any_v4()) };
    let ports = Selector { sport: (0, 0), dport: (65535, 65535), ..Selector::new(Prefix::any_v4(), Prefix::any_v4()) };
    for k in [key("10.0.0.1", "10.0.0.2", 9, 10), key("10.0.0.1", "10.0.0.2", 10, 10)] {
        assert!(!Selectors::new(vec![mixed]).matches(&k) && !mixed.matches(&k));
        assert!(!Selectors::new(vec![empty]).matches(&k) && !empty.matches(&k));
    }
    assert!(Selectors::new(vec![ports]).matches(&key("1.1.1.1", "2.2.2.2", 0, 65535)));
    assert!(!Selectors::new(vec![ports]).matches(&key("1.1.1.1", "2.2.2.2", 1, 65535)));
    assert!(!Selectors::new(vec![ports]).matches(&key("1.1.1.1", "2.2.2.2", 0, 65534)));
}

/// `SaEntry::prefetch_in` fetches the lines the one-selector check reads from the selectors'
/// address alone: they must start on a line.
#[test]
fn selectors_start_on_a_line_in_an_sa_entry() {
    assert_eq!(std::mem::offset_of!(rampart_dataplane::tables::SaEntry, selectors) % 64, 0);
}

#[test]
fn bad_policy_sets_are_rejected() {
    let pol =
        |id, sel| Policy { id, priority: 0, dir: Direction::Outbound, sel, action: Action::Bypass };
    let ok = Selector::new(p("10.0.0.0/8"), p("10.0.0.0/8"));
    let mixed = Selector::new(p("10.0.0.0/8"), p("2001:db8::/32"));
    assert_eq!(Spd::new(vec![pol(1, mixed)]).err(), Some(SpdError::FamilyMismatch { id: 1 }));
    let empty = Selector { dport: (10, 9), ..ok };
    assert_eq!(Spd::new(vec![pol(2, empty)]).err(), Some(SpdError::EmptyPortRange { id: 2 }));
    assert_eq!(Spd::new(vec![pol(3, ok), pol(3, ok)]).err(), Some(SpdError::DuplicateId { id: 3 }));
    assert!(Spd::new(vec![])
        .unwrap()
        .lookup(Direction::Outbound, &FlowKey::v4([1; 4], [2; 4], 6, 1, 2))
        .is_none());
}

#[test]
fn priority_then_input_order() {
    let sel = Selector::new(p("10.0.0.0/8"), p("192.168.0.0/16"));
    let narrow = Selector {
        proto: Some(6),
        dport: (443, 443),
        ..Selector::new(p("10.1.2.3"), p("192.168.1.0/24"))
    };
    let pols = vec![
        Policy { id: 1, priority: 10, dir: Direction::Outbound, sel, action: Action::Protect },
        Policy { id: 2, priority: 10, dir: Direction::Outbound, sel, action: Action::Discard },
        Policy {
            id: 3,
            priority: 5,
            dir: Direction::Outbound,
            sel: narrow,
            action: Action::Bypass,
        },
        Policy { id: 4, priority: 0, dir: Direction::Inbound, sel, action: Action::Discard },
    ];
    let spd = Spd::new(pols).unwrap();
    let k = |dport| FlowKey::v4([10, 1, 2, 3], [192, 168, 1, 9], 6, 40000, dport);
    assert_eq!(spd.lookup(Direction::Outbound, &k(443)).map(|(i, p)| (i, p.id)), Some((2, 3)));
    assert_eq!(spd.lookup(Direction::Outbound, &k(80)).map(|(i, p)| (i, p.id)), Some((0, 1)));
    assert_eq!(
        spd.lookup(Direction::Inbound, &k(80)).map(|(_, p)| p.action),
        Some(Action::Discard)
    );
    assert!(spd
        .lookup(Direction::Outbound, &FlowKey::v4([11, 0, 0, 1], [192, 168, 1, 9], 6, 1, 80))
        .is_none());
}

/// The site-to-site shape: one /24 per tunnel, a local bypass above them and a default
/// discard below. Prints ns per lookup; asserts nothing about time.
#[test]
fn lookup_cost_with_10000_policies() {
    let mut pols = vec![Policy {
        id: 0,
        priority: 10,
        dir: Direction::Outbound,
        sel: Selector::new(p("10.0.0.0/16"), p("10.0.0.0/16")),
        action: Action::Bypass,
    }];
    for i in 0..10_000u32 {
        let dst = Prefix::new(IpAddr::V4(Ipv4Addr::new(172, 16 + (i >> 8) as u8, i as u8, 0)), 24);
        let sel = Selector::new(p("10.0.0.0/16"), dst);
        pols.push(Policy {
            id: i + 1,
            priority: 100,
            dir: Direction::Outbound,
            sel,
            action: Action::Protect,
        });
    }
    pols.push(Policy {
        id: 20_000,
        priority: 1000,
        dir: Direction::Outbound,
        sel: Selector::new(Prefix::any_v4(), Prefix::any_v4()),
        action: Action::Discard,
    });
    let big = Spd::new(pols.clone()).unwrap();
    let one = Spd::new(vec![pols[1].clone()]).unwrap();
    let keys: Vec<FlowKey> = (0..4096u32)
        .map(|i| {
            let t = i.wrapping_mul(2_654_435_761) % 10_000;
            FlowKey::v4(
                [10, 0, (i >> 8) as u8, i as u8],
                [172, 16 + (t >> 8) as u8, t as u8, 7],
                17,
                1000 + i as u16,
                4500,
            )
        })
        .collect();
    for (i, k) in keys.iter().enumerate().step_by(97) {
        assert_eq!(
            big.lookup(Direction::Outbound, k).map(|(i, _)| i),
            linear(&pols, Direction::Outbound, k).map(|i| i as u32),
            "{i}"
        );
    }
    // The best of a few runs: the cores are shared.
    let time = |spd: &Spd, keys: &[FlowKey]| {
        let n = 200_000 / keys.len();
        (0..5)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n {
                    for k in keys {
                        black_box(spd.lookup(Direction::Outbound, black_box(k)));
                    }
                }
                t.elapsed().as_nanos() as f64 / (n * keys.len()) as f64
            })
            .fold(f64::MAX, f64::min)
    };
    let ns_big = time(&big, &keys);
    let ns_one = time(&one, &keys[..1]);
    let miss: Vec<FlowKey> =
        keys.iter().map(|k| FlowKey::v4([10, 9, 9, 9], [8, 8, 8, 8], 17, k.sport(), 53)).collect();
    let ns_default = time(&big, &miss);
    println!("spd lookup: 10,002 policies {ns_big:.1} ns (to the default: {ns_default:.1} ns), 1 policy {ns_one:.1} ns");
}
