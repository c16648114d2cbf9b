//! `rampart ctl`: sends one request to the daemon's control socket and prints the reply data,
//! as aligned tables by default or as JSON with `--json` (in the manner of strongSwan's
//! swanctl). An error reply is returned as `Err`, so the process exits non-zero.

use super::proto::Request;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const USAGE: &str = "usage: rampart ctl [--socket PATH] [--json] <command>
commands:
  list-sas                              installed Child SAs with their counters
  list-policies                         the security policies
  counters                              port, worker and SA counters
  initiate <peer>                       bring up a peer's IKE and Child SAs
  terminate <peer>                      tear them down
  rekey [<peer>] [--child NAME] [--ike] rekey Child SAs (or one, or the IKE SA)
  reload                                reload the config file
  version                               the daemon's version";

/// How long to wait for the daemon's reply: an initiate may take a few IKE round trips.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `rampart ctl` with the arguments after `ctl`. `default_socket` is used unless
/// `--socket` says otherwise.
pub fn run(default_socket: &Path, args: &[String]) -> Result<(), String> {
    let cmd = parse_args(default_socket, args)?;
    let data = call(&cmd.socket, &cmd.request)?;
    if cmd.json {
        println!("{}", serde_json::to_string_pretty(&data).unwrap_or_default());
    } else {
        print!("{}", render(&data));
    }
    Ok(())
}

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Command {
    pub socket: PathBuf,
    pub json: bool,
    pub request: Request,
}

pub fn parse_args(default_socket: &Path, args: &[String]) -> Result<Command, String> {
    let mut socket = default_socket.to_owned();
    let (mut json, mut ike, mut child) = (false, false, None);
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().cloned().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match a.as_str() {
            "--socket" | "-s" => socket = value(a)?.into(),
            "--json" | "-j" => json = true,
            "--child" => child = Some(value(a)?),
            "--ike" => ike = true,
            "--help" | "-h" => return Err(USAGE.into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => words.push(a.as_str()),
        }
    }
    let request = match words.as_slice() {
        ["rekey"] => Request::Rekey { peer: None, child, ike },
        ["rekey", peer] => Request::Rekey { peer: Some((*peer).to_owned()), child, ike },
        _ if child.is_some() || ike => return Err(format!("--child and --ike go with rekey\n{USAGE}")),
        ["list-sas"] => Request::ListSas,
        ["list-policies"] => Request::ListPolicies,
        ["counters"] => Request::Counters,
        ["reload"] => Request::Reload,
        ["version"] => Request::Version,
        ["initiate", peer] => Request::Initiate { peer: (*peer).to_owned() },
        ["terminate", peer] => Request::Terminate { peer: (*peer).to_owned() },
        [] => return Err(USAGE.into()),
        [cmd, ..] => return Err(format!("bad command line for `{cmd}`\n{USAGE}")),
    };
    Ok(Command { socket, json, request })
}

/// Sends one request and waits for its reply: the data of an ok reply, or the error.
pub fn call(socket: &Path, req: &Request) -> Result<Value, String> {
    let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", socket.display());
    let mut stream = UnixStream::connect(socket).map_err(|e| io("connect", e) + " (is rampart running?)")?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(|e| io("socket", e))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT)).map_err(|e| io("socket", e))?;
    let mut line = serde_json::to_vec(req).map_err(|e| e.to_string())?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|e| io("send to", e))?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).map_err(|e| io("read from", e))?;
    if reply.is_empty() {
        return Err(format!("{}: the daemon closed the connection without a reply", socket.display()));
    }
    let mut reply: Value = serde_json::from_str(&reply).map_err(|e| format!("malformed reply: {e}"))?;
    match reply.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(reply.get_mut("data").map(Value::take).unwrap_or(Value::Null)),
        Some(false) => Err(reply.get("error").and_then(Value::as_str).unwrap_or("error without a message").to_owned()),
        None => Err("malformed reply: no `ok`".into()),
    }
}

/// Renders reply data for people: an array of objects as a table; an object as `key: value`
/// lines followed by a titled table for each field that is an array; anything else as is.
pub fn render(data: &Value) -> String {
    match data {
        Value::Null => "ok\n".into(),
        Value::Array(rows) => table(rows),
        Value::Object(map) => {
            let mut s = String::new();
            let width = map.iter().filter(|(_, v)| !v.is_array()).map(|(k, _)| k.chars().count()).max().unwrap_or(0);
            for (k, v) in map.iter().filter(|(_, v)| !v.is_array()) {
                s += &format!("{k:width$}  {}\n", cell(v));
            }
            for (k, v) in map.iter() {
                if let Value::Array(rows) = v {
                    s += &format!("\n{k}:\n{}", table(rows));
                }
            }
            s
        }
        v => format!("{}\n", cell(v)),
    }
}

/// Columns in this order first (when present); the rest alphabetically.
const LEADING: &[&str] = &["name", "peer", "sa", "port", "worker", "id", "state", "spi", "dir", "priority", "action"];

fn table(rows: &[Value]) -> String {
    if rows.is_empty() {
        return "(none)\n".into();
    }
    let mut cols: Vec<&str> = Vec::new();
    for row in rows {
        match row {
            Value::Object(m) => cols.extend(m.keys().map(String::as_str).filter(|k| !cols.contains(k)).collect::<Vec<_>>()),
            _ => return rows.iter().map(|v| format!("{}\n", cell(v))).collect(),
        }
    }
    let rank = |c: &str| LEADING.iter().position(|l| *l == c).unwrap_or(LEADING.len());
    cols.sort_by(|a, b| (rank(a), *a).cmp(&(rank(b), *b)));
    let cells: Vec<Vec<String>> = rows.iter().map(|r| cols.iter().map(|c| r.get(*c).map_or("-".into(), cell)).collect()).collect();
    let numeric: Vec<bool> = (0..cols.len()).map(|i| rows.iter().all(|r| r.get(cols[i]).is_none_or(Value::is_number))).collect();
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| cells.iter().map(|r| r[i].chars().count()).chain([cols[i].len()]).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    let mut line = |fields: &mut dyn Iterator<Item = String>| {
        let l: Vec<String> = fields
            .enumerate()
            .map(|(i, f)| if numeric[i] { format!("{f:>w$}", w = widths[i]) } else { format!("{f:w$}", w = widths[i]) })
            .collect();
        s += l.join("  ").trim_end();
        s.push('\n');
    };
    line(&mut cols.iter().map(|c| c.to_uppercase()));
    for r in cells {
        line(&mut r.into_iter());
    }
    s
}

/// One value in one cell: an object of scalars as `k=v k=v`, an array joined by commas.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        // A control character would break the table.
        Value::String(s) => s.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect(),
        Value::Object(m) if m.is_empty() => "-".into(),
        Value::Object(m) => m.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect::<Vec<_>>().join(" "),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_command_lines() {
        let d = Path::new("/run/x.sock");
        let c = parse_args(d, &args("--json rekey site1 --child net --ike")).unwrap();
        assert!(c.json);
        assert_eq!(c.request, Request::Rekey { peer: Some("site1".into()), child: Some("net".into()), ike: true });
        let c = parse_args(d, &args("list-sas --socket /tmp/s")).unwrap();
        assert_eq!((c.socket.as_path(), c.request), (Path::new("/tmp/s"), Request::ListSas));
        assert_eq!(parse_args(d, &args("initiate a")).unwrap().request, Request::Initiate { peer: "a".into() });
        for bad in ["", "initiate", "initiate a b", "list-sas --ike", "bogus", "--socket", "version --nope"] {
            assert!(parse_args(d, &args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn renders_tables() {
        let data = json!([
            {"sa": "net1", "spi": "0x00000101", "dir": "out", "packets": 5, "drops": {}},
            {"sa": "net1-longer", "spi": "0x00000102", "dir": "in", "packets": 12345, "drops": {"replay": 2}},
        ]);
        let text = render(&data);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "SA           SPI         DIR  DROPS     PACKETS");
        assert_eq!(lines[1], "net1         0x00000101  out  -               5");
        assert_eq!(lines[2], "net1-longer  0x00000102  in   replay=2    12345");
        assert_eq!(render(&json!([])), "(none)\n");
        let text = render(&json!({"uptime_seconds": 1.5, "ports": [{"port": "lan", "rx_packets": 1}]}));
        assert_eq!(text, "uptime_seconds  1.5\n\nports:\nPORT  RX_PACKETS\nlan            1\n");
    }
}
