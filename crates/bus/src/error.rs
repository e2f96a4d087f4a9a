//! Errors of the transport.

/// A transport failure.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid AMQP URL: {0}")]
    InvalidUrl(String),
    #[error("{context}: {source}")]
    Amqp { context: String, source: lapin::Error },
    #[error("not connected to the broker")]
    NotConnected,
    #[error("the channel of this delivery is closed; the broker will deliver it again")]
    ChannelClosed,
    #[error("shutting down")]
    ShuttingDown,
    #[error("cannot read {what}: {source}")]
    Io { what: String, source: std::io::Error },
}

impl BusError {
    pub(crate) fn amqp(context: impl Into<String>) -> impl FnOnce(lapin::Error) -> Self {
        let context = context.into();
        move |source| Self::Amqp { context, source }
    }
}
