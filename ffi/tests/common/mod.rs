//! EAL arguments for test processes: no hugepages, no PCI, no shared config files, and a
//! per-process file prefix so test binaries running side by side never meet.

#![allow(dead_code)]

/// A program name (`tag`) then the EAL options.
pub fn eal_args(tag: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [tag, "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry", "-l", "0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push("--file-prefix".into());
    args.push(format!("rampart-{tag}-{}", std::process::id()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// Starts EAL; `with_program_name` says whether argv[0] is passed or left to `Eal::init`.
pub fn init(tag: &str, extra: &[&str], with_program_name: bool) -> dpdk_sys::Eal {
    let args = eal_args(tag, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let args = if with_program_name { &args[..] } else { &args[1..] };
    dpdk_sys::Eal::init(args).expect("EAL init")
}

/// An Ethernet frame of `len` bytes whose payload encodes `seq`, to tell frames apart.
pub fn frame(seq: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    for (i, b) in f[14..].iter_mut().enumerate() {
        *b = seq.wrapping_add(i as u8);
    }
    f
}
