//! A real DNS server for the DNS verification suites: `dnsmasq` on 127.0.0.1 and a free port,
//! serving exactly the records a test gives it, over UDP and TCP.
//!
//! dnsmasq answers the zones a test declares ([`DnsServerBuilder::zone`]) from its own
//! configuration only: a name in such a zone with no record of the asked type is NODATA, an
//! unknown name NXDOMAIN, as an authoritative server says. A name outside every declared zone
//! is REFUSED (nothing is forwarded: `--no-resolv`), which the suites use as a server that
//! answers with an error. The binary comes from Debian's `dnsmasq-base` (`ops/ensure-dnsmasq`
//! installs it); the server is killed when the handle drops.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the suites expect the binary (Debian's `dnsmasq-base`).
pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";
/// How long a started server may take to answer its first query.
const START_TIMEOUT_MS: u64 = 10_000;
/// How many free ports are tried before giving up (another process may take the one picked).
const START_ATTEMPTS: usize = 5;

/// A running dnsmasq; killed on drop.
pub struct DnsServer {
    addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

/// The records a [`DnsServer`] serves.
#[derive(Debug, Clone, Default)]
pub struct DnsServerBuilder {
    lines: Vec<String>,
    port: Option<u16>,
}

impl DnsServer {
    /// A server with nothing configured yet.
    pub fn builder() -> DnsServerBuilder {
        DnsServerBuilder::default()
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What dnsmasq has logged so far (every query it answered), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DnsServerBuilder {
    /// Answers for `zone` and every name under it come from this server alone (unknown names
    /// are NXDOMAIN); names in no declared zone are REFUSED.
    pub fn zone(mut self, zone: &str) -> Self {
        self.lines.push(format!("local=/{}/", name(zone)));
        self
    }

    /// An MX record: `name` → `exchange` at `preference`.
    pub fn mx(mut self, name_: &str, preference: u16, exchange: &str) -> Self {
        self.lines.push(format!(
            "mx-host={},{},{preference}",
            name(name_),
            name(exchange)
        ));
        self
    }

    /// A TXT record made of these character-strings, in order (each at most 255 bytes, as
    /// on the wire; a long DKIM key is several).
    pub fn txt(mut self, name_: &str, strings: &[&str]) -> Self {
        let mut line = format!("txt-record={}", name(name_));
        for string in strings {
            assert!(
                string.len() <= 255,
                "a TXT character-string holds at most 255 bytes, got {}",
                string.len()
            );
            let escaped = string.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = write!(line, ",\"{escaped}\"");
        }
        self.lines.push(line);
        self
    }

    /// An SRV record, fields in wire order.
    pub fn srv(mut self, name_: &str, priority: u16, weight: u16, port: u16, target: &str) -> Self {
        // dnsmasq's own order: target, port, priority, weight.
        self.lines.push(format!(
            "srv-host={},{},{port},{priority},{weight}",
            name(name_),
            name(target)
        ));
        self
    }

    /// A CNAME: `alias` → `target`.
    pub fn cname(mut self, alias: &str, target: &str) -> Self {
        self.lines
            .push(format!("cname={},{}", name(alias), name(target)));
        self
    }

    /// An A or AAAA record (with its PTR, which dnsmasq adds and nothing here asks for).
    pub fn a(mut self, name_: &str, address: IpAddr) -> Self {
        self.lines
            .push(format!("host-record={},{address}", name(name_)));
        self
    }

    /// Listens on this port instead of a free one (to restart a server where a client already
    /// points).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Starts dnsmasq and returns once it answers a query.
    ///
    /// Panics when the binary is missing (install `dnsmasq-base`) or the server does not come
    /// up: the suites never skip.
    pub fn start(self) -> DnsServer {
        assert!(
            std::path::Path::new(DNSMASQ).exists(),
            "{DNSMASQ} is missing: the DNS suites need dnsmasq (apt-get install dnsmasq-base, \
             or run ops/ensure-dnsmasq)"
        );
        let mut failures = Vec::new();
        let attempts = if self.port.is_some() {
            1
        } else {
            START_ATTEMPTS
        };
        for _ in 0..attempts {
            let port = self.port.unwrap_or_else(free_port);
            match self.start_on(port) {
                Ok(server) => return server,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("dnsmasq did not start:\n{}", failures.join("\n---\n"));
    }

    fn start_on(&self, port: u16) -> Result<DnsServer, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let conf = dir.path().join("dnsmasq.conf");
        let log = dir.path().join("dnsmasq.log");
        let mut text = String::new();
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        let mut child = Command::new(DNSMASQ)
            .arg(format!("--port={port}"))
            .args([
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--no-daemon",
                "--log-queries",
                // An hour, like a DNS host's default: a resolver that caches would keep these
                // answers, so a suite can tell whether a recheck asks again.
                "--local-ttl=3600",
            ])
            .arg(format!("--log-facility={}", log.display()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("dnsmasq.pid").display()
            ))
            .arg(format!("--conf-file={}", conf.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {DNSMASQ}: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(format!(
                    "dnsmasq on port {port} exited ({status}): {stderr}"
                ));
            }
            if answers(addr) {
                return Ok(DnsServer { addr, child, dir });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("dnsmasq on port {port} did not answer in time"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A name as dnsmasq's configuration takes it: no trailing dot.
fn name(name: &str) -> &str {
    name.trim_end_matches('.')
}

/// A port free for both UDP and TCP on 127.0.0.1 at the time of asking.
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether a DNS server answers (anything, even REFUSED) a query for the root's SOA on `addr`.
fn answers(addr: SocketAddr) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    // Header: id 0x6478, RD set, one question; question: the root name, type SOA, class IN.
    let query = [
        0x64, 0x78, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06,
        0x00, 0x01,
    ];
    if socket.send_to(&query, addr).is_err() {
        return false;
    }
    let mut buffer = [0u8; 512];
    matches!(socket.recv_from(&mut buffer), Ok((len, from)) if from == addr && len >= 12 && buffer[..2] == query[..2])
}
