//! The control socket server: a unix listener and its clients on the control thread's mio
//! loop. Reads and writes never block, a request line is bounded, and a client that does not
//! read its replies is dropped once its backlog passes a bound, so no client can stall the
//! daemon or make it grow without limit.

use super::proto::{self, Handler, MAX_LINE};
use mio::event::Event;
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::fs::{DirBuilder, Permissions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Clients served at once; one more is told so and closed.
pub const MAX_CLIENTS: usize = 64;
/// Reply bytes a client may leave unread before it is dropped. One reply is always queued
/// whole, however large, as long as the backlog before it is under this.
pub const MAX_BACKLOG: usize = 1 << 20;
/// Bytes read from one client per event before others get a turn (`poll_idle` goes on).
const READ_BUDGET: usize = 256 * 1024;

/// The control socket and its clients. Uses tokens `base .. base + Server::TOKENS`.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    registry: Option<Registry>,
    base: usize,
    clients: Vec<Option<Client>>,
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    sent: usize,
    /// The read budget ran out before the socket was drained.
    more: bool,
    /// The client closed its side: drop it once its replies are out.
    eof: bool,
    /// Drop after one last try to write (after an oversized line).
    closing: bool,
}

impl Server {
    /// How many consecutive tokens the server uses, from the base passed to `register`.
    pub const TOKENS: usize = 1 + MAX_CLIENTS;

    /// Listens on `path` (mode 0600). Creates the parent directory (mode 0700) if missing and
    /// replaces a stale socket; refuses a live one or a file that is not a socket.
    pub fn bind(path: &Path) -> io::Result<Server> {
        let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(ctx)?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(ctx(io::Error::new(ErrorKind::AddrInUse, "another daemon is listening")));
                }
                std::fs::remove_file(path).map_err(ctx)?;
            }
            Ok(_) => return Err(ctx(io::Error::new(ErrorKind::AlreadyExists, "exists and is not a socket"))),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(ctx(e)),
        }
        let listener = UnixListener::bind(path).map_err(ctx)?;
        std::fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(ctx)?;
        Ok(Server {
            listener,
            path: path.to_owned(),
            registry: None,
            base: 0,
            clients: (0..MAX_CLIENTS).map(|_| None).collect(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers the listener as `base`; clients get the tokens after it.
    pub fn register(&mut self, registry: &Registry, base: Token) -> io::Result<()> {
        registry.register(&mut self.listener, base, Interest::READABLE)?;
        self.registry = Some(registry.try_clone()?);
        self.base = base.0;
        Ok(())
    }

    /// Whether an event's token is one of the server's.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.base && token.0 < self.base + Self::TOKENS
    }

    /// Clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    /// Serves one event; ignores tokens that are not the server's.
    pub fn handle_event(&mut self, event: &Event, handler: &mut dyn Handler) {
        let token = event.token();
        if token.0 == self.base {
            self.accept();
        } else if self.owns(token) {
            self.service(token.0 - self.base - 1, handler);
        }
    }

    /// Goes on reading from clients whose read budget ran out. Call once per loop iteration.
    pub fn poll_idle(&mut self, handler: &mut dyn Handler) {
        for slot in 0..self.clients.len() {
            if self.clients[slot].as_ref().is_some_and(|c| c.more) {
                self.service(slot, handler);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let mut stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and the like: the pending client stays queued; try again later.
                    tracing::warn!(target: "ctl", "accept: {e}");
                    return;
                }
            };
            let (Some(slot), Some(registry)) = (self.clients.iter().position(Option::is_none), self.registry.as_ref()) else {
                let _ = stream.write(&proto::reply_line(Err("too many clients".into())));
                continue;
            };
            let token = Token(self.base + 1 + slot);
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
                tracing::warn!(target: "ctl", "register client: {e}");
                continue;
            }
            self.clients[slot] =
                Some(Client { stream, input: Vec::new(), out: Vec::new(), sent: 0, more: false, eof: false, closing: false });
        }
    }

    /// Reads and answers what a client sent, writes what can be written, and drops the
    /// client when it is done or misbehaved.
    fn service(&mut self, slot: usize, handler: &mut dyn Handler) {
        let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) else { return };
        let keep = c.read(handler) && c.flush();
        if !keep || c.closing || (c.eof && c.pending() == 0) {
            if let (Some(mut c), Some(registry)) = (self.clients[slot].take(), self.registry.as_ref()) {
                let _ = registry.deregister(&mut c.stream);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Client {
    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Reads up to the budget and answers every complete line. False: drop the client now.
    fn read(&mut self, handler: &mut dyn Handler) -> bool {
        self.more = false;
        if self.eof || self.closing {
            return true;
        }
        let mut budget = READ_BUDGET;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if budget == 0 {
                self.more = true;
                return true;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    // A last request without its newline still counts.
                    if !self.input.is_empty() {
                        self.input.push(b'\n');
                    }
                    return self.answer(handler);
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.input.extend_from_slice(&buf[..n]);
                    if !self.answer(handler) {
                        return false;
                    }
                    if self.closing {
                        return true;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    /// Answers the complete lines in `input`. False: drop the client now.
    fn answer(&mut self, handler: &mut dyn Handler) -> bool {
        let mut start = 0;
        while let Some(len) = self.input[start..].iter().position(|&b| b == b'\n') {
            let mut line = &self.input[start..start + len];
            start += len + 1;
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.len() > MAX_LINE {
                return self.refuse_long_line();
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if self.pending() > MAX_BACKLOG {
                return false;
            }
            let reply = proto::parse(line).and_then(|req| handler.handle(req));
            self.out.extend_from_slice(&proto::reply_line(reply));
        }
        self.input.drain(..start);
        if self.input.len() > MAX_LINE + 1 {
            return self.refuse_long_line();
        }
        true
    }

    fn refuse_long_line(&mut self) -> bool {
        self.input = Vec::new();
        self.closing = true;
        let reply = proto::reply_line(Err(format!("request line longer than {MAX_LINE} bytes; closing")));
        self.out.extend_from_slice(&reply);
        true
    }

    /// Writes until done or the socket is full. False: the client is gone.
    fn flush(&mut self) -> bool {
        while self.sent < self.out.len() {
            match self.stream.write(&self.out[self.sent..]) {
                Ok(0) => return false,
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent >= 64 * 1024 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        true
    }
}
