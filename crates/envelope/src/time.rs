//! Time on the wire is `google.protobuf.Timestamp`; in the API it is [`Time`].

use chrono::{DateTime, NaiveDate, Utc};
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use pbjson_types::Timestamp;

/// A point in time, UTC.
pub type Time = DateTime<Utc>;

/// The wire form of `time`.
pub fn to_timestamp(time: Time) -> Timestamp {
    Timestamp::from(time)
}

/// The time a wire timestamp stands for, or `None` when it is out of range.
pub fn from_timestamp(ts: &Timestamp) -> Option<Time> {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        return None;
    }
    DateTime::from_timestamp(ts.seconds, ts.nanos as u32)
}

/// Whether `date` is an ISO 8601 calendar date, `YYYY-MM-DD`.
pub fn is_calendar_date(date: &str) -> bool {
    date.len() == 10 && NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
}

/// Seconds since the Unix epoch of an ASN.1 time (certificate and CRL times).
///
/// # Errors
/// OpenSSL failures.
pub fn unix_time(time: &Asn1TimeRef) -> Result<i64, openssl::error::ErrorStack> {
    let epoch = Asn1Time::from_unix(0)?;
    let diff = epoch.diff(time)?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// An ASN.1 time as [`Time`], or `None` when it cannot be read.
pub fn from_asn1(time: &Asn1TimeRef) -> Option<Time> {
    unix_time(time).ok().and_then(|seconds| DateTime::from_timestamp(seconds, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let now = Utc::now();
        assert_eq!(from_timestamp(&to_timestamp(now)), Some(now));
    }

    #[test]
    fn out_of_range_timestamps_are_none() {
        assert_eq!(from_timestamp(&Timestamp { seconds: 0, nanos: -1 }), None);
        assert_eq!(from_timestamp(&Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }

    #[test]
    fn calendar_dates() {
        assert!(is_calendar_date("2026-12-04"));
        assert!(!is_calendar_date("2026-02-30"));
        assert!(!is_calendar_date("2026-1-4"));
        assert!(!is_calendar_date("04/12/2026"));
    }
}
