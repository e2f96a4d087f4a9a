//! `mirsal`: the command line of the Mirsal correspondence bus.
//!
//! - `mirsal pki …`: the platform CA, agency certificates, revocation ([`pki`]).
//! - `mirsal envelope …`: craft, seal, sign, verify, open and inspect envelopes on
//!   files ([`envelope`]).
//!
//! Exit codes: 0 success; 1 an envelope or draft was refused (the message names the
//! reason code); 2 anything else went wrong (bad arguments, unreadable files).

mod envelope;
mod files;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pki(command) => pki::run(command),
        Command::Envelope(command) => envelope::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let line = format!("{error:#}").replace('\n', " ");
            match error.downcast_ref::<envelope::Refused>() {
                Some(refused) => {
                    let reason = refused.reason;
                    eprintln!("mirsal: {line} [reason {} {}]", reason as i32, reason.as_str_name());
                    ExitCode::from(1)
                }
                None => {
                    eprintln!("mirsal: {line}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
