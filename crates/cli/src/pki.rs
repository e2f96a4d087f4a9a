//! `mirsal pki`: the platform CA on disk.
//!
//! ```text
//! pki/
//!   ca.pem  ca.key             the platform CA (key 0600)
//!   platform.pem platform.key  the platform's notice-signing certificate, CN MIRSAL
//!   crl.pem                    the current CRL, signed by the CA
//!   index.json                 every certificate issued, with its serial and status
//!   agencies/CODE/             signing.pem signing.key sealing.pem sealing.key
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use chrono::Utc;
use clap::{Args, Subcommand};
use mirsal_envelope::{
    AgencyCode, Time,
    pki::{Authority, Issued, KeyKind, Revocation, serial_hex},
    time::from_asn1,
};
use serde::{Deserialize, Serialize};

use crate::files;

/// Days a CRL stays current; `mirsal pki crl` re-signs it before then.
const CRL_DAYS: u32 = 30;

#[derive(Debug, Subcommand)]
pub(crate) enum PkiCommand {
    /// Create the platform CA, the platform signing certificate and an empty CRL.
    Init(InitArgs),
    /// Issue an agency's signing and sealing certificates (CN = agency code).
    Issue(IssueArgs),
    /// Revoke every current certificate of an agency and publish a new CRL.
    Revoke(RevokeArgs),
    /// Re-sign the CRL with a fresh validity period (run before it goes stale).
    Crl(PkiDirArgs),
    /// List every certificate issued, with its status.
    List(ListArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct PkiDirArgs {
    /// The PKI directory.
    #[arg(long, env = "MIRSAL_PKI_DIR", default_value = "pki")]
    pub(crate) pki_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct KeyArgs {
    /// Issue RSA keys of this many bits instead of P-256 (2048 or more).
    #[arg(long, value_name = "BITS")]
    rsa: Option<u32>,
    /// Validity in days.
    #[arg(long)]
    days: Option<u32>,
    /// Replace existing keys (an agency's previous certificates are revoked).
    #[arg(long)]
    force: bool,
}

impl KeyArgs {
    fn kind(&self) -> KeyKind {
        self.rsa.map_or(KeyKind::EcP256, KeyKind::Rsa)
    }
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    dir: PkiDirArgs,
    /// The CA's name.
    #[arg(long, default_value = "Mirsal Platform CA")]
    ca_name: String,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    #[command(flatten)]
    dir: PkiDirArgs,
    /// The agency code, e.g. MOF.
    code: String,
    /// The agency's name in English (the certificate's O).
    #[arg(long)]
    name: String,
    /// The agency's name in Arabic (kept in the index).
    #[arg(long)]
    name_ar: Option<String>,
    #[command(flatten)]
    key: KeyArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    dir: PkiDirArgs,
    /// The agency code whose certificates are revoked.
    code: String,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    dir: PkiDirArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(command: PkiCommand) -> Result<()> {
    let now = Utc::now();
    match command {
        PkiCommand::Init(args) => {
            let dir = PkiDir::new(&args.dir.pki_dir);
            dir.init(&args.ca_name, args.key.kind(), args.key.days.unwrap_or(3650), args.key.force, now)?;
            println!("created the platform CA in {}", dir.root.display());
            Ok(())
        }
        PkiCommand::Issue(args) => {
            let dir = PkiDir::new(&args.dir.pki_dir);
            let code = AgencyCode::new(args.code)?;
            let request = IssueRequest {
                name: &args.name,
                name_ar: args.name_ar.as_deref(),
                kind: args.key.kind(),
                days: args.key.days.unwrap_or(825),
                force: args.key.force,
            };
            dir.issue(&code, &request, now)?;
            println!(
                "issued signing and sealing certificates for {code} in {}",
                dir.agency_dir(&code).display()
            );
            Ok(())
        }
        PkiCommand::Revoke(args) => {
            let dir = PkiDir::new(&args.dir.pki_dir);
            let code = AgencyCode::new(args.code)?;
            let count = dir.revoke(&code, now)?;
            println!("revoked {count} certificate(s) of {code}; new CRL in {}", dir.crl().display());
            Ok(())
        }
        PkiCommand::Crl(args) => {
            let dir = PkiDir::new(&args.pki_dir);
            let mut index = dir.load_index()?;
            dir.publish_crl(&dir.authority()?, &mut index, now)?;
            println!("re-signed {}", dir.crl().display());
            Ok(())
        }
        PkiCommand::List(args) => {
            let dir = PkiDir::new(&args.dir.pki_dir);
            let index = dir.load_index()?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&index.certificates)?);
            } else {
                print_table(&index, now);
            }
            Ok(())
        }
    }
}

fn print_table(index: &Index, now: Time) {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED).set_header([
        "CODE",
        "NAME",
        "USAGE",
        "SERIAL",
        "NOT AFTER",
        "STATUS",
    ]);
    for entry in &index.certificates {
        table.add_row([
            entry.code.clone(),
            entry.name_ar.as_ref().map_or_else(|| entry.name.clone(), |ar| format!("{} / {ar}", entry.name)),
            entry.usage.clone(),
            entry.serial.clone(),
            entry.not_after.format("%Y-%m-%d").to_string(),
            entry.status(now).to_owned(),
        ]);
    }
    println!("{table}");
}

/// One certificate the CA issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) code: String,
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name_ar: Option<String>,
    /// `signing`, `sealing` or `platform`.
    pub(crate) usage: String,
    pub(crate) serial: String,
    pub(crate) sha256: String,
    pub(crate) not_before: Time,
    pub(crate) not_after: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_at: Option<Time>,
}

impl Entry {
    fn status(&self, now: Time) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if now > self.not_after {
            "expired"
        } else {
            "active"
        }
    }
}

/// The CA's record of what it issued, in `index.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Index {
    pub(crate) crl_number: u64,
    pub(crate) certificates: Vec<Entry>,
}

/// What to issue for an agency.
#[derive(Debug)]
pub(crate) struct IssueRequest<'a> {
    pub(crate) name: &'a str,
    pub(crate) name_ar: Option<&'a str>,
    pub(crate) kind: KeyKind,
    pub(crate) days: u32,
    pub(crate) force: bool,
}

/// The PKI directory.
#[derive(Debug, Clone)]
pub(crate) struct PkiDir {
    pub(crate) root: PathBuf,
}

impl PkiDir {
    pub(crate) fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    pub(crate) fn ca_certificate(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }
    pub(crate) fn platform_certificate(&self) -> PathBuf {
        self.root.join("platform.pem")
    }
    pub(crate) fn platform_key(&self) -> PathBuf {
        self.root.join("platform.key")
    }
    pub(crate) fn crl(&self) -> PathBuf {
        self.root.join("crl.pem")
    }
    fn index(&self) -> PathBuf {
        self.root.join("index.json")
    }
    pub(crate) fn agency_dir(&self, code: &AgencyCode) -> PathBuf {
        self.root.join("agencies").join(code.as_str())
    }
    /// `(key, certificate)` paths of an agency's `signing` or `sealing` credentials.
    pub(crate) fn credentials(&self, code: &AgencyCode, usage: &str) -> (PathBuf, PathBuf) {
        let dir = self.agency_dir(code);
        (dir.join(format!("{usage}.key")), dir.join(format!("{usage}.pem")))
    }

    /// Creates the CA, the platform certificate and the first CRL.
    pub(crate) fn init(&self, ca_name: &str, kind: KeyKind, days: u32, force: bool, now: Time) -> Result<()> {
        if !force && self.ca_key().exists() {
            bail!(
                "{} already holds a CA; refusing to replace it (use --force to start a new PKI)",
                self.root.display()
            );
        }
        files::private_dir(&self.root)?;
        let authority = Authority::create(ca_name, kind, now, days)?;
        let platform = authority.issue_platform(kind, now, days.min(825))?;
        files::write_secret(&self.ca_key(), &authority.issued().key_pem()?, force)?;
        files::write_public(&self.ca_certificate(), &authority.issued().certificate_pem()?)?;
        files::write_secret(&self.platform_key(), &platform.key_pem()?, force)?;
        files::write_public(&self.platform_certificate(), &platform.certificate_pem()?)?;
        let mut index = Index::default();
        index.certificates.push(entry(
            &platform,
            mirsal_envelope::PLATFORM_CODE,
            "Mirsal platform",
            None,
            "platform",
        )?);
        self.publish_crl(&authority, &mut index, now)
    }

    /// Issues an agency's signing and sealing certificates.
    pub(crate) fn issue(&self, code: &AgencyCode, request: &IssueRequest<'_>, now: Time) -> Result<()> {
        if code.is_platform() {
            bail!("{code} is reserved for the platform");
        }
        let authority = self.authority()?;
        let mut index = self.load_index()?;
        let current = index.certificates.iter().any(|e| e.code == code.as_str() && e.revoked_at.is_none());
        if current && !request.force {
            bail!("{code} already has certificates; refusing to replace them (use --force to re-issue)");
        }
        let credentials = authority.issue_agency(code, request.name, request.kind, now, request.days)?;
        files::private_dir(&self.agency_dir(code))?;
        for (usage, issued) in [("signing", &credentials.signing), ("sealing", &credentials.sealing)] {
            let (key, certificate) = self.credentials(code, usage);
            files::write_secret(&key, &issued.key_pem()?, request.force)?;
            files::write_public(&certificate, &issued.certificate_pem()?)?;
        }
        let revoked = revoke_entries(&mut index, code, now);
        for (usage, issued) in [("signing", &credentials.signing), ("sealing", &credentials.sealing)] {
            index.certificates.push(entry(issued, code.as_str(), request.name, request.name_ar, usage)?);
        }
        if revoked > 0 { self.publish_crl(&authority, &mut index, now) } else { self.save_index(&index) }
    }

    /// Revokes every current certificate of `code`; returns how many.
    pub(crate) fn revoke(&self, code: &AgencyCode, now: Time) -> Result<usize> {
        let authority = self.authority()?;
        let mut index = self.load_index()?;
        let count = revoke_entries(&mut index, code, now);
        if count == 0 {
            bail!("{code} has no current certificate to revoke");
        }
        self.publish_crl(&authority, &mut index, now)?;
        Ok(count)
    }

    /// Signs a CRL of every revoked certificate and saves it with the index.
    pub(crate) fn publish_crl(&self, authority: &Authority, index: &mut Index, now: Time) -> Result<()> {
        index.crl_number += 1;
        let revoked: Vec<Revocation> = index
            .certificates
            .iter()
            .filter_map(|e| {
                e.revoked_at.map(|at| Revocation { serial_hex: e.serial.clone(), revoked_at: at })
            })
            .collect();
        let crl = authority.crl(&revoked, index.crl_number, now, CRL_DAYS)?;
        files::write_public(&self.crl(), &crl.to_pem()?)?;
        self.save_index(index)
    }

    pub(crate) fn authority(&self) -> Result<Authority> {
        let certificate = files::read(&self.ca_certificate())
            .with_context(|| format!("no platform CA in {} (run `mirsal pki init`)", self.root.display()))?;
        let key = files::read(&self.ca_key())?;
        Ok(Authority::from_pem(&certificate, &key)?)
    }

    pub(crate) fn load_index(&self) -> Result<Index> {
        let bytes = files::read(&self.index())
            .with_context(|| format!("no PKI index in {} (run `mirsal pki init`)", self.root.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a valid PKI index", self.index().display()))
    }

    fn save_index(&self, index: &Index) -> Result<()> {
        files::write_public(&self.index(), &serde_json::to_vec_pretty(index)?)
    }
}

fn revoke_entries(index: &mut Index, code: &AgencyCode, now: Time) -> usize {
    let mut count = 0;
    for entry in &mut index.certificates {
        if entry.code == code.as_str() && entry.revoked_at.is_none() {
            entry.revoked_at = Some(now);
            count += 1;
        }
    }
    count
}

fn entry(issued: &Issued, code: &str, name: &str, name_ar: Option<&str>, usage: &str) -> Result<Entry> {
    let certificate = &issued.certificate;
    let time = |t| from_asn1(t).context("certificate time out of range");
    Ok(Entry {
        code: code.to_owned(),
        name: name.to_owned(),
        name_ar: name_ar.map(str::to_owned),
        usage: usage.to_owned(),
        serial: serial_hex(certificate)?,
        sha256: hex::encode(mirsal_envelope::sha256(&certificate.to_der()?)),
        not_before: time(certificate.not_before())?,
        not_after: time(certificate.not_after())?,
        revoked_at: None,
    })
}
