//! A test peer that runs the platform's background side — read models, sagas and the effect
//! worker — as its own OS process, so the saga crash suite can kill it at a step boundary and
//! start it again.
//!
//! ```text
//! saga-worker DATABASE_URL STALWART_BASE_URL DNS_ADDR [before:N | after:N]
//! ```
//!
//! With a crash point, the process SIGKILLs itself just before the N-th mail-server call
//! leaves (the attempt is on the ledger, the call never went) or just after it returned (the
//! server applied it, the outcome is not on the ledger). It runs until killed.

use std::process::ExitCode;

use dezky_commands::{Ledger, LedgerOptions};
use dezky_tests::saga_rig::{stalwart, CrashPoint, Crashing, Platform};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(mail), Some(dns)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: saga-worker DATABASE_URL STALWART_BASE_URL DNS_ADDR [before:N|after:N]");
        return ExitCode::from(2);
    };
    let crash = match args.get(3).map(|a| CrashPoint::parse(a)) {
        Some(None) => {
            eprintln!("a crash point is before:N or after:N");
            return ExitCode::from(2);
        }
        Some(point) => point,
        None => None,
    };
    let Ok(dns) = dns.parse() else {
        eprintln!("DNS_ADDR is IP:PORT");
        return ExitCode::from(2);
    };
    let ledger = match Ledger::open(&LedgerOptions::new(url.clone())).await {
        Ok(ledger) => ledger,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(1);
        }
    };
    let platform = Platform::start(&ledger, Crashing::new(stalwart(mail), crash), dns, 8).await;
    if let Err(error) = platform {
        eprintln!("{error}");
        return ExitCode::from(1);
    }
    println!("started");
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
