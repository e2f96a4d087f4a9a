//! Crash points, for testing what the SDK promises when the process dies.
//!
//! When the environment variable [`CRASH_AT`] names one of the points below, the
//! process aborts there (no destructors, no flushes: as if killed) the first time a
//! letter or receipt passes it. Unset, every point is a no-op. The tests run the real `mirsal-adapter` binary with it set, restart it
//! without, and check that nothing was lost and nothing was handed over twice.

use std::sync::OnceLock;

/// The environment variable naming the crash point.
pub const CRASH_AT: &str = "MIRSAL_ADAPTER_CRASH_AT";

/// After `send` made the envelope durable in the outbox, before it returns.
pub const OUTBOX_WRITTEN: &str = "outbox-written";
/// After an outbox entry was published, before the broker's confirm.
pub const PUBLISHED_UNCONFIRMED: &str = "published-unconfirmed";
/// After the broker confirmed, before the outbox entry is removed.
pub const CONFIRMED_NOT_CLEARED: &str = "confirmed-not-cleared";
/// After a delivery arrived from the inbox queue, before it is stored.
pub const RECEIVED_NOT_STORED: &str = "received-not-stored";
/// After a delivery was stored durably, before it is acknowledged to the broker.
pub const STORED_NOT_ACKED: &str = "stored-not-acked";
/// After an item was handed to the application (returned by `next_item`, or accepted by
/// the webhook), before it was acknowledged.
pub const HANDED_NOT_ACKED: &str = "handed-not-acked";
/// After the application acknowledged an item (and its `delivered` receipt was queued),
/// before the receipt is published.
pub const ACKED_NOT_RECEIPTED: &str = "acked-not-receipted";

/// Every crash point, in the order of the SDK documentation's table.
pub const ALL: &[&str] = &[
    OUTBOX_WRITTEN,
    PUBLISHED_UNCONFIRMED,
    CONFIRMED_NOT_CLEARED,
    RECEIVED_NOT_STORED,
    STORED_NOT_ACKED,
    HANDED_NOT_ACKED,
    ACKED_NOT_RECEIPTED,
];

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED.get_or_init(|| std::env::var(CRASH_AT).ok()).as_deref()
}

/// Aborts the process if `point` is the armed crash point and the envelope at hand is a
/// letter or a receipt (the adapter's own directory requests and the platform's notices
/// pass, so a process armed from its start still comes up).
pub fn point_for(point: &str, kind: crate::store::Kind) {
    use crate::store::Kind;
    if matches!(kind, Kind::Letter | Kind::Sealed | Kind::Receipt) {
        self::point(point);
    }
}

/// Aborts the process if `point` is the armed crash point.
pub fn point(point: &str) {
    if armed() == Some(point) {
        eprintln!("mirsal-adapter: crash point {point} reached; aborting");
        std::process::abort();
    }
}
