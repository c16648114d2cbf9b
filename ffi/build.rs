//! Finds the system DPDK with pkg-config, compiles the C shim for DPDK's inline functions,
//! and generates the raw bindings with bindgen.

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

fn main() {
    let shim = Path::new("shim");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");
    for f in ["shim.c", "shim.h", "wrapper.h"] {
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
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(&out).expect("write bindings.rs");
}
