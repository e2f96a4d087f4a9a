//! The adapter's durable state in sled:
//! - `outbox` (sequence → envelope to publish): written before `send` returns, removed
//!   only once the broker confirmed the publish;
//! - `inbox` (envelope id → received item) and `pending` (sequence → envelope id, the
//!   items the application has not acknowledged yet, oldest first);
//! - `sent` (envelope id → the local tracking view of a letter this agency sent);
//! - `keys` (the caller's idempotency key → envelope id);
//! - `directory` (agency code → the platform's directory entry, for sealing).
//!
//! Every change is one sled transaction; callers flush before they promise anything.

use std::path::Path;

use bytes::Bytes;
use prost::Message as _;
use sled::{
    Transactional as _, Tree,
    transaction::{ConflictableTransactionError, TransactionError},
};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("adapter storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored {what} does not decode: {source}")]
    Corrupt { what: &'static str, source: prost::DecodeError },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

pub use mirsal_envelope::Kind;

/// An envelope waiting to be published.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutboxEntry {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bytes = "bytes", tag = "2")]
    pub envelope: Bytes,
    #[prost(enumeration = "Kind", tag = "3")]
    pub kind: i32,
    #[prost(int64, tag = "4")]
    pub queued_at_ms: i64,
}

/// Where a received item stands with the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ItemState {
    Unknown = 0,
    /// Stored here, not yet acknowledged by the application.
    Pending = 1,
    /// The application stored it.
    Acked = 2,
    /// Kept only to recognise duplicates (directory snapshots the adapter asked for).
    Internal = 3,
}

/// A received envelope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InboxRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    /// The envelope exactly as received: the recipient's proof.
    #[prost(bytes = "bytes", tag = "2")]
    pub envelope: Bytes,
    #[prost(enumeration = "Kind", tag = "3")]
    pub kind: i32,
    #[prost(enumeration = "ItemState", tag = "4")]
    pub state: i32,
    #[prost(int64, tag = "5")]
    pub received_at_ms: i64,
    #[prost(uint64, tag = "6")]
    pub sequence: u64,
    #[prost(int64, tag = "7")]
    pub acked_at_ms: i64,
    /// Statuses this agency reported for the letter (`delivered`, `registered`, ...).
    #[prost(string, repeated, tag = "8")]
    pub reported: Vec<String>,
}

/// One step of a sent letter at one recipient, as this agency learned it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SentStep {
    #[prost(string, tag = "1")]
    pub status: String,
    #[prost(int64, tag = "2")]
    pub at_ms: i64,
    #[prost(string, tag = "3")]
    pub detail: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SentRecipient {
    #[prost(string, tag = "1")]
    pub agency: String,
    #[prost(string, tag = "2")]
    pub status: String,
    #[prost(message, repeated, tag = "3")]
    pub steps: Vec<SentStep>,
}

/// The local tracking view of a letter this agency sent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SentRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub subject: String,
    #[prost(int64, tag = "3")]
    pub created_at_ms: i64,
    /// `queued` (in the outbox), `published`, `accepted`, `rejected`, `failed`.
    #[prost(string, tag = "4")]
    pub state: String,
    #[prost(int64, tag = "5")]
    pub accepted_at_ms: i64,
    #[prost(uint64, tag = "6")]
    pub audit_sequence: u64,
    #[prost(int32, tag = "7")]
    pub rejected_code: i32,
    #[prost(string, tag = "8")]
    pub rejected_text: String,
    #[prost(message, repeated, tag = "9")]
    pub recipients: Vec<SentRecipient>,
    #[prost(string, tag = "10")]
    pub classification: String,
    #[prost(int64, tag = "11")]
    pub published_at_ms: i64,
}

/// Which tree a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TreeName {
    Outbox,
    Inbox,
    Pending,
    Sent,
    Keys,
    Directory,
}

/// Writes applied together.
#[derive(Debug, Default)]
pub struct Batch {
    puts: Vec<(TreeName, Vec<u8>, Vec<u8>)>,
    removes: Vec<(TreeName, Vec<u8>)>,
}

impl Batch {
    pub fn queue(&mut self, sequence: u64, entry: &OutboxEntry) {
        self.puts.push((TreeName::Outbox, sequence.to_be_bytes().to_vec(), entry.encode_to_vec()));
    }

    pub fn unqueue(&mut self, sequence: u64) {
        self.removes.push((TreeName::Outbox, sequence.to_be_bytes().to_vec()));
    }

    pub fn put_item(&mut self, item: &InboxRecord) {
        self.puts.push((TreeName::Inbox, item.id.as_bytes().to_vec(), item.encode_to_vec()));
        let pending = ItemState::try_from(item.state) == Ok(ItemState::Pending);
        let key = item.sequence.to_be_bytes().to_vec();
        if pending {
            self.puts.push((TreeName::Pending, key, item.id.as_bytes().to_vec()));
        } else {
            self.removes.push((TreeName::Pending, key));
        }
    }

    pub fn put_sent(&mut self, record: &SentRecord) {
        self.puts.push((TreeName::Sent, record.id.as_bytes().to_vec(), record.encode_to_vec()));
    }

    pub fn put_key(&mut self, key: &str, id: &str) {
        self.puts.push((TreeName::Keys, key.as_bytes().to_vec(), id.as_bytes().to_vec()));
    }

    pub fn put_directory(&mut self, code: &str, entry: &mirsal_envelope::pb::DirectoryEntry) {
        self.puts.push((TreeName::Directory, code.as_bytes().to_vec(), entry.encode_to_vec()));
    }
}

/// The adapter's storage.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    outbox: Tree,
    inbox: Tree,
    pending: Tree,
    sent: Tree,
    keys: Tree,
    directory: Tree,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    ///
    /// # Errors
    /// sled cannot open it (e.g. another adapter process holds it).
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new().path(dir).open()?;
        Ok(Self {
            outbox: db.open_tree("outbox")?,
            inbox: db.open_tree("inbox")?,
            pending: db.open_tree("pending")?,
            sent: db.open_tree("sent")?,
            keys: db.open_tree("keys")?,
            directory: db.open_tree("directory")?,
            db,
        })
    }

    /// A new sequence number, increasing across restarts.
    ///
    /// # Errors
    /// sled failures.
    pub fn next_sequence(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    /// Applies `batch` atomically.
    ///
    /// # Errors
    /// sled failures.
    pub fn commit(&self, batch: &Batch) -> Result<()> {
        let trees = (&self.outbox, &self.inbox, &self.pending, &self.sent, &self.keys, &self.directory);
        let result: Result<(), TransactionError<()>> =
            trees.transaction(|(outbox, inbox, pending, sent, keys, directory)| {
                let tree = |name: TreeName| match name {
                    TreeName::Outbox => outbox,
                    TreeName::Inbox => inbox,
                    TreeName::Pending => pending,
                    TreeName::Sent => sent,
                    TreeName::Keys => keys,
                    TreeName::Directory => directory,
                };
                for (name, key) in &batch.removes {
                    tree(*name).remove(key.as_slice())?;
                }
                for (name, key, value) in &batch.puts {
                    tree(*name).insert(key.as_slice(), value.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(error)) => Err(error.into()),
            // The closure never aborts.
            Err(TransactionError::Abort(())) => {
                Err(sled::Error::ReportableBug("transaction aborted".into()).into())
            }
        }
    }

    /// Makes everything written so far durable.
    ///
    /// # Errors
    /// sled failures.
    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// The oldest `limit` outbox entries with their sequence numbers.
    ///
    /// # Errors
    /// sled failures, undecodable entries.
    pub fn outbox(&self, limit: usize) -> Result<Vec<(u64, OutboxEntry)>> {
        self.outbox
            .iter()
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                let sequence = <[u8; 8]>::try_from(key.as_ref()).map_or(0, u64::from_be_bytes);
                Ok((sequence, decode(&value, "outbox entry")?))
            })
            .collect()
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// The received item `id`.
    ///
    /// # Errors
    /// sled failures, undecodable records.
    pub fn item(&self, id: &str) -> Result<Option<InboxRecord>> {
        self.inbox.get(id.as_bytes())?.map(|v| decode(&v, "inbox item")).transpose()
    }

    /// Pending items after sequence `after`, oldest first, at most `limit`.
    ///
    /// # Errors
    /// sled failures, undecodable records.
    pub fn pending(&self, after: Option<u64>, limit: usize) -> Result<Vec<InboxRecord>> {
        let start = after.map_or(0, |s| s.saturating_add(1)).to_be_bytes();
        let mut items = Vec::new();
        for entry in self.pending.range(start.as_slice()..).take(limit) {
            let (_, id) = entry?;
            if let Some(item) = self.item(&String::from_utf8_lossy(&id))? {
                items.push(item);
            }
        }
        Ok(items)
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The tracking view of sent letter `id`.
    ///
    /// # Errors
    /// sled failures, undecodable records.
    pub fn sent(&self, id: &str) -> Result<Option<SentRecord>> {
        self.sent.get(id.as_bytes())?.map(|v| decode(&v, "sent record")).transpose()
    }

    /// The envelope id sent under idempotency key `key`.
    ///
    /// # Errors
    /// sled failures.
    pub fn key(&self, key: &str) -> Result<Option<String>> {
        Ok(self.keys.get(key.as_bytes())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The directory entry of agency `code`, as last received from the platform.
    ///
    /// # Errors
    /// sled failures, undecodable records.
    pub fn directory_entry(&self, code: &str) -> Result<Option<mirsal_envelope::pb::DirectoryEntry>> {
        self.directory.get(code.as_bytes())?.map(|v| decode(&v, "directory entry")).transpose()
    }

    pub fn directory_len(&self) -> usize {
        self.directory.len()
    }
}

fn decode<T: prost::Message + Default>(bytes: &[u8], what: &'static str) -> Result<T> {
    T::decode(bytes).map_err(|source| StoreError::Corrupt { what, source })
}
