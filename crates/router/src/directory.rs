//! The directory of agencies: who exists, whether they are active, what they may
//! exchange, and their certificates (handed to other agencies for sealing).
//!
//! It lives in one JSON file that `mirsal agency …` writes atomically and the router
//! re-reads whenever the file changes, so agencies are added, suspended and reactivated
//! without a restart.
//!
//! ```json
//! { "agencies": [ { "code": "MOF", "name_en": "Ministry of Finance", "name_ar": "وزارة المالية",
//!                   "status": "active", "max_classification": "secret",
//!                   "signing_certificate": "-----BEGIN CERTIFICATE-----…",
//!                   "sealing_certificate": "-----BEGIN CERTIFICATE-----…" } ] }
//! ```

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    time::SystemTime,
};

use mirsal_envelope::{code::is_valid, pb};
use serde::{Deserialize, Serialize};

/// Whether an agency takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgencyStatus {
    /// Sends and receives.
    Active,
    /// Temporarily barred: its submissions are refused and nothing is delivered to it.
    Suspended,
    /// Gone for good; its archive is kept.
    Removed,
}

impl AgencyStatus {
    pub fn wire(self) -> pb::AgencyStatus {
        match self {
            Self::Active => pb::AgencyStatus::Active,
            Self::Suspended => pb::AgencyStatus::Suspended,
            Self::Removed => pb::AgencyStatus::Removed,
        }
    }
}

/// The highest classification an agency may send or receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clearance {
    Unclassified,
    Restricted,
    Confidential,
    Secret,
}

impl Clearance {
    /// Whether letters of `classification` are within this clearance.
    pub fn allows(self, classification: pb::Classification) -> bool {
        let needed = match classification {
            pb::Classification::Unspecified | pb::Classification::Unclassified => Self::Unclassified,
            pb::Classification::Restricted => Self::Restricted,
            pb::Classification::Confidential => Self::Confidential,
            pb::Classification::Secret => Self::Secret,
        };
        needed <= self
    }
}

fn secret() -> Clearance {
    Clearance::Secret
}

/// One agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyEntry {
    pub code: String,
    pub name_en: String,
    #[serde(default)]
    pub name_ar: String,
    pub status: AgencyStatus,
    #[serde(default = "secret")]
    pub max_classification: Clearance,
    /// PEM.
    #[serde(default)]
    pub signing_certificate: String,
    /// PEM.
    #[serde(default)]
    pub sealing_certificate: String,
}

/// A directory file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read the directory {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the directory {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the directory {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct DirectoryFile {
    agencies: Vec<AgencyEntry>,
}

/// The agencies, by code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    agencies: BTreeMap<String, AgencyEntry>,
}

impl Directory {
    /// Reads the directory file; a missing file is an empty directory.
    ///
    /// # Errors
    /// A file that cannot be read or does not parse, a bad or repeated agency code.
    pub fn load(path: &Path) -> Result<Self, DirectoryError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(DirectoryError::Read { path: path.into(), source }),
        };
        let invalid = |message: String| DirectoryError::Invalid { path: path.into(), message };
        let file: DirectoryFile = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        let mut agencies = BTreeMap::new();
        for entry in file.agencies {
            if !is_valid(&entry.code) || entry.code == mirsal_envelope::PLATFORM_CODE {
                return Err(invalid(format!("{:?} is not an agency code", entry.code)));
            }
            if let Some(previous) = agencies.insert(entry.code.clone(), entry) {
                return Err(invalid(format!("{} is listed twice", previous.code)));
            }
        }
        Ok(Self { agencies })
    }

    /// Writes the directory atomically (temporary file, fsync, rename).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<(), DirectoryError> {
        let write = |source| DirectoryError::Write { path: path.into(), source };
        let file = DirectoryFile { agencies: self.agencies.values().cloned().collect() };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| write(std::io::Error::other(e)))?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write)?;
        let mut temporary = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
        temporary.write_all(&json).map_err(write)?;
        temporary.as_file().sync_all().map_err(write)?;
        temporary.persist(path).map_err(|e| write(e.error))?;
        Ok(())
    }

    pub fn get(&self, code: &str) -> Option<&AgencyEntry> {
        self.agencies.get(code)
    }

    /// Adds or replaces an agency.
    pub fn upsert(&mut self, entry: AgencyEntry) {
        self.agencies.insert(entry.code.clone(), entry);
    }

    pub fn get_mut(&mut self, code: &str) -> Option<&mut AgencyEntry> {
        self.agencies.get_mut(code)
    }

    pub fn agencies(&self) -> impl Iterator<Item = &AgencyEntry> {
        self.agencies.values()
    }

    /// Whether `code` exists and is active.
    pub fn is_active(&self, code: &str) -> bool {
        self.get(code).is_some_and(|a| a.status == AgencyStatus::Active)
    }
}

/// The modification time of `path`, to notice changes cheaply.
pub fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
