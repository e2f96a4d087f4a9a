//! The Mirsal agency adapter SDK: how an agency's document system sends and receives
//! official correspondence over Mirsal without knowing AMQP.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use mirsal_adapter::{Adapter, AdapterConfig, StatusUpdate};
//! use mirsal_envelope::pb;
//!
//! let adapter = Adapter::open(AdapterConfig::load("bundle/adapter.toml".as_ref())?).await?;
//! let header = adapter.header().action("MOH").classification(pb::Classification::Confidential);
//! let letter = pb::Letter { subject: "تعميم الموازنة".into(), body: "…".into(), ..Default::default() };
//! let id = adapter.send(header, letter, Some("our-ref-2026-1187")).await?;
//!
//! let item = adapter.next_item().await?;      // a letter, receipt or notice
//! /* store it in the document system, then: */
//! adapter.ack(&item.id).await?;                // for a letter: the signed `delivered` receipt goes out
//! adapter.set_status(&item.id, StatusUpdate::Registered { incoming_number: "IN/77".into(), incoming_date: String::new() }).await?;
//! println!("{:?}", adapter.sent(&id)?);        // our letter's timeline at each recipient
//! # Ok(()) }
//! ```
//!
//! # Contract
//!
//! - **Sending.** [`Adapter::send`] validates the letter, seals it when its
//!   classification is confidential or secret (for each recipient's sealing certificate
//!   from the platform's directory), signs it, writes it to a durable outbox and returns
//!   its envelope id. A background task publishes the outbox with publisher confirms and
//!   removes an entry only once the broker confirms it. A crash or a broker outage loses
//!   nothing; at worst an envelope is published twice, and the router accepts it once.
//! - **Receiving.** Incoming envelopes (letters, receipts about this agency's letters,
//!   platform notices) are verified, deduplicated by envelope id in a durable inbox and
//!   only then acknowledged to the broker. Sealed letters are opened for the
//!   application. [`Adapter::next_item`] hands out each unacknowledged item once per
//!   process; the application acknowledges an item with [`Adapter::ack`] once it has
//!   stored it, and for a letter the SDK then sends the signed `delivered` receipt.
//!   Items not acknowledged are handed out again after a restart: deduplicate by item id.
//! - **Status.** [`Adapter::set_status`] sends a signed receipt: registered (incoming
//!   number and date), referred (department, deadline), answered (reply id), closed,
//!   refused (reason).
//! - **Tracking.** [`Adapter::sent`] is the local view of a letter this agency sent:
//!   queued, published, accepted (with the platform's audit sequence number, the proof of
//!   submission) or rejected (with the reason code), and each recipient's timeline.
//! - **Connection.** The broker connection is re-established with backoff after any
//!   outage; [`Adapter::shutdown`] stops cleanly and leaves the outbox for the next start.
//!
//! # Crash points
//!
//! What happens if the process dies at each step. Every row is tested by killing the
//! real `mirsal-adapter` process there (`integration-tests/tests/adapter_crash.rs`, with
//! [`crash::CRASH_AT`]) and restarting it.
//!
//! | the process dies … | on restart | lost? | twice? |
//! |---|---|---|---|
//! | after `send` wrote the outbox, before it returned the id (`outbox-written`) | the outbox is published; a retry with the same idempotency key returns the same id and sends nothing | no | no: the recipient gets it once |
//! | after publishing, before the broker's confirm (`published-unconfirmed`) | the entry is still in the outbox and is published again | no | no: the router accepts the same envelope once |
//! | after the confirm, before the outbox entry was removed (`confirmed-not-cleared`) | published again | no | no: the router completes only what is missing |
//! | after a delivery arrived, before it was stored (`received-not-stored`) | it was never acknowledged: the broker delivers it again | no | no |
//! | after it was stored, before it was acknowledged to the broker (`stored-not-acked`) | the broker delivers it again; the inbox recognises its id | no | no: one item |
//! | after the item was handed to the application, before the application acknowledged it (`handed-not-acked`) | the item is still pending and is handed out again | no | the application sees it again and must deduplicate by id (it never acknowledged it) |
//! | after the application acknowledged, before the `delivered` receipt was published (`acked-not-receipted`) | the receipt was queued with the acknowledgement and is published | no | no: the sender gets one receipt |
//!
//! # Layout
//! - [`adapter`]: [`Adapter`] and its background tasks (outbox, inbox, directory).
//! - [`items`]: [`Item`], [`StatusUpdate`], [`SentTracking`].
//! - [`store`]: the durable outbox, inbox and tracking view in sled.
//! - [`config`]: the `adapter.toml` file.
//! - [`bridge`]: the reference adapter's local HTTP JSON API.
//! - [`webhook`]: pushing incoming items to the agency system.
//! - [`crash`]: the crash points of the table above.

pub mod adapter;
pub mod bridge;
pub mod config;
pub mod crash;
pub mod items;
pub mod store;
pub mod webhook;

pub use adapter::{Adapter, AdapterError};
pub use config::AdapterConfig;
pub use items::{Item, ItemBody, RefusalReason, SentTracking, StatusUpdate};
