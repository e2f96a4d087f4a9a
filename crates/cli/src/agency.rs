//! `mirsal agency`: the directory of agencies the router serves.
//!
//! The directory is a JSON file the router re-reads when it changes, so these
//! commands take effect without a restart. `add` issues the agency's certificates
//! (unless the PKI already holds current ones) and registers them.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use clap::{Args, Subcommand, ValueEnum};
use mirsal_envelope::{AgencyCode, pki::KeyKind};
use mirsal_router::directory::{AgencyEntry, AgencyStatus, Clearance, Directory};

use crate::{
    files,
    pki::{IssueRequest, PkiDir, PkiDirArgs},
};

#[derive(Debug, Subcommand)]
pub(crate) enum AgencyCommand {
    /// Register an agency (issuing its certificates if needed).
    Add(AddArgs),
    /// Refuse the agency's submissions and stop delivering to it.
    Suspend(CodeArgs),
    /// Let a suspended agency send and receive again.
    Reactivate(CodeArgs),
    /// Remove the agency for good: its certificates are revoked, its archive is kept.
    Remove(CodeArgs),
    /// List the agencies.
    List(ListArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct DirectoryArgs {
    /// The directory file the router reads.
    #[arg(long, env = "MIRSAL_DIRECTORY", default_value = "directory.json")]
    pub(crate) directory: PathBuf,
    #[command(flatten)]
    pub(crate) pki: PkiDirArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClearanceArg {
    Unclassified,
    Restricted,
    Confidential,
    Secret,
}

impl From<ClearanceArg> for Clearance {
    fn from(value: ClearanceArg) -> Self {
        match value {
            ClearanceArg::Unclassified => Self::Unclassified,
            ClearanceArg::Restricted => Self::Restricted,
            ClearanceArg::Confidential => Self::Confidential,
            ClearanceArg::Secret => Self::Secret,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The agency code, e.g. MOF.
    code: String,
    /// The agency's name in English.
    #[arg(long)]
    name: String,
    /// The agency's name in Arabic.
    #[arg(long)]
    name_ar: Option<String>,
    /// The highest classification it may send or receive.
    #[arg(long, value_enum, default_value = "secret")]
    max_classification: ClearanceArg,
    #[command(flatten)]
    dir: DirectoryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CodeArgs {
    code: String,
    #[command(flatten)]
    dir: DirectoryArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    dir: DirectoryArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: AgencyCommand) -> Result<()> {
    match command {
        AgencyCommand::Add(args) => {
            let code = AgencyCode::new(args.code)?;
            let entry = register(
                &args.dir,
                &code,
                &args.name,
                args.name_ar.as_deref(),
                args.max_classification.into(),
            )?;
            println!("registered {} ({}) in {}", entry.code, entry.name_en, args.dir.directory.display());
            Ok(())
        }
        AgencyCommand::Suspend(args) => set_status(&args, AgencyStatus::Suspended),
        AgencyCommand::Reactivate(args) => set_status(&args, AgencyStatus::Active),
        AgencyCommand::Remove(args) => {
            let code = AgencyCode::new(args.code.as_str())?;
            set_status(&args, AgencyStatus::Removed)?;
            let pki = PkiDir::new(&args.dir.pki.pki_dir);
            match pki.revoke(&code, Utc::now()) {
                Ok(count) => println!("revoked {count} certificate(s) of {code}"),
                Err(error) => eprintln!("note: {error:#}"),
            }
            Ok(())
        }
        AgencyCommand::List(args) => {
            let directory = Directory::load(&args.dir.directory)?;
            if args.json {
                let agencies: Vec<&AgencyEntry> = directory.agencies().collect();
                println!("{}", serde_json::to_string_pretty(&agencies)?);
            } else {
                let mut table = comfy_table::Table::new();
                table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED).set_header([
                    "CODE",
                    "NAME",
                    "الاسم",
                    "STATUS",
                    "CLEARANCE",
                ]);
                for agency in directory.agencies() {
                    table.add_row([
                        agency.code.clone(),
                        agency.name_en.clone(),
                        agency.name_ar.clone(),
                        format!("{:?}", agency.status).to_lowercase(),
                        format!("{:?}", agency.max_classification).to_lowercase(),
                    ]);
                }
                println!("{table}");
            }
            Ok(())
        }
    }
}

/// Issues (if needed) and registers an agency; returns its directory entry.
pub(crate) fn register(
    dir: &DirectoryArgs,
    code: &AgencyCode,
    name: &str,
    name_ar: Option<&str>,
    clearance: Clearance,
) -> Result<AgencyEntry> {
    let pki = PkiDir::new(&dir.pki.pki_dir);
    let mut directory = Directory::load(&dir.directory)?;
    if let Some(existing) = directory.get(code.as_str())
        && existing.status != AgencyStatus::Removed
    {
        bail!("{code} is already registered ({:?}); use suspend or reactivate", existing.status);
    }
    let index = pki.load_index()?;
    let current = index.certificates.iter().any(|e| e.code == code.as_str() && e.revoked_at.is_none());
    if !current {
        let request = IssueRequest { name, name_ar, kind: KeyKind::EcP256, days: 825, force: true };
        pki.issue(code, &request, Utc::now())?;
    }
    let read = |usage| -> Result<String> {
        let (_, certificate) = pki.credentials(code, usage);
        String::from_utf8(files::read(&certificate)?).context("certificate is not PEM text")
    };
    let entry = AgencyEntry {
        code: code.to_string(),
        name_en: name.to_owned(),
        name_ar: name_ar.unwrap_or_default().to_owned(),
        status: AgencyStatus::Active,
        max_classification: clearance,
        signing_certificate: read("signing")?,
        sealing_certificate: read("sealing")?,
    };
    directory.upsert(entry.clone());
    directory.save(&dir.directory)?;
    Ok(entry)
}

fn set_status(args: &CodeArgs, status: AgencyStatus) -> Result<()> {
    let mut directory = Directory::load(&args.dir.directory)?;
    let Some(entry) = directory.get_mut(&args.code) else {
        bail!("{} is not in {}", args.code, args.dir.directory.display());
    };
    if entry.status == AgencyStatus::Removed && status != AgencyStatus::Removed {
        bail!("{} was removed; add it again instead", args.code);
    }
    entry.status = status;
    directory.save(&args.dir.directory)?;
    println!("{} is now {:?}", args.code, status);
    Ok(())
}
