//! Key export (`key_export.dir`) read back by an independent dissector (needs root): tshark
//! decrypts the captured WAN traffic with the exported `esp_sa` and `ikev2_decryption_table`,
//! for manual SAs and for IKE with its CHILD_SA; no key ever shows in the daemon's log.

mod common;
use common::*;
use serde_json::json;
use std::path::Path;

fn skip(name: &str) -> bool {
    if !is_root() {
        eprintln!("SKIPPED {name}: needs root for network namespaces (run as root)");
        return true;
    }
    false
}

/// tshark over `pcap` with the key files of `keys` (as `$XDG_CONFIG_HOME/wireshark`).
fn tshark(pcap: &Path, keys: &Path, args: &str) -> String {
    let xdg = keys.parent().unwrap().join("xdg");
    std::fs::create_dir_all(&xdg).unwrap();
    let link = xdg.join("wireshark");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(keys, &link).unwrap();
    ok(&format!("XDG_CONFIG_HOME={} tshark -r {} -o esp.enable_encryption_decode:TRUE {args}", xdg.display(), pcap.display()))
}

/// Every hex key in the export files (ESP keys with salt, IKE SK_e and SK_a).
fn exported_keys(keys: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for l in std::fs::read_to_string(keys.join("esp_sa")).unwrap().lines() {
        out.push(l.split(',').nth(5).unwrap().trim_matches('"').trim_start_matches("0x").to_string());
    }
    for l in std::fs::read_to_string(keys.join("ikev2_decryption_table")).unwrap().lines() {
        let f: Vec<&str> = l.split(',').collect();
        out.extend([f[2], f[3], f[5], f[6]].iter().filter(|k| !k.is_empty()).map(|k| k.to_string()));
    }
    out
}

fn assert_no_keys_in_logs(bed: &Bed, keys: &Path) {
    let ks = exported_keys(keys);
    assert!(!ks.is_empty());
    for g in 1..=2 {
        let log = bed.log(g).to_lowercase();
        for k in &ks {
            assert!(!log.contains(&k[..16]), "gw{g}'s log shows key material; see {}", bed.dir.display());
        }
    }
}

#[test]
fn manual_sa_keys_decrypt_in_tshark() {
    if skip("manual_sa_keys_decrypt_in_tshark") {
        return;
    }
    let _g = BED.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("rampart-keys-manual-{}", std::process::id()));
    let keys = dir.join("keys");
    let mut c2 = testbed_config(2);
    c2["key_export"] = json!({"dir": keys});
    let bed = Bed::up("keys-manual", vec![testbed_config(1), c2], [true, true]);
    let line = std::fs::read_to_string(keys.join("esp_sa")).unwrap();
    assert_eq!(line.lines().count(), 2, "{line}");
    assert!(line.contains(r#""IPv4","192.0.2.1","192.0.2.2","0x00001001","AES-GCM with 16 octet ICV [RFC4106]","0x4a8f2f6e1c3b5d7e9f0a1b2c3d4e5f600a0b0c0d","NULL",""#), "{line}");
    bed.wait("the tunnel", || sh("ip netns exec rph1 ping -c1 -W1 10.2.0.1").status.success());
    // What gw1 sends is seen where it arrives (af_packet bypasses the sender's taps).
    let pcap = bed.dir.join("wan.pcap");
    let cap = capture("rpgw2", "rpg2-wan", &pcap, 0);
    let p = ok("ip netns exec rph1 ping -c 5 -i 0.2 10.2.0.1");
    assert!(p.contains(" 0% packet loss"), "{p}");
    stop(cap);
    let out = tshark(&pcap, &keys, "-Y 'esp && icmp.type == 8' -T fields -e ip.src -e ip.dst");
    assert!(out.lines().filter(|l| l.contains("10.1.0.1") && l.contains("10.2.0.1")).count() >= 3, "no decrypted echo requests: {out}");
    assert_no_keys_in_logs(&bed, &keys);
}

#[test]
fn ike_keys_decrypt_in_tshark() {
    if skip("ike_keys_decrypt_in_tshark") {
        return;
    }
    let _g = BED.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("rampart-keys-ike-{}", std::process::id()));
    let keys = dir.join("keys");
    let mut c2 = ike_config(2, "none");
    c2["key_export"] = json!({"dir": keys});
    let bed = Bed::up("keys-ike", vec![ike_config(1, "none"), c2], [true, true]);
    let pcap = bed.dir.join("wan.pcap");
    let cap = capture("rpgw2", "rpg2-wan", &pcap, 0);
    assert_eq!(bed.ctl_json(1, &["initiate", "gw2"])["initiating"], true);
    bed.wait("the IKE tunnel", || sh("ip netns exec rph1 ping -c1 -W1 10.2.0.1").status.success());
    ok("ip netns exec rph1 ping -c 5 -i 0.2 10.2.0.1");
    stop(cap);
    let ike = std::fs::read_to_string(keys.join("ikev2_decryption_table")).unwrap();
    assert_eq!(ike.lines().count(), 1, "{ike}");
    assert_eq!(std::fs::read_to_string(keys.join("esp_sa")).unwrap().lines().count(), 2);
    // IKE_AUTH decrypts: the initiator's identity and traffic selectors show.
    let out = tshark(&pcap, &keys, "-Y 'isakmp.id.data.fqdn' -T fields -e isakmp.id.data.fqdn");
    assert!(out.contains("gw1.rampart.test"), "IKE_AUTH not decrypted: {out}");
    let out = tshark(&pcap, &keys, "-Y 'isakmp.ts.start_ipv4' -T fields -e isakmp.ts.start_ipv4");
    assert!(out.contains("10.1.0.0"), "no TSi: {out}");
    // ESP decrypts to the inner echo requests.
    let out = tshark(&pcap, &keys, "-Y 'esp && icmp.type == 8' -T fields -e ip.src -e ip.dst");
    assert!(out.lines().filter(|l| l.contains("10.1.0.1") && l.contains("10.2.0.1")).count() >= 3, "no decrypted echo requests: {out}");
    assert_no_keys_in_logs(&bed, &keys);
}

/// Key export is refused unless its directory is usable (the daemon does not start), and a
/// relative directory is a config error; both name `key_export.dir`. No root needed.
#[test]
fn key_export_refused_when_unusable() {
    let dir = std::env::temp_dir().join(format!("rampart-keys-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |cmd: &str, export: &str| {
        let mut c = testbed_config(1);
        c["control"] = json!({"socket": dir.join("s.sock")});
        c["key_export"] = json!({"dir": export});
        let file = dir.join("gw.json");
        std::fs::write(&file, c.to_string()).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_rampart")).args([cmd, "--config"]).arg(&file).output().unwrap()
    };
    let o = run("check", "relative/keys");
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("key_export.dir"), "{o:?}");
    let o = run("run", "/proc/no-such-dir/keys");
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("key_export.dir"), "{o:?}");
}
