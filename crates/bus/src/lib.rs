//! Mirsal's transport over RabbitMQ. It knows queues, exchanges, confirms and acks; it
//! knows nothing of envelopes or of the router's pipeline.
//!
//! # Layout
//! - [`topology`]: the exchange and queue names and arguments, declared idempotently.
//! - [`connection`]: [`Bus`], a connection from an AMQP URL (plain or TLS with a client
//!   certificate) that reconnects with backoff whenever the broker goes away, re-running
//!   the caller's set-up (topology) on every new connection.
//! - [`publisher`]: [`Publisher`], confirmed and `mandatory` publishing where a nack or a
//!   return is a failure, with optional re-publication across reconnects.
//! - [`consumer`]: [`Deliveries`], a stream of deliveries with a prefetch window that
//!   re-subscribes after a reconnect, and [`Incoming`] with checked acks.
//! - [`headers`]: the AMQP property and header conventions of Mirsal messages.
//! - [`management`]: [`Management`], a client for the RabbitMQ management HTTP API (vhosts,
//!   users and permissions, queue depths, connections, peeking at messages).

pub mod connection;
pub mod consumer;
pub mod error;
pub mod headers;
pub mod management;
pub mod publisher;
pub mod topology;

pub use connection::{Backoff, Bus, BusConfig, TlsConfig};
pub use consumer::{Deliveries, Incoming};
pub use error::BusError;
pub use lapin;
pub use management::{Management, ManagementError};
pub use publisher::{Outgoing, PublishError, Publisher};
