//! The control protocol: one JSON request object per line, one JSON reply object per line,
//! `{"ok": true, "data": ...}` or `{"ok": false, "error": "..."}`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The longest request line the server accepts (without its newline).
pub const MAX_LINE: usize = 64 * 1024;

/// A control request, tagged by `cmd`: `{"cmd": "initiate", "peer": "branch1"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Version,
    ListSas,
    ListPolicies,
    Counters,
    Initiate {
        peer: String,
    },
    Terminate {
        peer: String,
    },
    /// Rekeys the named peer's Child SAs (or only `child`), or its IKE SA with `ike`; with no
    /// peer, every peer.
    Rekey {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        child: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ike: bool,
    },
    Reload,
}

/// What the daemon implements to answer requests. The `Err` string goes to the client as is.
pub trait Handler {
    fn handle(&mut self, req: Request) -> Result<Value, String>;
}

impl<F: FnMut(Request) -> Result<Value, String>> Handler for F {
    fn handle(&mut self, req: Request) -> Result<Value, String> {
        self(req)
    }
}

/// The reply data for `version`.
pub fn version() -> Value {
    json!({ "name": "rampart", "version": env!("CARGO_PKG_VERSION"), "pid": std::process::id() })
}

/// Parses one request line (without its newline).
pub fn parse(line: &[u8]) -> Result<Request, String> {
    let req: Request = serde_json::from_slice(line).map_err(|e| format!("bad request: {e}"))?;
    // `deny_unknown_fields` does not reach the unit variants of a tagged enum.
    let unit = matches!(req, Request::Version | Request::ListSas | Request::ListPolicies | Request::Counters | Request::Reload);
    if unit && serde_json::from_slice::<serde_json::Map<String, Value>>(line).map_or(true, |m| m.len() > 1) {
        return Err("bad request: this command takes no arguments".into());
    }
    Ok(req)
}

/// Encodes a reply as one line, newline included. Compact JSON has no raw newlines.
pub fn reply_line(result: Result<Value, String>) -> Vec<u8> {
    let v = match result {
        Ok(data) => json!({ "ok": true, "data": data }),
        Err(error) => json!({ "ok": false, "error": error }),
    };
    let mut line = serde_json::to_vec(&v).unwrap_or_else(|_| br#"{"ok":false,"error":"unencodable reply"}"#.to_vec());
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(parse(br#"{"cmd":"list-sas"}"#), Ok(Request::ListSas));
        assert_eq!(parse(br#"{"cmd":"initiate","peer":"x"}"#), Ok(Request::Initiate { peer: "x".into() }));
        assert_eq!(
            parse(br#"{"cmd":"rekey","peer":"x","ike":true}"#),
            Ok(Request::Rekey { peer: Some("x".into()), child: None, ike: true })
        );
        assert!(parse(br#"{"cmd":"initiate"}"#).is_err());
        assert!(parse(br#"{"cmd":"initiate","peer":"x","extra":1}"#).is_err());
        assert!(parse(br#"{"cmd":"list-sas","extra":1}"#).is_err());
        assert!(parse(br#"{"cmd":"export-keys"}"#).is_err());
        assert!(parse(b"\xff\xfe").is_err());
        assert!(parse(b"[]").is_err());
    }

    #[test]
    fn round_trips() {
        for r in [Request::Version, Request::Rekey { peer: None, child: Some("c".into()), ike: false }, Request::Reload] {
            let s = serde_json::to_vec(&r).unwrap();
            assert_eq!(parse(&s), Ok(r));
        }
    }
}
