//! `mirsal audit`: checks a stopped router's audit log.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use mirsal_envelope::{Policy, TrustStore, Verifier};
use mirsal_router::{audit, store::Store};

use crate::{files, pki::PkiDir, pki::PkiDirArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Recompute the whole hash chain and check the signed heads; report the first bad event.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The router's data directory (the router must be stopped).
    #[arg(long, env = "MIRSAL_ROUTER_DATA_DIR")]
    data_dir: PathBuf,
    #[command(flatten)]
    pki: PkiDirArgs,
}

/// The chain is broken; carries the first bad event.
#[derive(Debug, thiserror::Error)]
#[error("audit chain broken: {0}")]
pub(crate) struct Broken(pub(crate) audit::AuditProblem);

pub(crate) async fn run(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Verify(args) => {
            let pki = PkiDir::new(&args.pki.pki_dir);
            let ca = files::read(&pki.ca_certificate())?;
            let crl = files::read(&pki.crl())?;
            let platform = Verifier::new(TrustStore::from_pem(&ca, &[&crl])?, Policy::default());
            let store = Store::open(&args.data_dir).with_context(|| {
                format!("opening {} (is the router still running?)", args.data_dir.display())
            })?;
            match audit::verify(&store, &platform) {
                Ok(report) => {
                    println!(
                        "audit chain intact: {} events, {} signed heads, last hash {}",
                        report.events, report.signed_heads, report.last_hash
                    );
                    Ok(())
                }
                Err(audit::AuditError::Problem(problem)) => Err(Broken(problem).into()),
                Err(error) => Err(error.into()),
            }
        }
    }
}
