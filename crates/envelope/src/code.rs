//! Agency codes: the identity an agency has on the bus, in certificates, in RabbitMQ
//! user names and in queue names.

use std::{fmt, str::FromStr};

/// The platform's own code: the sender of notices, the recipient of requests, the CN
/// of the platform signing certificate. No agency may hold it.
pub const PLATFORM_CODE: &str = "MIRSAL";

/// A validated agency code, `^[A-Z][A-Z0-9-]{1,31}$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgencyCode(String);

/// The text is not a valid agency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid agency code {0:?}: expected an upper-case letter, then 1 to 31 of A-Z, 0-9 or '-'")]
pub struct InvalidAgencyCode(pub String);

impl AgencyCode {
    /// Checks `code` against the agency code pattern.
    ///
    /// # Errors
    /// [`InvalidAgencyCode`] when it does not match `^[A-Z][A-Z0-9-]{1,31}$`.
    pub fn new(code: impl Into<String>) -> Result<Self, InvalidAgencyCode> {
        let code = code.into();
        if is_valid(&code) { Ok(Self(code)) } else { Err(InvalidAgencyCode(code)) }
    }

    /// The platform's reserved code.
    pub fn platform() -> Self {
        Self(PLATFORM_CODE.to_owned())
    }

    /// Whether this is the platform's reserved code.
    pub fn is_platform(&self) -> bool {
        self.0 == PLATFORM_CODE
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `code` matches `^[A-Z][A-Z0-9-]{1,31}$`.
pub fn is_valid(code: &str) -> bool {
    let bytes = code.as_bytes();
    (2..=32).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes[1..].iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'-')
}

impl fmt::Display for AgencyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AgencyCode {
    type Err = InvalidAgencyCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for AgencyCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<AgencyCode> for String {
    fn from(code: AgencyCode) -> Self {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_pattern() {
        for ok in ["AB", "MOF", "MOH-2", "A1", "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"] {
            assert!(AgencyCode::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in
            ["", "A", "ab", "1AB", "-AB", "MOF ", "MO_F", "MOFé", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456", "mof"]
        {
            assert_eq!(AgencyCode::new(bad), Err(InvalidAgencyCode(bad.to_owned())), "{bad}");
        }
    }
}
