//! A real Radicale CalDAV server for the calendar suites: started on 127.0.0.1 and a free
//! port with htpasswd Basic auth and its storage in a temporary directory, killed on drop.
//!
//! [`Radicale::stop`] and [`Radicale::start_again`] take the server down and bring it back on
//! the same port with the same storage, which is how the booking suites simulate "the
//! calendar server is down" without touching anything but their own process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dezky_adapters::caldav::{CalDav, CalDavConfig};
use dezky_commands::ports::Secret;

/// Where `ops/ensure-radicale` installs Radicale; `DEZKY_RADICALE` overrides it.
pub const RADICALE: &str = "/opt/radicale/bin/radicale";
/// The user the suites sign in as.
pub const RADICALE_USER: &str = "dezky";
/// Its password.
pub const RADICALE_PASSWORD: &str = "booking-secret";
/// How long Radicale gets to accept connections.
const START_TIMEOUT_MS: u64 = 20_000;
/// Ports tried before giving up (another process may take a free port between the probe and
/// Radicale's bind).
const START_ATTEMPTS: usize = 5;

/// A running (or stopped) Radicale.
pub struct Radicale {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn binary() -> PathBuf {
    std::env::var_os("DEZKY_RADICALE").map_or_else(|| PathBuf::from(RADICALE), PathBuf::from)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Radicale {
    /// Starts a server with one user ([`RADICALE_USER`]).
    pub fn start() -> Self {
        let bin = binary();
        assert!(
            bin.exists(),
            "{} is missing: the CalDAV suites need Radicale 3.9 (run ops/ensure-radicale)",
            bin.display()
        );
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut server = Self {
                addr,
                dir,
                child: None,
            };
            server.write_config();
            match server.spawn() {
                Ok(()) => return server,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("radicale did not start:\n{}", failures.join("\n---\n"));
    }

    fn write_config(&self) {
        let root = self.dir.path();
        std::fs::write(
            root.join("users"),
            format!("{RADICALE_USER}:{RADICALE_PASSWORD}\n"),
        )
        .expect("htpasswd file");
        let config = format!(
            "[server]\nhosts = {addr}\n\n\
             [auth]\ntype = htpasswd\nhtpasswd_filename = {users}\nhtpasswd_encryption = plain\n\
             delay = 0\n\n\
             [rights]\ntype = owner_only\n\n\
             [storage]\nfilesystem_folder = {storage}\n\n\
             [logging]\nlevel = warning\n",
            addr = self.addr,
            users = root.join("users").display(),
            storage = root.join("collections").display(),
        );
        std::fs::write(root.join("config"), config).expect("radicale config");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.path().join("radicale.log"))
            .map_err(|e| e.to_string())?;
        let mut child = Command::new(binary())
            .arg("--config")
            .arg(self.dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn radicale: {e}"))?;
        let addr = self.addr;
        crate::peer_process::wait_until_ready(
            &mut child,
            "radicale",
            Duration::from_millis(START_TIMEOUT_MS),
            || answers_http(addr),
            || self.log(),
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL calendars are relative to: the user's home (`http://…/dezky/`).
    pub fn base_url(&self) -> String {
        format!("http://{}/{RADICALE_USER}/", self.addr)
    }

    /// An adapter signed in as [`RADICALE_USER`].
    pub fn client(&self) -> CalDav {
        self.client_with_password(RADICALE_PASSWORD)
    }

    /// An adapter signed in with another password (to see refused credentials).
    pub fn client_with_password(&self, password: &str) -> CalDav {
        let mut config = CalDavConfig::new(self.base_url(), RADICALE_USER, Secret::new(password));
        config.request_timeout_seconds = 10;
        CalDav::new(config).expect("a valid base URL")
    }

    /// What Radicale logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radicale.log")).unwrap_or_default()
    }

    /// Takes the server down (its storage stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Brings a stopped server back on the same port with the same storage.
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old socket may linger for a moment; try again until the deadline.
                Err(failure) if Instant::now() > deadline => {
                    panic!("radicale did not come back on {}:\n{failure}", self.addr)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether an HTTP server answers a request on `addr`.
fn answers_http(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(1_000)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(1_000)));
    if stream
        .write_all(b"OPTIONS / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}
