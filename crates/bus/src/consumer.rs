//! Consuming with a prefetch window, across reconnects, with acks that are checked.
//!
//! lapin's `ack` returns `Ok(false)` when the delivery's channel is gone (after a
//! connection loss): the broker has already put the message back and will deliver it
//! again. [`Incoming::ack`] turns that into [`BusError::ChannelClosed`] so it is never
//! mistaken for a successful ack.

use bytes::Bytes;
use futures_util::StreamExt as _;
use lapin::{
    BasicProperties,
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions},
    types::FieldTable,
};
use tokio::sync::{mpsc, watch};

use crate::{Bus, BusError, headers};

/// One message received from a queue.
#[derive(Debug)]
pub struct Incoming {
    delivery: Delivery,
    /// The bus generation (connection) the message arrived on.
    pub generation: u64,
}

impl Incoming {
    /// The message body.
    pub fn body(&self) -> &[u8] {
        &self.delivery.data
    }

    /// Takes the body out without copying it.
    pub fn take_body(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.delivery.data))
    }

    pub fn properties(&self) -> &BasicProperties {
        &self.delivery.properties
    }

    /// The AMQP `user_id` property: the authenticated publisher, when it set it.
    pub fn user_id(&self) -> Option<&str> {
        self.delivery.properties.user_id().as_ref().map(|u| u.as_str())
    }

    pub fn message_id(&self) -> Option<&str> {
        self.delivery.properties.message_id().as_ref().map(|m| m.as_str())
    }

    /// A string header.
    pub fn header(&self, name: &str) -> Option<&str> {
        headers::header_str(self.delivery.properties.headers().as_ref(), name)
    }

    /// How many times the broker delivered this message before (quorum queues).
    pub fn delivery_count(&self) -> u64 {
        headers::header_u64(self.delivery.properties.headers().as_ref(), headers::DELIVERY_COUNT).unwrap_or(0)
    }

    pub fn redelivered(&self) -> bool {
        self.delivery.redelivered
    }

    /// Acknowledges the message: the broker forgets it.
    ///
    /// # Errors
    /// [`BusError::ChannelClosed`] when the channel is gone (the message will come again).
    pub async fn ack(&self) -> Result<(), BusError> {
        checked(self.delivery.acker.ack(BasicAckOptions::default()).await, "ack")
    }

    /// Hands the message back to the queue to be delivered again.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub async fn requeue(&self) -> Result<(), BusError> {
        let options = BasicNackOptions { multiple: false, requeue: true };
        checked(self.delivery.acker.nack(options).await, "nack")
    }

    /// Refuses the message without requeueing: the queue dead-letters it.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    pub async fn reject(&self) -> Result<(), BusError> {
        checked(self.delivery.acker.reject(BasicRejectOptions { requeue: false }).await, "reject")
    }
}

fn checked(result: lapin::Result<bool>, what: &str) -> Result<(), BusError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(BusError::ChannelClosed),
        Err(error) => Err(BusError::Amqp { context: what.to_owned(), source: error }),
    }
}

/// Deliveries from one queue; re-subscribes by itself after a reconnect.
#[derive(Debug)]
pub struct Deliveries {
    receiver: mpsc::Receiver<Incoming>,
    subscribed: watch::Receiver<bool>,
}

impl Deliveries {
    pub(crate) fn start(bus: Bus, queue: String, prefetch: u16, tag: String) -> Self {
        let (sender, receiver) = mpsc::channel(usize::from(prefetch.max(1)));
        let (subscribed_tx, subscribed) = watch::channel(false);
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let Ok(link) = bus.link().await else { return };
                let outcome = subscribe(&link, &queue, prefetch, &tag, &sender, &subscribed_tx).await;
                subscribed_tx.send_replace(false);
                match outcome {
                    Ok(Flow::ReceiverGone) => return,
                    Ok(Flow::StreamEnded) => failures = 0,
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(%error, queue, "consumer stopped; subscribing again");
                    }
                }
                // Resubscribe on the next connection, or on this one after a pause if
                // only the channel died (e.g. the queue was missing).
                let pause = crate::Backoff::default().delay(failures);
                tokio::select! {
                    () = bus.generation_after(link.generation) => {}
                    () = tokio::time::sleep(pause) => {}
                }
            }
        });
        Self { receiver, subscribed }
    }

    /// Whether the consumer is subscribed right now (for readiness checks).
    pub fn is_subscribed(&self) -> bool {
        *self.subscribed.borrow()
    }

    /// A watch of [`is_subscribed`](Self::is_subscribed), to share with a health check.
    pub fn subscription(&self) -> watch::Receiver<bool> {
        self.subscribed.clone()
    }

    /// The next delivery; `None` once the bus has shut down.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.receiver.recv().await
    }
}

enum Flow {
    ReceiverGone,
    StreamEnded,
}

async fn subscribe(
    link: &crate::connection::Link,
    queue: &str,
    prefetch: u16,
    tag: &str,
    sender: &mpsc::Sender<Incoming>,
    subscribed: &watch::Sender<bool>,
) -> Result<Flow, BusError> {
    let channel =
        link.connection.create_channel().await.map_err(BusError::amqp("opening a consumer channel"))?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(BusError::amqp("setting the prefetch"))?;
    let mut consumer = channel
        .basic_consume(queue.into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .map_err(BusError::amqp(format!("consuming {queue}")))?;
    subscribed.send_replace(true);
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery.map_err(BusError::amqp(format!("receiving from {queue}")))?;
        if sender.send(Incoming { delivery, generation: link.generation }).await.is_err() {
            let _ = channel.close(200, "consumer dropped".into()).await;
            return Ok(Flow::ReceiverGone);
        }
    }
    Ok(Flow::StreamEnded)
}
