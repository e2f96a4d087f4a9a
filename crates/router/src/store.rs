//! The router's state in sled, behind one small API.
//!
//! Everything lives in one sled tree, each table under its own one-byte key prefix:
//! envelopes (the archive, by envelope id), tracking (letter id, 0, recipient), audit
//! (sequence, big-endian), signed chain heads, completion marks, and the indexes: by thread, by
//! acceptance time, by agency, by registry number, undelivered letters per agency, and
//! the overdue checker's agenda (due time, letter, recipient, kind); and the dead letters
//! taken from the broker, by id and by arrival.
//!
//! Every change goes through [`Store::commit`], which applies a [`Batch`] as one atomic
//! sled batch (cheaper than a multi-tree transaction) and appends its audit events to the
//! hash chain in the same batch, so the archive, the tracking rows and the audit log never
//! disagree. Nothing is
//! durable until [`Store::flush`] returns; the pipeline flushes before it acknowledges
//! anything, and concurrent flushes are grouped into one (group commit).

use std::{path::Path, sync::Mutex};

use prost::Message as _;
use sled::{IVec, Tree};
use tokio::sync::{mpsc, oneshot};

use crate::records::{AuditEvent, ChainHead, DeadLetterRecord, EnvelopeRecord, TrackingRecord};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record {what} does not decode: {source}")]
    Corrupt { what: String, source: prost::DecodeError },
    #[error("the storage flusher stopped")]
    FlusherGone,
    #[error("flushing to disk failed: {0}")]
    Flush(String),
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

const ZERO_HASH: [u8; 32] = [0; 32];

/// Which tree a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeName {
    Envelopes,
    Tracking,
    ByThread,
    Due,
    ByTime,
    ByAgency,
    ByNumber,
    Undelivered,
    Completed,
    DeadLetters,
    DeadLettersByTime,
}

/// An audit event to append; sequence and hashes are filled in by [`Store::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub kind: &'static str,
    pub envelope_id: String,
    pub agency: String,
    pub detail: String,
    pub at_ms: i64,
}

/// Writes applied together, atomically.
#[derive(Debug, Default)]
pub struct Batch {
    puts: Vec<(TreeName, Vec<u8>, Vec<u8>)>,
    removes: Vec<(TreeName, Vec<u8>)>,
    events: Vec<NewEvent>,
    /// Envelope records whose `audit_sequence` is the sequence given to event `.2`.
    sequenced: Vec<(String, EnvelopeRecord, usize)>,
}

impl Batch {
    pub fn put_envelope(&mut self, id: &str, record: &EnvelopeRecord) {
        self.puts.push((TreeName::Envelopes, id.as_bytes().to_vec(), record.encode_to_vec()));
    }

    /// Adds audit event `event` and stores `record` with that event's sequence number
    /// as its `audit_sequence` (the proof of submission).
    pub fn put_envelope_with_event(&mut self, id: &str, record: EnvelopeRecord, event: NewEvent) {
        self.sequenced.push((id.to_owned(), record, self.events.len()));
        self.events.push(event);
    }

    pub fn put_tracking(&mut self, row: &TrackingRecord) {
        self.puts.push((
            TreeName::Tracking,
            tracking_key(&row.letter_id, &row.recipient),
            row.encode_to_vec(),
        ));
    }

    /// The work after accepting envelope `id` is done (its notice or forwarding was
    /// confirmed). A small mark of its own, so the archived record is never rewritten.
    pub fn mark_completed(&mut self, id: &str) {
        self.puts.push((TreeName::Completed, id.as_bytes().to_vec(), Vec::new()));
    }

    pub fn index_thread(&mut self, thread_id: &str, envelope_id: &str) {
        self.puts.push((TreeName::ByThread, pair_key(thread_id, envelope_id), Vec::new()));
    }

    /// Indexes letter `id`, accepted at `at_ms`, for search by time.
    pub fn index_time(&mut self, at_ms: i64, id: &str) {
        self.puts.push((TreeName::ByTime, time_key(at_ms, id), Vec::new()));
    }

    /// Indexes letter `id` under `agency`, which `sent` or received it.
    pub fn index_agency(&mut self, agency: &str, at_ms: i64, id: &str, sent: bool) {
        let mut key = agency.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(&time_key(at_ms, id));
        self.puts.push((TreeName::ByAgency, key, vec![if sent { b's' } else { b'r' }]));
    }

    /// Indexes letter `id` under an outgoing or incoming registry number.
    pub fn index_number(&mut self, number: &str, id: &str) {
        self.puts.push((TreeName::ByNumber, pair_key(number, id), Vec::new()));
    }

    /// Letter `id` of `priority` waits in `agency`'s inbox since `queued_ms` for its
    /// `delivered` receipt (the agencies view: oldest pending, overdue, backlog).
    pub fn undelivered(&mut self, agency: &str, queued_ms: i64, id: &str, priority: i32) {
        let value = vec![u8::try_from(priority).unwrap_or(0)];
        self.puts.push((TreeName::Undelivered, undelivered_key(agency, queued_ms, id), value));
    }

    /// Letter `id` was delivered to `agency`.
    pub fn delivered(&mut self, agency: &str, queued_ms: i64, id: &str) {
        self.removes.push((TreeName::Undelivered, undelivered_key(agency, queued_ms, id)));
    }

    pub fn schedule(&mut self, due: &DueEntry) {
        self.puts.push((TreeName::Due, due.key(), Vec::new()));
    }

    pub fn unschedule(&mut self, due: &DueEntry) {
        self.removes.push((TreeName::Due, due.key()));
    }

    pub fn event(&mut self, event: NewEvent) {
        self.events.push(event);
    }

    /// Keeps dead letter `record` (replacing the one with its id, if any: the index by
    /// arrival keeps the first arrival).
    pub fn put_dead_letter(&mut self, record: &DeadLetterRecord) {
        self.puts.push((TreeName::DeadLetters, record.id.as_bytes().to_vec(), record.encode_to_vec()));
        self.puts.push((
            TreeName::DeadLettersByTime,
            time_key(record.received_at_ms, &record.id),
            Vec::new(),
        ));
    }

    pub fn remove_dead_letter(&mut self, record: &DeadLetterRecord) {
        self.removes.push((TreeName::DeadLetters, record.id.as_bytes().to_vec()));
        self.removes.push((TreeName::DeadLettersByTime, time_key(record.received_at_ms, &record.id)));
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.removes.is_empty() && self.events.is_empty() && self.sequenced.is_empty()
    }
}

/// What the overdue checker must look at, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    pub due_ms: i64,
    pub letter_id: String,
    pub recipient: String,
    pub kind: DueKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueKind {
    Delivery,
    Reply,
}

impl DueEntry {
    fn key(&self) -> Vec<u8> {
        let mut key = (self.due_ms.max(0) as u64).to_be_bytes().to_vec();
        key.extend_from_slice(self.letter_id.as_bytes());
        key.push(0);
        key.extend_from_slice(self.recipient.as_bytes());
        key.push(0);
        key.push(match self.kind {
            DueKind::Delivery => b'd',
            DueKind::Reply => b'r',
        });
        key
    }

    fn from_key(key: &[u8]) -> Option<Self> {
        let (time, rest) = key.split_at_checked(8)?;
        let due_ms = i64::try_from(u64::from_be_bytes(time.try_into().ok()?)).ok()?;
        let mut parts = rest.split(|b| *b == 0);
        let letter_id = String::from_utf8(parts.next()?.to_vec()).ok()?;
        let recipient = String::from_utf8(parts.next()?.to_vec()).ok()?;
        let kind = match parts.next()? {
            b"d" => DueKind::Delivery,
            b"r" => DueKind::Reply,
            _ => return None,
        };
        Some(Self { due_ms, letter_id, recipient, kind })
    }
}

/// `time (big-endian) || id`: sorts by time, then id.
fn time_key(at_ms: i64, id: &str) -> Vec<u8> {
    let mut key = (at_ms.max(0) as u64).to_be_bytes().to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

fn undelivered_key(agency: &str, queued_ms: i64, id: &str) -> Vec<u8> {
    let mut key = agency.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&time_key(queued_ms, id));
    key
}

/// The time and envelope id of a [`time_key`].
fn split_time_key(key: &[u8]) -> Option<(i64, String)> {
    let (time, id) = key.split_at_checked(8)?;
    let at = i64::try_from(u64::from_be_bytes(time.try_into().ok()?)).ok()?;
    Some((at, String::from_utf8(id.to_vec()).ok()?))
}

fn tracking_key(letter_id: &str, recipient: &str) -> Vec<u8> {
    pair_key(letter_id, recipient)
}

fn pair_key(a: &str, b: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(a.len() + b.len() + 1);
    key.extend_from_slice(a.as_bytes());
    key.push(0);
    key.extend_from_slice(b.as_bytes());
    key
}

/// One table of the store: the keys of the shared tree under one prefix byte. Keys
/// given to and returned by a table never include the prefix.
#[derive(Debug, Clone)]
pub struct Table {
    tree: Tree,
    prefix: u8,
}

type Entry = sled::Result<(IVec, IVec)>;

fn strip(item: Entry) -> Entry {
    item.map(|(key, value)| (IVec::from(&key[1..]), value))
}

impl Table {
    fn full(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(key.len() + 1);
        full.push(self.prefix);
        full.extend_from_slice(key);
        full
    }

    /// The value under `key`.
    ///
    /// # Errors
    /// sled failures.
    pub fn get(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        self.tree.get(self.full(key.as_ref()))
    }

    /// Writes `value` under `key` on its own (outside any batch).
    ///
    /// # Errors
    /// sled failures.
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl Into<IVec>) -> sled::Result<Option<IVec>> {
        self.tree.insert(self.full(key.as_ref()), value)
    }

    /// Removes `key` on its own (outside any batch).
    ///
    /// # Errors
    /// sled failures.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        self.tree.remove(self.full(key.as_ref()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> impl DoubleEndedIterator<Item = Entry> + use<> {
        self.tree.scan_prefix(self.full(prefix)).map(strip)
    }

    fn range(&self, start: &[u8], end: &[u8]) -> impl DoubleEndedIterator<Item = Entry> + use<> {
        self.tree.range(self.full(start)..self.full(end)).map(strip)
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = Entry> + use<> {
        self.scan_prefix(&[])
    }

    fn last(&self) -> sled::Result<Option<(IVec, IVec)>> {
        self.iter().next_back().transpose()
    }
}

/// Where the hash chain ends, kept in memory (and found again at start from the last
/// audit event).
#[derive(Debug)]
struct ChainState {
    next_sequence: u64,
    last_hash: Vec<u8>,
}

/// The router's storage.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    envelopes: Table,
    tracking: Table,
    audit: Table,
    heads: Table,
    completed: Table,
    by_thread: Table,
    due: Table,
    by_time: Table,
    by_agency: Table,
    by_number: Table,
    undelivered: Table,
    dead_letters: Table,
    dead_letters_by_time: Table,
    chain: Mutex<ChainState>,
    flush_requests: mpsc::UnboundedSender<oneshot::Sender<Result<(), String>>>,
    flusher: std::thread::JoinHandle<()>,
}

impl Store {
    /// Opens (or creates) the store in `dir` and starts its group-commit flusher. Must
    /// be called inside a tokio runtime.
    ///
    /// # Errors
    /// sled cannot open the directory (e.g. another router holds it).
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_cache(dir, 64 * 1024 * 1024)
    }

    /// Like [`open`](Self::open), with sled's page cache limited to `cache_bytes` (the
    /// bulk of the router's memory).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self> {
        let db = sled::Config::new().path(dir).cache_capacity(cache_bytes).open()?;
        Self::with_db(db)
    }

    fn with_db(db: sled::Db) -> Result<Self> {
        let tree: Tree = (*db).clone();
        let table = |prefix: u8| Table { tree: tree.clone(), prefix };
        let audit = table(b'a');
        let (next_sequence, last_hash) = match audit.last()? {
            Some((_, value)) => {
                let event: AuditEvent = decode(&value, "audit event", "last")?;
                (event.sequence + 1, event.hash)
            }
            None => (1, ZERO_HASH.to_vec()),
        };
        let (flush_requests, receiver) = mpsc::unbounded_channel();
        let flusher_db = db.clone();
        let flusher = std::thread::Builder::new()
            .name("mirsal-flusher".into())
            .spawn(move || group_commit(&flusher_db, receiver))
            .map_err(|e| StoreError::Flush(format!("cannot start the flusher thread: {e}")))?;
        Ok(Self {
            envelopes: table(b'e'),
            tracking: table(b't'),
            audit,
            heads: table(b'h'),
            by_thread: table(b'r'),
            due: table(b'd'),
            by_time: table(b'i'),
            by_agency: table(b'g'),
            by_number: table(b'n'),
            undelivered: table(b'u'),
            completed: table(b'c'),
            dead_letters: table(b'x'),
            dead_letters_by_time: table(b'y'),
            chain: Mutex::new(ChainState { next_sequence, last_hash }),
            flush_requests,
            flusher,
            db,
        })
    }

    /// Makes everything written so far durable. Flushes requested while one is running
    /// are served together by the next one.
    ///
    /// # Errors
    /// sled failed to write.
    pub async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.flush_requests.send(done).map_err(|_| StoreError::FlusherGone)?;
        wait.await.map_err(|_| StoreError::FlusherGone)?.map_err(StoreError::Flush)
    }

    /// Applies `batch` atomically and appends its events to the audit chain. Returns
    /// the sequence numbers given to the events, in order.
    ///
    /// # Errors
    /// sled failures.
    pub fn commit(&self, batch: Batch) -> Result<Vec<u64>> {
        let mut chain = self.chain.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut sequence = chain.next_sequence;
        let mut previous = chain.last_hash.clone();
        let mut events = Vec::with_capacity(batch.events.len());
        for new in &batch.events {
            let event = seal_event(new, sequence, &previous);
            previous.clone_from(&event.hash);
            events.push(event);
            sequence += 1;
        }
        let mut puts = batch.puts;
        for (id, mut record, index) in batch.sequenced {
            record.audit_sequence = events.get(index).map_or(0, |e| e.sequence);
            puts.push((TreeName::Envelopes, id.into_bytes(), record.encode_to_vec()));
        }
        let mut writes = sled::Batch::default();
        for (name, key, value) in &puts {
            writes.insert(self.table(*name).full(key), value.as_slice());
        }
        for (name, key) in &batch.removes {
            writes.remove(self.table(*name).full(key));
        }
        for event in &events {
            writes.insert(self.audit.full(&event.sequence.to_be_bytes()), event.encode_to_vec());
        }
        self.db.apply_batch(writes)?;
        let sequences = events.iter().map(|e| e.sequence).collect();
        chain.next_sequence = sequence;
        chain.last_hash = previous;
        Ok(sequences)
    }

    fn table(&self, name: TreeName) -> &Table {
        match name {
            TreeName::Envelopes => &self.envelopes,
            TreeName::Tracking => &self.tracking,
            TreeName::ByThread => &self.by_thread,
            TreeName::Due => &self.due,
            TreeName::ByTime => &self.by_time,
            TreeName::ByAgency => &self.by_agency,
            TreeName::ByNumber => &self.by_number,
            TreeName::Undelivered => &self.undelivered,
            TreeName::Completed => &self.completed,
            TreeName::DeadLetters => &self.dead_letters,
            TreeName::DeadLettersByTime => &self.dead_letters_by_time,
        }
    }

    /// Dead letter `id`.
    ///
    /// # Errors
    /// sled failures, a record that does not decode.
    pub fn dead_letter(&self, id: &str) -> Result<Option<DeadLetterRecord>> {
        let Some(value) = self.dead_letters.get(id.as_bytes())? else { return Ok(None) };
        decode(&value, "dead letter", id).map(Some)
    }

    /// The ids of the dead letters, oldest first.
    pub fn dead_letter_ids(&self) -> impl Iterator<Item = Result<String>> + '_ {
        self.dead_letters_by_time.iter().map(|item| {
            let (key, _) = item?;
            Ok(split_time_key(&key).unwrap_or_default().1)
        })
    }

    /// The archived envelope `id`.
    ///
    /// # Errors
    /// sled failures, a record that does not decode.
    pub fn envelope(&self, id: &str) -> Result<Option<EnvelopeRecord>> {
        let Some(value) = self.envelopes.get(id.as_bytes())? else { return Ok(None) };
        let mut record: EnvelopeRecord = decode(&value, "envelope", id)?;
        record.completed |= self.completed.get(id.as_bytes())?.is_some();
        Ok(Some(record))
    }

    /// The tracking row of (`letter_id`, `recipient`).
    ///
    /// # Errors
    /// sled failures, a record that does not decode.
    pub fn tracking_row(&self, letter_id: &str, recipient: &str) -> Result<Option<TrackingRecord>> {
        self.tracking
            .get(tracking_key(letter_id, recipient))?
            .map(|v| decode(&v, "tracking", letter_id))
            .transpose()
    }

    /// Every tracking row of `letter_id`, one per recipient.
    ///
    /// # Errors
    /// sled failures, a record that does not decode.
    pub fn tracking(&self, letter_id: &str) -> Result<Vec<TrackingRecord>> {
        let mut prefix = letter_id.as_bytes().to_vec();
        prefix.push(0);
        self.tracking.scan_prefix(&prefix).map(|item| decode(&item?.1, "tracking", letter_id)).collect()
    }

    /// Envelope ids in thread `thread_id`, oldest first (ids are UUIDv7).
    ///
    /// # Errors
    /// sled failures.
    pub fn thread(&self, thread_id: &str) -> Result<Vec<String>> {
        let mut prefix = thread_id.as_bytes().to_vec();
        prefix.push(0);
        self.by_thread
            .scan_prefix(&prefix)
            .map(|item| Ok(String::from_utf8_lossy(&item?.0[prefix.len()..]).into_owned()))
            .collect()
    }

    /// Letters accepted in `[from_ms, to_ms)`, newest first, starting after `cursor` (an
    /// envelope id returned before), for search. Yields `(accepted_ms, id)`.
    pub fn letters_by_time(
        &self,
        from_ms: i64,
        to_ms: i64,
        cursor: Option<(i64, String)>,
    ) -> impl Iterator<Item = Result<(i64, String)>> + '_ {
        let start = time_key(from_ms, "");
        let end = match &cursor {
            Some((at, id)) => time_key(*at, id),
            None => time_key(to_ms, ""),
        };
        self.by_time.range(&start, &end).rev().map(|item| {
            let (key, _) = item?;
            Ok(split_time_key(&key).unwrap_or_default())
        })
    }

    /// Letters `agency` sent or received in `[from_ms, to_ms)`, newest first, after
    /// `cursor`. Yields `(accepted_ms, id, sent)`.
    pub fn letters_of(
        &self,
        agency: &str,
        from_ms: i64,
        to_ms: i64,
        cursor: Option<(i64, String)>,
    ) -> impl Iterator<Item = Result<(i64, String, bool)>> + '_ {
        let mut prefix = agency.as_bytes().to_vec();
        prefix.push(0);
        let with = |tail: Vec<u8>| [prefix.clone(), tail].concat();
        let start = with(time_key(from_ms, ""));
        let end = match &cursor {
            Some((at, id)) => with(time_key(*at, id)),
            None => with(time_key(to_ms, "")),
        };
        let skip = prefix.len();
        self.by_agency.range(&start, &end).rev().map(move |item| {
            let (key, value) = item?;
            let (at, id) = split_time_key(&key[skip..]).unwrap_or_default();
            Ok((at, id, value.first() == Some(&b's')))
        })
    }

    /// Letters indexed under registry number `number` (outgoing or incoming).
    ///
    /// # Errors
    /// sled failures.
    pub fn letters_numbered(&self, number: &str) -> Result<Vec<String>> {
        let mut prefix = number.as_bytes().to_vec();
        prefix.push(0);
        self.by_number
            .scan_prefix(&prefix)
            .map(|item| Ok(String::from_utf8_lossy(&item?.0[prefix.len()..]).into_owned()))
            .collect()
    }

    /// How many letters wait for `agency`'s `delivered` receipt, and since when the
    /// oldest has been waiting (Unix milliseconds).
    ///
    /// # Errors
    /// sled failures.
    pub fn undelivered_of(&self, agency: &str) -> Result<(usize, Option<i64>)> {
        let mut prefix = agency.as_bytes().to_vec();
        prefix.push(0);
        let oldest = self
            .undelivered
            .scan_prefix(&prefix)
            .next()
            .transpose()?
            .and_then(|(key, _)| split_time_key(&key[prefix.len()..]))
            .map(|(at, _)| at);
        let count = self.undelivered.scan_prefix(&prefix).count();
        Ok((count, oldest))
    }

    /// The letters waiting for `agency`'s `delivered` receipt, oldest first, as
    /// `(queued_ms, priority)`.
    pub fn undelivered_entries(&self, agency: &str) -> impl Iterator<Item = Result<(i64, i32)>> + '_ {
        let mut prefix = agency.as_bytes().to_vec();
        prefix.push(0);
        let skip = prefix.len();
        self.undelivered.scan_prefix(&prefix).map(move |item| {
            let (key, value) = item?;
            let queued = split_time_key(&key[skip..]).map_or(0, |(at, _)| at);
            Ok((queued, i32::from(value.first().copied().unwrap_or(0))))
        })
    }

    /// Agenda entries due at or before `now_ms`, at most `limit`.
    ///
    /// # Errors
    /// sled failures.
    pub fn due_before(&self, now_ms: i64, limit: usize) -> Result<Vec<DueEntry>> {
        let end = (now_ms.max(0) as u64).saturating_add(1).to_be_bytes();
        self.due
            .range(&[], end.as_slice())
            .take(limit)
            .filter_map(|item| item.map(|(key, _)| DueEntry::from_key(&key)).transpose())
            .collect::<Result<Vec<_>, sled::Error>>()
            .map_err(Into::into)
    }

    /// The next sequence number of the audit chain and the hash of its last event.
    pub fn chain_head(&self) -> (u64, Vec<u8>) {
        let chain = self.chain.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (chain.next_sequence - 1, chain.last_hash.clone())
    }

    /// Every audit event, in sequence order.
    pub fn audit_events(&self) -> impl Iterator<Item = Result<(Vec<u8>, AuditEvent)>> + '_ {
        self.audit.iter().map(|item| {
            let (key, value) = item?;
            Ok((key.to_vec(), decode(&value, "audit event", &hex::encode(&key))?))
        })
    }

    /// Audit events from the newest back.
    pub fn audit_events_rev(&self) -> impl Iterator<Item = Result<AuditEvent>> + '_ {
        self.audit.iter().rev().map(|item| {
            let (key, value) = item?;
            decode(&value, "audit event", &hex::encode(&key))
        })
    }

    /// Stores a signed chain head (an encoded, platform-signed envelope whose content
    /// is an encoded [`ChainHead`]).
    ///
    /// # Errors
    /// sled failures.
    pub fn put_head(&self, sequence: u64, signed: &[u8]) -> Result<()> {
        self.heads.insert(sequence.to_be_bytes(), signed)?;
        Ok(())
    }

    /// Every signed chain head, by sequence.
    pub fn heads(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>)>> + '_ {
        self.heads.iter().map(|item| {
            let (key, value) = item?;
            let sequence = <[u8; 8]>::try_from(key.as_ref()).map_or(0, u64::from_be_bytes);
            Ok((sequence, value.to_vec()))
        })
    }

    /// The sequence of the last signed head, 0 when none.
    ///
    /// # Errors
    /// sled failures.
    pub fn last_signed_sequence(&self) -> Result<u64> {
        Ok(self
            .heads
            .last()?
            .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Raw access to the audit table, for `mirsal audit verify`'s tests that tamper with
    /// it on purpose.
    pub fn audit_tree(&self) -> &Table {
        &self.audit
    }

    /// Flushes, stops the flusher and releases the database (its file lock), so another
    /// process (`mirsal audit verify`, a restarted router) can open it.
    ///
    /// # Errors
    /// sled failures.
    pub async fn close(self) -> Result<()> {
        let Self { db, flush_requests, flusher, .. } = self;
        drop(flush_requests);
        let _ = tokio::task::spawn_blocking(move || flusher.join()).await;
        db.flush_async().await?;
        Ok(())
    }

    /// Flushes synchronously (shutdown, tools).
    ///
    /// # Errors
    /// sled failures.
    pub fn flush_now(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

/// `event` with its sequence, previous hash and own hash filled in.
pub fn seal_event(new: &NewEvent, sequence: u64, previous_hash: &[u8]) -> AuditEvent {
    let mut event = AuditEvent {
        sequence,
        at_ms: new.at_ms,
        kind: new.kind.to_owned(),
        envelope_id: new.envelope_id.clone(),
        agency: new.agency.clone(),
        detail: new.detail.clone(),
        previous_hash: previous_hash.to_vec(),
        hash: Vec::new(),
    };
    event.hash = event_hash(&event).to_vec();
    event
}

/// SHA-256 of `event` encoded with an empty `hash`.
pub fn event_hash(event: &AuditEvent) -> [u8; 32] {
    let unhashed = AuditEvent { hash: Vec::new(), ..event.clone() };
    mirsal_envelope::sha256(&unhashed.encode_to_vec())
}

/// The bytes the platform signs for a chain head.
pub fn head_bytes(head: &ChainHead) -> Vec<u8> {
    head.encode_to_vec()
}

fn decode<T: prost::Message + Default>(bytes: &[u8], what: &str, key: &str) -> Result<T> {
    T::decode(bytes).map_err(|source| StoreError::Corrupt { what: format!("{what} {key}"), source })
}

/// The group commit: one thread that flushes back to back, each flush serving every
/// request that arrived while the previous one ran. (sled's `flush_async` hands each
/// call to its IO thread pool, which under load means thousands of thread hand-offs.)
fn group_commit(db: &sled::Db, mut requests: mpsc::UnboundedReceiver<oneshot::Sender<Result<(), String>>>) {
    while let Some(first) = requests.blocking_recv() {
        let mut waiting = vec![first];
        while let Ok(next) = requests.try_recv() {
            waiting.push(next);
        }
        let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
        for waiter in waiting {
            let _ = waiter.send(result.clone());
        }
    }
}
