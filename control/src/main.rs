//! `rampart`: the appliance's one binary.

use rampart_control::{config::Config, daemon};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  rampart run --config FILE     start the gateway (SIGINT/SIGTERM stop it, SIGUSR1 prints counters)
  rampart check --config FILE   validate a config without starting anything
  rampart ctl [--socket PATH] [--json] COMMAND   talk to a running gateway (`rampart ctl help`)
  rampart version";

fn config_arg(args: &[String]) -> Result<PathBuf, String> {
    match args {
        [flag, file] if flag == "--config" || flag == "-c" => Ok(PathBuf::from(file)),
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => config_arg(&args[1..]).and_then(|p| daemon::run(&p)),
        Some("check") => config_arg(&args[1..]).and_then(|p| {
            let cfg = Config::load(&p).map_err(|e| e.to_string())?;
            // The one setting that depends on this machine rather than the file.
            let engine = rampart_dataplane::crypto::resolve(cfg.crypto_engine.engine())
                .map_err(|e| format!("{}: crypto_engine: {e}", p.display()))?;
            println!("{}: ok (crypto engine here: {})", p.display(), engine.name());
            Ok(())
        }),
        Some("ctl") => rampart_control::ctl::client::run(std::path::Path::new(rampart_control::ctl::DEFAULT_SOCKET), &args[1..]),
        Some("version") | Some("--version") => {
            println!("rampart {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart: {e}");
            ExitCode::FAILURE
        }
    }
}
