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
    /// Run the platform: GraphQL (with an explorer), health, readiness, metrics, the
    /// ledger's public keys, the projection runners and the checkpointer.
    Serve(crate::serve::ServeArgs),
    /// Apply pending database migrations (also done at every start-up).
    Migrate,
    /// Development helpers.
    #[command(subcommand)]
    Dev(DevCommand),
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
    /// Projections: status of every build, rebuild beside the live build.
    #[command(subcommand)]
    Projections(crate::projections_cli::ProjectionsCommand),
    /// Saga effects: status of every effect, an operator's retry.
    #[command(subcommand)]
    Sagas(crate::sagas_cli::SagasCommand),
    /// Probe the services the platform depends on (`DEZKY_HEALTH_*`) once and print what
    /// answered; exits 1 when a configured service is down or timed out.
    Health,
    /// Synthetic load through the real command path.
    #[command(subcommand)]
    Bench(BenchSuite),
}

/// `dezky dev …`
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Print an access token that `dezky serve --dev` accepts (signed by the local
    /// development key, valid for eight hours).
    Token {
        /// Whose token.
        #[arg(long, value_enum)]
        role: DevRole,
        /// The tenant (slug) whose owner (tenant-admin) or first plain member (member) the
        /// token is for.
        #[arg(long, required_if_eq_any([("role", "tenant-admin"), ("role", "member")]))]
        tenant: Option<String>,
        /// The partner a partner-staff token works for.
        #[arg(long, default_value = "dev-partner")]
        partner: String,
    },
}

/// Roles a development token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DevRole {
    /// An operator (platform admin).
    PlatformAdmin,
    /// Partner staff.
    Partner,
    /// A tenant's owner.
    TenantAdmin,
    /// A tenant's plain member.
    Member,
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
    /// offline. Exits 0 intact, 1 on a break (naming the first), 2 on bad usage, 3 when a
    /// file cannot be read (docs/ledger-format.md §7).
    Verify {
        /// Verify this export file instead of the store (needs `--keys`).
        #[arg(long, requires = "keys")]
        export: Option<PathBuf>,
        /// Trusted public keys file for offline verification.
        #[arg(long, requires = "export")]
        keys: Option<PathBuf>,
        /// Accept an export whose last events no checkpoint covers, reporting them as
        /// unsigned instead of as an `unsigned_tail` break.
        #[arg(long, requires = "export")]
        allow_unsigned_tail: bool,
        /// The longest line of an export read, in bytes; a longer one is a `line_too_long`
        /// break.
        #[arg(long, requires = "export", default_value_t = dezky_commands::export::DEFAULT_MAX_LINE_BYTES)]
        max_line_bytes: usize,
        /// Print the report (or the usage or read error) as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Export events and checkpoints as JSON Lines (to stdout unless `--output`).
    Export {
        /// First position to export.
        #[arg(long)]
        since: Option<u64>,
        /// Export one tenant's events in full, the rest as hash-only `elided` lines.
        #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
        tenant: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Sign and store a checkpoint of the current head now.
    Checkpoint,
}

/// `dezky bench …`: the ledger's benchmarks and the API's.
#[derive(Debug, Subcommand)]
pub enum BenchSuite {
    /// The ledger's: `append` and `verify`.
    #[command(flatten)]
    Ledger(BenchCommand),
    /// Serve GraphQL in-process on a scratch database and time the tenant-detail query and
    /// `createTenant` under an open-loop load (fixed arrival rate): p50/p90/p99/max.
    Graphql(crate::bench_graphql::GraphqlArgs),
    /// Write N events of tenant traffic to a scratch database, then time a rebuild of the
    /// tenant directory and of the audit timeline, each until the new build is live.
    Rebuild(crate::bench_rebuild::RebuildArgs),
}

/// `dezky bench append|verify`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append commands through cqrs-es and the ledger, and report commands per second.
    Append(crate::bench::AppendArgs),
    /// Write a synthetic, fully valid export of N events (with signed checkpoints) to a
    /// temporary file and time offline verification of it.
    Verify(crate::bench::VerifyArgs),
}
