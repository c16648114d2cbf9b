//! Every example under configs/ loads; bad configs are refused with the field named; an
//! unknown device stops `rampart run` before anything starts.

use rampart_control::config::Config;
use std::path::Path;
use std::process::Command;

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn json_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

#[test]
fn every_example_loads() {
    let mut files = Vec::new();
    json_files(&root().join("configs"), &mut files);
    assert!(files.len() >= 8, "{files:?}");
    for f in files {
        if let Err(e) = Config::load(&f) {
            panic!("{e}");
        }
    }
}

const GOOD: &str = r#"{
  "ports": [{"name": "wan", "devargs": "net_null0", "addresses": ["192.0.2.1/24"]}],
  "policies": [{"name": "out", "src": "10.1.0.0/24", "dst": "10.2.0.0/24", "action": "protect", "sa": "o"},
               {"name": "in", "direction": "inbound", "src": "10.2.0.0/24", "dst": "10.1.0.0/24", "action": "protect", "sa": "i"}],
  "sas": [{"name": "o", "direction": "outbound", "spi": "0x1001", "alg": "aes-gcm-128", "key": "000102030405060708090a0b0c0d0e0f10111213", "local": "192.0.2.1", "remote": "192.0.2.2"},
          {"name": "i", "direction": "inbound", "spi": 4097, "alg": "aes-gcm-128", "key": "000102030405060708090a0b0c0d0e0f10111213", "local": "192.0.2.2", "remote": "192.0.2.1"}]
}"#;

fn refused(edit: impl Fn(&mut serde_json::Value), field: &str, words: &str) {
    let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
    edit(&mut v);
    let (f, msg) = Config::parse(&v.to_string()).expect_err("must be refused");
    assert_eq!(f, field, "{msg}");
    assert!(msg.contains(words), "`{msg}` should say `{words}`");
}

#[test]
fn bad_configs_name_the_field() {
    Config::parse(GOOD).expect("the base config is good");
    refused(|v| v["sas"][0]["colour"] = "blue".into(), "sas[0].colour", "unknown field `colour`");
    refused(|v| v["sas"][0]["key"] = "zz".into(), "sas[0].key", "hex");
    refused(|v| v["sas"][0]["key"] = "00112233".into(), "sas[0].key", "needs 20 bytes");
    refused(|v| v["sas"][0]["alg"] = "des".into(), "sas[0].alg", "unknown variant");
    refused(|v| v["sas"][0]["spi"] = "12".into(), "sas[0].spi", "reserved");
    refused(|v| v["sas"][1]["replay_window"] = 100.into(), "sas[1].replay_window", "64 to 4096");
    refused(|v| v["policies"][0]["sa"] = "nope".into(), "policies[0].sa", "no SA named");
    refused(|v| v["policies"][0]["dst"] = "10.2.0.0/33".into(), "policies[0].dst", "prefix length");
    refused(|v| v["ports"][0]["addresses"][0] = "192.0.2.1".into(), "ports[0].addresses[0]", "prefix length");
    refused(|v| v["policies"][1]["direction"] = "outbound".into(), "policies[1].sa", "inbound");
    refused(|v| v["crypto_engine"] = "qat".into(), "crypto_engine", "unknown variant `qat`");
    refused(|v| v["flow_cache_entries"] = (1u64 << 30).into(), "flow_cache_entries", "at most");
    refused(|v| v["flow_cache_entries"] = (-1).into(), "flow_cache_entries", "invalid value");
    let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
    assert_eq!(Config::parse(GOOD).unwrap().flow_cache_entries, 65536, "the default");
    v["flow_cache_entries"] = 0.into();
    assert_eq!(Config::parse(&v.to_string()).unwrap().flow_cache_entries, 0, "0 turns it off");
}

#[test]
fn crypto_engine_words() {
    use rampart_control::config::CryptoEngineConfig;
    use rampart_dataplane::crypto::Engine;
    assert_eq!(Config::parse(GOOD).unwrap().crypto_engine, CryptoEngineConfig::Auto, "auto by default");
    for (word, engine) in [("auto", Engine::Auto), ("soft", Engine::Soft), ("ipsec-mb", Engine::IpsecMb)] {
        let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        v["crypto_engine"] = word.into();
        let cfg = Config::parse(&v.to_string()).unwrap_or_else(|(f, m)| panic!("{word}: {f}: {m}"));
        assert_eq!(cfg.crypto_engine.engine(), engine);
        // The config's words are the engine's own.
        assert_eq!(word.parse::<Engine>(), Ok(engine));
    }
}

#[test]
fn duplicate_inbound_spi_is_refused() {
    let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
    let mut dup = v["sas"][1].clone();
    dup["name"] = "i2".into();
    v["sas"].as_array_mut().unwrap().push(dup);
    v["policies"][1]["sa"] = "i2".into();
    let mut p2 = v["policies"][1].clone();
    p2["name"] = "in1".into();
    p2["sa"] = "i".into();
    v["policies"].as_array_mut().unwrap().push(p2);
    let (f, msg) = Config::parse(&v.to_string()).unwrap_err();
    assert_eq!((f.as_str(), msg.contains("duplicate inbound SPI")), ("sas[2].spi", true), "{msg}");
}

#[test]
fn unknown_device_stops_the_start() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED unknown_device_stops_the_start: DPDK needs root");
        return;
    }
    let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
    v["ports"][0]["devargs"] = "net_nosuchdevice0".into();
    v["eal"] = serde_json::json!(["--no-huge", "-m", "128", "--no-pci"]);
    let file = std::env::temp_dir().join(format!("rampart-bad-device-{}.json", std::process::id()));
    std::fs::write(&file, v.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart")).args(["run", "--config"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("ports[0] `net_nosuchdevice0`"), "{err}");
}

/// The EAL options a config leaves out: a private file prefix and no shared files; on
/// hugepages `--in-memory`, so a gateway that exits or is killed leaves no hugepage files
/// holding memory (EAL refuses it with `--no-huge`).
#[test]
fn eal_args_share_nothing() {
    let with = |eal: &str| {
        let mut cfg = Config::parse(GOOD).unwrap();
        cfg.eal = eal.split_whitespace().map(String::from).collect();
        rampart_control::daemon::eal_args(&cfg)
    };
    let huge = with("-m 1024");
    assert!(huge.contains(&"--in-memory".to_string()) && !huge.contains(&"--no-shconf".to_string()), "{huge:?}");
    let anon = with("--no-huge -m 512");
    assert!(anon.contains(&"--no-shconf".to_string()) && !anon.contains(&"--in-memory".to_string()), "{anon:?}");
    let prefix = anon.iter().position(|a| a == "--file-prefix").unwrap();
    assert_eq!(anon[prefix + 1], format!("rampart-{}", std::process::id()));
    // The operator's own prefix is kept, shared files and all.
    let own = with("--file-prefix gw1");
    assert_eq!(own.iter().filter(|a| a.starts_with("--file-prefix")).count(), 1);
    assert!(!own.contains(&"--in-memory".to_string()), "{own:?}");
}
