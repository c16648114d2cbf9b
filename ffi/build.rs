//! Finds the system DPDK with pkg-config, compiles the C shim for DPDK's inline functions,
//! and generates the raw bindings with bindgen. When intel-ipsec-mb is installed (x86_64),
//! also compiles its small shim (`shim/imb.c`), links `IPSec_MB` and sets `cfg(rampart_imb)`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL_HINT: &str = "apt-get install libdpdk-dev dpdk pkg-config libclang-dev clang";

/// Stops the build with what is missing and how to install it (an exit, not a panic, so
/// the message is not buried under a backtrace).
fn fail(what: &str) -> ! {
    eprintln!("\ndpdk-sys: {what}\nInstall the build dependencies with:\n    {INSTALL_HINT}\n");
    std::process::exit(1);
}

fn pkg_config_bin() -> String {
    env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into())
}

/// The raw `--cflags` words: the pkg-config crate keeps only -I and -D, but DPDK also needs
/// `-include rte_config.h` and a `-march` for its SIMD headers.
fn dpdk_cflags() -> Vec<String> {
    let out = Command::new(pkg_config_bin())
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run pkg-config ({e})")));
    if !out.status.success() {
        fail("pkg-config cannot find libdpdk");
    }
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
}

/// The directory of the PMD plugins (`<libdir>/dpdk/pmds-<abi>`), empty when there is none.
fn pmd_dir(lib: &pkg_config::Library) -> String {
    let mut dirs: Vec<PathBuf> = lib.link_paths.clone();
    if let Ok(out) = Command::new(pkg_config_bin()).args(["--variable=libdir", "libdpdk"]).output() {
        let libdir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !libdir.is_empty() {
            dirs.push(libdir.into());
        }
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir.join("dpdk")) else { continue };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("pmds-")))
            .collect();
        found.sort();
        if let Some(p) = found.pop() {
            return p.to_string_lossy().into_owned();
        }
    }
    String::new()
}

const IMB_HINT: &str = "apt-get install libipsec-mb-dev";

/// The directory holding `intel-ipsec-mb.h` when the library is installed (header and
/// `libIPSec_MB`) and the target is x86_64; `None` otherwise, or when
/// `RAMPART_NO_IPSEC_MB` is set (to build and test the fallback on a machine that has it).
fn find_ipsec_mb() -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=RAMPART_NO_IPSEC_MB");
    println!("cargo:rerun-if-env-changed=IPSEC_MB_DIR");
    if env::var_os("RAMPART_NO_IPSEC_MB").is_some() {
        println!("cargo:warning=dpdk-sys: RAMPART_NO_IPSEC_MB is set: built without intel-ipsec-mb (AES-GCM on ring only)");
        return None;
    }
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("x86_64") {
        return None;
    }
    // IPSEC_MB_DIR: an install prefix (include/ and lib/ below it), for a library built from source.
    let prefix = env::var_os("IPSEC_MB_DIR").map(PathBuf::from);
    let include_dirs: Vec<PathBuf> = match &prefix {
        Some(p) => vec![p.join("include")],
        None => vec!["/usr/include".into(), "/usr/local/include".into()],
    };
    let lib_dirs: Vec<PathBuf> = match &prefix {
        Some(p) => vec![p.join("lib"), p.join("lib64")],
        None => ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/usr/local/lib64"]
            .iter()
            .map(PathBuf::from)
            .collect(),
    };
    let include = include_dirs.into_iter().find(|d| d.join("intel-ipsec-mb.h").is_file());
    let lib = lib_dirs
        .into_iter()
        .find(|d| d.join("libIPSec_MB.so").exists() || d.join("libIPSec_MB.a").exists());
    for d in include.iter() {
        println!("cargo:rerun-if-changed={}", d.join("intel-ipsec-mb.h").display());
    }
    match (include, lib) {
        (Some(include), Some(lib)) => {
            println!("cargo:rustc-link-search=native={}", lib.display());
            Some(include)
        }
        _ => {
            println!(
                "cargo:warning=dpdk-sys: intel-ipsec-mb not found: AES-GCM falls back to ring (slower); for the fast engine: {IMB_HINT}"
            );
            None
        }
    }
}

/// Compiles `shim/imb.c`, links `IPSec_MB` and writes `imb_bindings.rs` (the shim's
/// functions and `struct gcm_key_data`, nothing else).
fn build_ipsec_mb(shim: &Path, include: &Path, out_dir: &Path) {
    cc::Build::new()
        .file(shim.join("imb.c"))
        .include(shim)
        .include(include)
        .flag_if_supported("-Wall")
        .compile("rampart_imb_shim");
    println!("cargo:rustc-link-lib=dylib=IPSec_MB");
    let bindings = bindgen::Builder::default()
        .header(shim.join("imb.h").to_string_lossy())
        .clang_arg(format!("-I{}", include.display()))
        .clang_arg(format!("-I{}", shim.display()))
        .allowlist_function("rampart_imb_.*")
        .allowlist_type("gcm_key_data")
        .layout_tests(false)
        .derive_default(true)
        .derive_debug(false)
        .derive_copy(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed on intel-ipsec-mb.h: {e}")));
    bindings.write_to_file(out_dir.join("imb_bindings.rs")).expect("write imb_bindings.rs");
    println!("cargo:rustc-cfg=rampart_imb");
}

fn main() {
    let shim = Path::new("shim");
    println!("cargo:rustc-check-cfg=cfg(rampart_imb)");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");
    for f in ["shim.c", "shim.h", "wrapper.h", "imb.c", "imb.h"] {
        println!("cargo:rerun-if-changed={}", shim.join(f).display());
    }

    let lib = pkg_config::Config::new()
        .atleast_version("21.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| fail(&format!("pkg-config could not find libdpdk:\n{e}")));
    let cflags = dpdk_cflags();
    println!("cargo:rustc-env=DPDK_PMD_DIR={}", pmd_dir(&lib));
    println!("cargo:rustc-env=DPDK_VERSION={}", lib.version);

    let mut build = cc::Build::new();
    build.file(shim.join("shim.c")).include(shim).warnings(false);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("rampart_dpdk_shim");
    // net_ring's `rte_eth_from_rings` is a PMD function, not in libdpdk's link line. The
    // library is the same file EAL loads from the PMD directory, so the driver registers once.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    let builder = bindgen::Builder::default()
        .header(shim.join("wrapper.h").to_string_lossy())
        .clang_args(&cflags)
        .clang_arg(format!("-I{}", shim.display()))
        .allowlist_function("rte_.*|shim_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        // Thread-local per-lcore variables cannot be bound; the shim exposes what we need.
        .blocklist_item("per_lcore_.*")
        // Packed protocol headers with aligned members that Rust cannot express.
        .opaque_type("rte_l2tpv2_combined_msg_hdr|rte_gtp_psc_generic_hdr")
        .layout_tests(false)
        .derive_default(true)
        .prepend_enum_name(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));

    // bindgen panics deep inside clang-sys when libclang is missing; say what to install instead.
    std::panic::set_hook(Box::new(|info| eprintln!("bindgen: {info}")));
    let bindings = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate()))
        .unwrap_or_else(|_| fail("bindgen could not load libclang (set LIBCLANG_PATH if it is installed elsewhere)"))
        .unwrap_or_else(|e| fail(&format!("bindgen failed on the DPDK headers: {e}")));
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    bindings.write_to_file(out_dir.join("bindings.rs")).expect("write bindings.rs");

    // After DPDK's bindgen run: a missing libclang has been reported the friendly way by then.
    if let Some(include) = find_ipsec_mb() {
        build_ipsec_mb(shim, &include, &out_dir);
    }
}
