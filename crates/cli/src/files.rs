//! Reading and writing the files the CLI works on. Every write is atomic (a temporary
//! file in the same directory, then a rename), and private keys are created with mode
//! 0600 and never silently overwritten.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

/// Reads a whole file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Creates `dir` and its parents with mode 0700.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))
}

/// Writes a secret (a private key) with mode 0600. Refuses to replace an existing file
/// unless `overwrite`.
pub(crate) fn write_secret(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    if !overwrite && path.exists() {
        bail!("{} already exists; refusing to overwrite a key (use --force to replace it)", path.display());
    }
    write_atomic(path, bytes, 0o600, overwrite)
}

/// Writes a public file (certificate, CRL, JSON, envelope) with mode 0644.
pub(crate) fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, 0o644, true)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> Result<()> {
    let dir = parent_of(path);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The temporary file is created 0600, so a secret is never readable by others, even
    // for a moment.
    let mut file = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.display()))?;
    file.as_file().sync_all().with_context(|| format!("cannot sync {}", path.display()))?;
    fs::set_permissions(file.path(), fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    if overwrite {
        file.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    } else {
        file.persist_noclobber(path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
