//! `mirsal`: the command line of the Mirsal correspondence bus.
//!
//! - `mirsal pki …`: the platform CA, agency certificates, revocation ([`pki`]).
//! - `mirsal envelope …`: craft, seal, sign, verify, open and inspect envelopes on
//!   files ([`envelope`]).
//! - `mirsal agency …`: the directory of agencies the router serves ([`agency`]).
//! - `mirsal audit verify`: check a stopped router's audit chain ([`audit`]).
//! - `mirsal status | track | search | queues | dead-letters …`: a running router's
//!   figures, tracking and dead letters, through its HTTP API ([`ops`]).
//!
//! Exit codes: 0 success; 1 an envelope or draft was refused (the message names the
//! reason code), the audit chain is broken (the message names the first bad event), or
//! a replayed dead letter was not delivered (refused again or kept); 2 anything else
//! went wrong (bad arguments, unreadable files, an HTTP error or an unreachable router).

mod agency;
mod audit;
mod envelope;
mod files;
mod ops;
mod pki;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "mirsal", version, about = "Mirsal correspondence bus: operators' and integrators' tool")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// The platform CA: init, issue, revoke, crl, list.
    #[command(subcommand)]
    Pki(pki::PkiCommand),
    /// Envelopes on files: new, seal, sign, verify, open, inspect.
    #[command(subcommand)]
    Envelope(envelope::EnvelopeCommand),
    /// The directory of agencies: add, suspend, reactivate, remove, list.
    #[command(subcommand)]
    Agency(agency::AgencyCommand),
    /// The router's audit log: verify.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// A running router: status, track, search, queues, dead-letters.
    #[command(flatten)]
    Ops(ops::OpsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pki(command) => pki::run(command),
        Command::Envelope(command) => envelope::run(command),
        Command::Agency(command) => agency::run(command),
        Command::Audit(command) => runtime().and_then(|rt| rt.block_on(audit::run(command))),
        Command::Ops(command) => ops::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let line = format!("{error:#}").replace('\n', " ");
            if let Some(refused) = error.downcast_ref::<envelope::Refused>() {
                let reason = refused.reason;
                eprintln!("mirsal: {line} [reason {} {}]", reason as i32, reason.as_str_name());
                ExitCode::from(1)
            } else if error.downcast_ref::<audit::Broken>().is_some()
                || error.downcast_ref::<ops::NotReplayed>().is_some()
            {
                eprintln!("mirsal: {line}");
                ExitCode::from(1)
            } else {
                eprintln!("mirsal: {line}");
                ExitCode::from(2)
            }
        }
    }
}

/// A runtime for the commands that need one (the router's store starts a flusher task).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}
