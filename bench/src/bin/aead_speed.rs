//! aead-speed: ESP-shaped AES-128-GCM seal and open rates of each crypto engine on one core,
//! through `crypto::Aead` (the calls `esp` makes per packet): in place, a 12-byte nonce
//! (salt || 8-byte IV), 8 bytes of AAD (SPI || seq), a detached 16-byte ICV.
//!
//! An in-place open turns its ciphertext into plaintext, and the next open needs ciphertext
//! again. GCM's counter mode makes that free: sealing the ciphertext C with the same nonce
//! gives back the plaintext P with an ICV T2 over P, so opening P under T2 gives C again.
//! Open is timed on one buffer that alternates (C, T1) -> P, (P, T2) -> C, each open
//! verified, with only the 16-byte ICV written between calls.
//! Each figure is the median of `--runs` runs of `--ms` milliseconds.

use rampart_dataplane::crypto::{self, Aead, AeadAlg, Engine, EspAad};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [64, 512, 1420];

const USAGE: &str = "usage: aead-speed [--ms N] [--runs N] [--json]
  --ms N     milliseconds per run (default 100)
  --runs N   runs per figure, the median is reported (default 3)
  --json     one JSON object per line instead of the table";

struct Opts {
    run: Duration,
    runs: usize,
    json: bool,
}

fn parse(argv: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        run: Duration::from_millis(100),
        runs: 3,
        json: false,
    };
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> Result<u64, String> {
            it.next()
                .ok_or(format!("{what} needs a value"))?
                .parse()
                .map_err(|_| format!("{what}: not a number"))
        };
        match a.as_str() {
            "--ms" => o.run = Duration::from_millis(num("--ms")?.clamp(10, 10_000)),
            "--runs" => o.runs = num("--runs")?.clamp(1, 99) as usize,
            "--json" => o.json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Calls `f` for `dur` and returns calls per second.
fn rate(dur: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..256 {
            f();
        }
        n += 256;
        let t = start.elapsed();
        if t >= dur {
            return n as f64 / t.as_secs_f64();
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// (seal, open) operations per second for `len`-byte payloads, medians of `runs` runs.
fn measure(a: &Aead, len: usize, o: &Opts) -> (f64, f64) {
    let aad = EspAad::new(0xc0de_0101, 7, false);
    let iv = 7u64.to_be_bytes();
    let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
    // C = seal(P) under T1; sealing C again gives P back, under T2 (see the module comment).
    let mut c = pt.clone();
    let t1 = a.seal_in_place(iv, aad.as_slice(), &mut c).unwrap();
    let mut p = c.clone();
    let t2 = a.seal_in_place(iv, aad.as_slice(), &mut p).unwrap();
    assert_eq!(p, pt, "counter mode: sealing the ciphertext again gives the plaintext");
    let icvs = [t1, t2];
    let (mut seals, mut opens) = (vec![], vec![]);
    for _ in 0..o.runs {
        let mut buf = pt.clone();
        seals.push(rate(o.run, || {
            black_box(a.seal_in_place(iv, aad.as_slice(), black_box(&mut buf[..])).unwrap());
        }));
        let mut buf = c.clone();
        buf.extend_from_slice(&t1);
        let mut k = 0;
        opens.push(rate(o.run, || {
            let n = a
                .open_in_place(iv, aad.as_slice(), black_box(&mut buf[..]))
                .expect("the ICV verifies");
            black_box(n);
            k ^= 1;
            buf[len..].copy_from_slice(&icvs[k]);
        }));
    }
    (median(seals), median(opens))
}

fn main() {
    // Piped into `head` or `grep -m`, it ends quietly as C tools do, not with a panic.
    // SAFETY: restoring the default disposition of a signal, before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&argv) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("aead-speed: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    // One core, the last: away from core 0's interrupts where the machine has more than one.
    let core = core_affinity::get_core_ids().and_then(|c| c.last().copied());
    let pinned = core.is_some_and(core_affinity::set_for_current);
    let mut engines = vec![Engine::Soft];
    match crypto::resolve(Engine::IpsecMb) {
        Ok(_) => engines.push(Engine::IpsecMb),
        Err(why) => eprintln!("aead-speed: ipsec-mb not measured: {why}"),
    }
    let keymat: Vec<u8> = (0..AeadAlg::AesGcm128.keymat_len() as u8)
        .map(|i| i.wrapping_mul(37) ^ 0xa5)
        .collect();
    if !o.json {
        println!(
            "AES-128-GCM, in place, 12-byte nonce, 8-byte AAD, 16-byte detached ICV; {}; median of {} runs of {} ms",
            match (pinned, core) {
                (true, Some(c)) => format!("pinned to cpu {}", c.id),
                _ => "not pinned".into(),
            },
            o.runs,
            o.run.as_millis()
        );
        if let Ok(m) = dpdk_sys::imb::manager() {
            let (safe_data, safe_param) = m.safe_data_and_param();
            println!(
                "intel-ipsec-mb {}: arch {}, VAES+VPCLMULQDQ {}, SAFE_DATA {}, SAFE_PARAM {}",
                m.version(),
                m.arch().name(),
                if m.vaes() { "yes" } else { "no" },
                if safe_data { "on" } else { "off" },
                if safe_param { "on" } else { "off" }
            );
        }
        print!("{:<48} {:<5}", "engine", "op");
        for n in SIZES {
            print!(" {:>22}", format!("{n} B"));
        }
        println!();
    }
    for e in engines {
        let a = Aead::with_engine(e, AeadAlg::AesGcm128, &keymat).expect("key");
        let name = crypto::resolve(e).expect("resolved above").name();
        // Warm-up: clocks, caches, the vector units' power state.
        measure(
            &a,
            1420,
            &Opts {
                run: Duration::from_millis(50),
                runs: 1,
                json: false,
            },
        );
        let figures: Vec<(usize, f64, f64)> = SIZES
            .iter()
            .map(|&n| {
                let (s, op) = measure(&a, n, &o);
                (n, s, op)
            })
            .collect();
        if o.json {
            for (n, s, op) in &figures {
                println!(
                    "{{\"engine\": \"{}\", \"name\": \"{name}\", \"bytes\": {n}, \"seal_mops\": {:.3}, \"open_mops\": {:.3}, \"seal_gbps\": {:.3}, \"open_gbps\": {:.3}}}",
                    e.as_str(), s / 1e6, op / 1e6, s * *n as f64 * 8.0 / 1e9, op * *n as f64 * 8.0 / 1e9
                );
            }
            continue;
        }
        for (op, pick) in [("seal", 1usize), ("open", 2)] {
            print!("{name:<48} {op:<5}");
            for &(n, s, o) in &figures {
                let r = if pick == 1 { s } else { o };
                print!(
                    " {:>22}",
                    format!("{:.2} Mops {:.2} Gbit/s", r / 1e6, r * n as f64 * 8.0 / 1e9)
                );
            }
            println!();
        }
    }
}
