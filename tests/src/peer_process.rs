//! Waiting for a test peer started as a child process (Radicale, aiosmtpd) to be ready.

use std::process::Child;
use std::time::{Duration, Instant};

/// Polls `ready` until it holds while `child` still runs. Ready must mean "answers its
/// protocol", not "a TCP connect succeeded": a socket can accept before the server loop runs,
/// or belong to another process that took the port while this one failed to bind; checking
/// that the child still runs rules out the second. On failure the child is reaped or killed
/// and the error carries `log()`.
pub fn wait_until_ready(
    child: &mut Child,
    name: &str,
    timeout: Duration,
    ready: impl Fn() -> bool,
    log: impl Fn() -> String,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() && matches!(child.try_wait(), Ok(None)) {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{name} exited with {status}:\n{}", log()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{name} did not listen in time:\n{}", log()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
