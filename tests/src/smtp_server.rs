//! A real SMTP server for the booking e-mail suite: aiosmtpd (installed by
//! `ops/ensure-aiosmtpd`) on 127.0.0.1 and a free port, with a small handler that records
//! every accepted message as a JSON line, refuses recipients starting with `reject` (550) and
//! defers those starting with `defer` (451). Killed on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dezky_adapters::smtp::{SmtpConfig, SmtpMailer, SmtpSecurity};
use dezky_commands::ports::Secret;

/// The virtualenv's Python; `DEZKY_AIOSMTPD_PYTHON` overrides it.
pub const AIOSMTPD_PYTHON: &str = "/opt/aiosmtpd/bin/python";
/// The sender the suites' mailer uses.
pub const SENDER: &str = "Bookings <bookings@dezky.test>";
const START_TIMEOUT_MS: u64 = 20_000;
const START_ATTEMPTS: usize = 5;

const HANDLER: &str = r#"
import json


class Recorder:
    def __init__(self, path):
        self.path = path

    @classmethod
    def from_cli(cls, parser, path):
        return cls(path)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 no such user"
        if address.startswith("defer"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf-8", "replace"),
            }) + "\n")
        return "250 Message accepted for delivery"
"#;

/// One message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Received {
    /// The envelope sender.
    pub from: String,
    /// The envelope recipients.
    pub to: Vec<String>,
    /// The message as transmitted (headers and body).
    pub data: String,
}

/// A running aiosmtpd.
pub struct SmtpServer {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn python() -> PathBuf {
    std::env::var_os("DEZKY_AIOSMTPD_PYTHON")
        .map_or_else(|| PathBuf::from(AIOSMTPD_PYTHON), PathBuf::from)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl SmtpServer {
    /// Starts a server.
    pub fn start() -> Self {
        assert!(
            python().exists(),
            "{} is missing: the SMTP suite needs aiosmtpd (run ops/ensure-aiosmtpd)",
            python().display()
        );
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("a temporary directory");
            std::fs::write(dir.path().join("recorder.py"), HANDLER).expect("handler");
            let mut server = Self {
                addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
                dir,
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("aiosmtpd did not start:\n{}", failures.join("\n---\n"));
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("aiosmtpd.log"))
            .map_err(|e| e.to_string())?;
        let mut child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(self.addr.to_string())
            .args(["-c", "recorder.Recorder"])
            .arg(self.dir.path().join("messages.jsonl"))
            .env("PYTHONPATH", self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn aiosmtpd: {e}"))?;
        let addr = self.addr;
        crate::peer_process::wait_until_ready(
            &mut child,
            "aiosmtpd",
            Duration::from_millis(START_TIMEOUT_MS),
            || greets(addr),
            || self.log(),
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A mailer submitting to it (plain SMTP on loopback, no authentication).
    pub fn mailer(&self) -> SmtpMailer {
        SmtpMailer::new(SmtpConfig {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            security: SmtpSecurity::Plain,
            user: None,
            password: Secret::new(""),
            from: SENDER.into(),
            timeout_seconds: 10,
        })
        .expect("a valid configuration")
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<Received> {
        std::fs::read_to_string(self.dir.path().join("messages.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a recorded message"))
            .collect()
    }

    /// What aiosmtpd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("aiosmtpd.log")).unwrap_or_default()
    }

    /// Takes the server down.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether an SMTP server greets a connection on `addr`.
fn greets(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1_000)));
    let mut code = [0u8; 3];
    let greeted = stream.read_exact(&mut code).is_ok() && &code == b"220";
    let _ = stream.write_all(b"QUIT\r\n");
    greeted
}
