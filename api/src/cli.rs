//! The `dezky` command line: what each subcommand takes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::settings::Settings;

/// dezky control plane.
#[derive(Debug, Parser)]
#[command(name = "dezky", version, about = "dezky control plane")]
pub struct Cli {
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub settings: Settings,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (also done at every start-up).
    Migrate,
    /// Show the ledger at work: run commands through it, sign a checkpoint, verify the chain.
    Demo {
        /// How many commands to run.
        #[arg(long, default_value_t = 25)]
        commands: u32,
    },
    /// Checkpoint signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Audit the ledger: verify, export, sign a checkpoint.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Synthetic load through the real command path.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `dezky keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new ed25519 signing key: the private key goes to `--out` (mode 0600), the
    /// public key line to stdout.
    Generate {
        /// Key name (defaults to the origin).
        #[arg(long)]
        name: Option<String>,
        /// Where to write the private key; refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the trusted public keys, in the format `audit verify --keys` reads.
    Public,
}

/// `dezky audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the whole chain and its checkpoints: the configured store, or an export file
    /// offline. Exits 1 and names the first break when there is one.
    Verify {
        /// Verify this export file instead of the store (needs `--keys`).
        #[arg(long, requires = "keys")]
        export: Option<PathBuf>,
        /// Trusted public keys file for offline verification.
        #[arg(long, requires = "export")]
        keys: Option<PathBuf>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Export events and checkpoints as JSON Lines (to stdout unless `--output`).
    Export {
        /// First position to export.
        #[arg(long)]
        since: Option<u64>,
        /// Export one tenant's events in full, the rest as hash-only `elided` lines.
        #[arg(long)]
        tenant: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Sign and store a checkpoint of the current head now.
    Checkpoint,
}

/// `dezky bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append commands through cqrs-es and the ledger, and report commands per second.
    Append(crate::bench::AppendArgs),
}
