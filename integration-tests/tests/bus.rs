//! mirsal-bus against a real RabbitMQ: the topology, confirmed publishing, dead-lettering,
//! recovery from a lost connection, and the agency permissions of DESIGN.md. Each test
//! runs in its own vhost.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use bytes::Bytes;
use mirsal_bus::{
    Bus, BusError, Outgoing, PublishError,
    connection::Setup,
    headers,
    lapin::{
        BasicProperties,
        options::{BasicConsumeOptions, QueueDeclareOptions},
        types::{AMQPValue, FieldTable, LongString},
    },
    management::QueueInfo,
    topology::{
        self, DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, DELIVER_EXCHANGE, INGRESS_QUEUE, SUBMIT_EXCHANGE,
    },
};
use mirsal_integration_tests::{TestVhost, eventually, unique_code, within};
use serde_json::{Value, json};
use uuid::Uuid;

/// The longest any one step may take.
const WAIT: Duration = Duration::from_secs(20);

/// Set-up that declares the core topology and the inboxes of `codes`, as the router does.
fn topology_for(codes: &[&str]) -> Setup {
    let codes: Vec<String> = codes.iter().map(|&code| code.to_owned()).collect();
    Arc::new(move |connection| {
        let codes = codes.clone();
        Box::pin(async move {
            let channel = connection.create_channel().await.map_err(|source| mirsal_bus::BusError::Amqp {
                context: "opening the set-up channel".into(),
                source,
            })?;
            topology::declare_core(&channel, topology::QueueSettings::default()).await?;
            for code in &codes {
                topology::declare_inbox(&channel, code, topology::QueueSettings::default()).await?;
            }
            Ok(())
        })
    })
}

fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// A body that is not text: every byte value, then the id.
fn body(id: &str) -> Bytes {
    let mut body: Vec<u8> = (0..=255u8).collect();
    body.extend_from_slice(id.as_bytes());
    Bytes::from(body)
}

fn message(exchange: &str, routing_key: &str, id: &str, properties: BasicProperties) -> Outgoing {
    Outgoing {
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        payload: body(id),
        properties,
        mandatory: true,
    }
}

/// What the router sends to agency `code`.
fn delivery(code: &str, id: &str) -> Outgoing {
    message(DELIVER_EXCHANGE, code, id, headers::envelope_properties(id))
}

/// What an adapter submits, claiming to be `user_id`.
fn submission(user_id: &str, id: &str) -> Outgoing {
    message(SUBMIT_EXCHANGE, "", id, headers::envelope_properties(id).with_user_id(user_id.into()))
}

fn assert_work_queue(queue: &QueueInfo, delivery_limit: u32) {
    let arguments = &queue.arguments;
    assert_eq!(queue.queue_type.as_deref(), Some("quorum"), "{queue:?}");
    assert!(queue.durable, "{queue:?}");
    assert_eq!(arguments.get("x-delivery-limit"), Some(&json!(delivery_limit)), "{queue:?}");
    assert_eq!(arguments.get("x-dead-letter-exchange"), Some(&json!(DEAD_LETTER_EXCHANGE)), "{queue:?}");
    assert_eq!(arguments.get("x-dead-letter-strategy"), Some(&json!("at-least-once")), "{queue:?}");
    assert_eq!(arguments.get("x-overflow"), Some(&json!("reject-publish")), "{queue:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_is_idempotent_and_made_of_quorum_queues() {
    let vhost = TestVhost::new().await;
    let management = vhost.management();
    let bus = Bus::start_plain(vhost.bus_config("topology"));
    let channel = bus.create_channel().await.unwrap();
    let settings = topology::QueueSettings { delivery_limit: 7 };
    let inbox = topology::inbox_queue("AGENCY-A");
    for _ in 0..2 {
        topology::declare_core(&channel, settings).await.unwrap();
        topology::declare_inbox(&channel, "AGENCY-A", settings).await.unwrap();
    }

    let queues = management.list_queues(vhost.name()).await.unwrap();
    let names: BTreeSet<&str> = queues.iter().map(|queue| queue.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from([DEAD_LETTER_QUEUE, INGRESS_QUEUE, inbox.as_str()]));

    let ingress = management.queue(vhost.name(), INGRESS_QUEUE).await.unwrap();
    assert_work_queue(&ingress, 7);
    // One router consumes at a time; the standby takes over.
    assert_eq!(ingress.arguments.get("x-single-active-consumer"), Some(&json!(true)), "{ingress:?}");

    let inbox_info = management.queue(vhost.name(), &inbox).await.unwrap();
    assert_work_queue(&inbox_info, 7);
    assert_eq!(inbox_info.arguments.get("x-single-active-consumer"), None, "{inbox_info:?}");

    let dead_letters = management.queue(vhost.name(), DEAD_LETTER_QUEUE).await.unwrap();
    assert_eq!(dead_letters.queue_type.as_deref(), Some("quorum"), "{dead_letters:?}");
    assert!(dead_letters.durable);

    // Other arguments for an existing queue are refused, not silently ignored.
    let error = topology::declare_inbox(&channel, "AGENCY-A", topology::QueueSettings { delivery_limit: 8 })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("PRECONDITION_FAILED"), "{error}");

    bus.shutdown().await;
    vhost.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_reaches_the_inbox_once_with_the_same_bytes() {
    let vhost = TestVhost::new().await;
    let code = "AGENCY-B";
    let inbox = topology::inbox_queue(code);
    let bus = Bus::start(vhost.bus_config("router"), topology_for(&[code]));
    let mut deliveries = bus.consume(&inbox, 10, "adapter");

    let id = new_id();
    bus.publisher().publish(&delivery(code, &id)).await.unwrap();
    let incoming = within(WAIT, "the letter in the inbox", deliveries.next()).await.unwrap();
    assert_eq!(incoming.body(), &body(&id)[..]);
    assert_eq!(incoming.message_id(), Some(id.as_str()));
    assert_eq!(
        incoming.properties().content_type().as_ref().map(|c| c.as_str()),
        Some(headers::CONTENT_TYPE)
    );
    assert_eq!(*incoming.properties().delivery_mode(), Some(2));
    assert!(!incoming.redelivered());
    assert_eq!(incoming.delivery_count(), 0);
    incoming.ack().await.unwrap();
    bus.shutdown().await;

    // Acknowledged means gone: a new consumer on a new connection gets the next letter,
    // not this one again.
    let bus = Bus::start(vhost.bus_config("router-2"), topology_for(&[code]));
    let mut deliveries = bus.consume(&inbox, 10, "adapter-2");
    let next_id = new_id();
    bus.publisher().publish(&delivery(code, &next_id)).await.unwrap();
    let next = within(WAIT, "the next letter in the inbox", deliveries.next()).await.unwrap();
    assert_eq!(next.message_id(), Some(next_id.as_str()), "the acknowledged letter came again");
    next.ack().await.unwrap();

    bus.shutdown().await;
    vhost.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_mandatory_message_is_a_failure() {
    let vhost = TestVhost::new().await;
    let code = "AGENCY-C";
    let bus = Bus::start(vhost.bus_config("router"), topology_for(&[code]));
    let publisher = bus.publisher();

    let error = publisher.publish(&delivery("NOBODY", &new_id())).await.unwrap_err();
    assert!(matches!(&error, PublishError::Returned { code: 312, text } if text == "NO_ROUTE"), "{error:?}");
    assert!(!error.is_transient());
    // Retrying cannot help, so the reliable publish gives up at once.
    let error = within(
        WAIT,
        "the reliable publish to give up",
        publisher.publish_reliably(&delivery("NOBODY", &new_id()), WAIT),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, PublishError::Returned { code: 312, .. }), "{error:?}");

    // A return does not break the channel: the next letter goes through.
    publisher.publish(&delivery(code, &new_id())).await.unwrap();

    bus.shutdown().await;
    vhost.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_nacks_the_publish() {
    let vhost = TestVhost::new().await;
    let queue = "test.full";
    let bus = Bus::start_plain(vhost.bus_config("publisher"));
    let channel = bus.create_channel().await.unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    arguments.insert("x-overflow".into(), AMQPValue::LongString(LongString::from("reject-publish")));
    let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue.into(), options, arguments).await.unwrap();

    let publisher = bus.publisher();
    let first = new_id();
    publisher.publish(&message("", queue, &first, headers::envelope_properties(&first))).await.unwrap();
    let second = new_id();
    let error = publisher
        .publish(&message("", queue, &second, headers::envelope_properties(&second)))
        .await
        .unwrap_err();
    assert_eq!(error, PublishError::Nacked);
    assert!(error.is_transient(), "a full queue may drain");

    // The queue kept the first message, and only that one.
    let held = vhost.management().get_messages(vhost.name(), queue, 10, true).await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].payload, body(&first));
    assert_eq!(held[0].message_id(), Some(first.as_str()));

    bus.shutdown().await;
    vhost.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_message_is_dead_lettered_with_its_history() {
    let vhost = TestVhost::new().await;
    let code = "AGENCY-E";
    let inbox = topology::inbox_queue(code);
    let bus = Bus::start(vhost.bus_config("router"), topology_for(&[code]));
    let mut deliveries = bus.consume(&inbox, 10, "adapter");

    let id = new_id();
    let properties = headers::with_header(headers::envelope_properties(&id), headers::TRACE_ID, "trace-1");
    bus.publisher().publish(&message(DELIVER_EXCHANGE, code, &id, properties)).await.unwrap();
    let incoming = within(WAIT, "the letter in the inbox", deliveries.next()).await.unwrap();
    assert_eq!(incoming.message_id(), Some(id.as_str()));
    incoming.reject().await.unwrap();

    let management = vhost.management();
    let dead = eventually(WAIT, "the rejected letter in mirsal.dead-letters", || async {
        management.get_messages(vhost.name(), DEAD_LETTER_QUEUE, 1, false).await.unwrap().pop()
    })
    .await;
    assert_eq!(dead.payload, body(&id));
    assert_eq!(dead.message_id(), Some(id.as_str()));
    assert_eq!(dead.header(headers::TRACE_ID), Some(&json!("trace-1")));
    assert_eq!(dead.header("x-first-death-reason"), Some(&json!("rejected")), "{dead:?}");
    let deaths =
        dead.header("x-death").and_then(Value::as_array).unwrap_or_else(|| panic!("no x-death: {dead:?}"));
    assert_eq!(deaths.len(), 1, "{deaths:?}");
    let death = &deaths[0];
    assert_eq!(death["reason"], json!("rejected"), "{death:?}");
    assert_eq!(death["queue"], json!(inbox), "{death:?}");
    assert_eq!(death["exchange"], json!(DELIVER_EXCHANGE), "{death:?}");
    assert_eq!(death["routing-keys"], json!([code]), "{death:?}");
    assert_eq!(death["count"], json!(1), "{death:?}");

    bus.shutdown().await;
    vhost.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_recovers_from_a_closed_connection() {
    let vhost = TestVhost::new().await;
    let management = vhost.management();
    let code = "AGENCY-F";
    let config = vhost.bus_config("recovery");
    let connection_name = config.connection_name.clone();
    let bus = Bus::start(config, topology_for(&[code]));
    let mut deliveries = bus.consume(&topology::inbox_queue(code), 10, "adapter");
    bus.connected().await.unwrap();
    let generation = bus.generation();
    let publisher = bus.publisher();

    let first = new_id();
    publisher.publish(&delivery(code, &first)).await.unwrap();
    let held = within(WAIT, "the first letter", deliveries.next()).await.unwrap();
    assert_eq!(held.message_id(), Some(first.as_str()));
    assert_eq!(held.generation, generation);

    let connection = eventually(WAIT, "the bus's connection in the management API", || async {
        let connections = management.list_connections().await.unwrap();
        connections.into_iter().find(|c| c.connection_name.as_deref() == Some(connection_name.as_str()))
    })
    .await;
    assert_eq!(connection.vhost, vhost.name());
    assert_eq!(connection.user, management.user());
    management.close_connection(&connection.name).await.unwrap();

    // Published straight after the close, before or after the bus has noticed it.
    let second = new_id();
    publisher.publish_reliably(&delivery(code, &second), WAIT).await.unwrap();
    eventually(WAIT, "a new connection", || async { (bus.generation() > generation).then_some(()) }).await;

    // The first letter was never acknowledged: its ack must say so, not pretend.
    let error = held.ack().await.unwrap_err();
    assert!(matches!(error, BusError::ChannelClosed), "{error:?}");

    // Over the new connection the consumer gets the first letter again and the second.
    let mut seen = BTreeSet::new();
    while !(seen.contains(&first) && seen.contains(&second)) {
        let incoming = within(WAIT, "the letters after the reconnect", deliveries.next()).await.unwrap();
        assert!(incoming.generation > generation, "delivered on the closed connection");
        let id = incoming.message_id().unwrap().to_owned();
        if id == first {
            assert!(incoming.redelivered());
        }
        assert!(id == first || id == second, "unexpected message {id}");
        incoming.ack().await.unwrap();
        seen.insert(id);
    }

    // And the publisher carries on over the new connection.
    publisher.publish(&delivery(code, &new_id())).await.unwrap();

    bus.shutdown().await;
    vhost.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agencies_have_exactly_their_permissions() {
    let vhost = TestVhost::new().await;
    let a = vhost.add_agency(&unique_code("A")).await;
    let b = vhost.add_agency(&unique_code("B")).await;
    let router = Bus::start(vhost.bus_config("router"), topology_for(&[&a.code, &b.code]));
    router.connected().await.unwrap();
    let mut ingress = router.consume(INGRESS_QUEUE, 10, "router");
    let adapter = Bus::start_plain(a.bus_config("adapter"));
    let publisher = adapter.publisher();

    // Its own submission arrives, with the user id RabbitMQ checked.
    let own = new_id();
    publisher.publish(&submission(&a.code, &own)).await.unwrap();
    let incoming = within(WAIT, "the submission in mirsal.ingress", ingress.next()).await.unwrap();
    assert_eq!(incoming.message_id(), Some(own.as_str()));
    assert_eq!(incoming.user_id(), Some(a.code.as_str()));
    assert_eq!(incoming.body(), &body(&own)[..]);
    incoming.ack().await.unwrap();

    // A forged origin is refused by the broker.
    let forged = new_id();
    let error = publisher.publish(&submission(&b.code, &forged)).await.unwrap_err();
    assert!(
        matches!(&error, PublishError::Refused { code: 406, text } if text.contains("user_id")),
        "{error:?}"
    );
    assert!(!error.is_transient(), "a forged origin does not become genuine by retrying");
    // The bus carries on after the refusal, and the forged message never reached the
    // router: the next one in the ingress queue is the next genuine submission.
    let after_forged = new_id();
    publisher.publish_reliably(&submission(&a.code, &after_forged), WAIT).await.unwrap();
    let incoming = within(WAIT, "the submission after the forged one", ingress.next()).await.unwrap();
    assert_eq!(incoming.message_id(), Some(after_forged.as_str()), "the forged message was routed");
    incoming.ack().await.unwrap();

    // It cannot write to the router's exchange, nor to an inbox through the default
    // exchange.
    for (exchange, routing_key) in [(DELIVER_EXCHANGE, b.code.clone()), ("", topology::inbox_queue(&b.code))]
    {
        let id = new_id();
        let sneaky = message(exchange, &routing_key, &id, headers::envelope_properties(&id));
        let error = publisher.publish(&sneaky).await.unwrap_err();
        assert!(
            matches!(&error, PublishError::Refused { code: 403, .. }),
            "publishing to {exchange:?}: {error:?}"
        );
        publisher.publish_reliably(&submission(&a.code, &new_id()), WAIT).await.unwrap();
    }

    // It cannot read another agency's inbox, nor declare a queue of its own.
    let channel = adapter.create_channel().await.unwrap();
    let error = channel
        .basic_consume(
            topology::inbox_queue(&b.code).as_str().into(),
            "spy".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ACCESS_REFUSED"), "{error}");
    let channel = adapter.create_channel().await.unwrap();
    let options = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    let error =
        channel.queue_declare(format!("{}.mine", a.code).as_str().into(), options, FieldTable::default());
    let error = error.await.unwrap_err();
    assert!(error.to_string().contains("ACCESS_REFUSED"), "{error}");
    // Nor bind its inbox to receive another agency's letters, or every submission.
    for (exchange, key) in [(DELIVER_EXCHANGE, b.code.as_str()), (topology::SUBMIT_EXCHANGE, "")] {
        let channel = adapter.create_channel().await.unwrap();
        let error = channel
            .queue_bind(
                topology::inbox_queue(&a.code).as_str().into(),
                exchange.into(),
                key.into(),
                mirsal_bus::lapin::options::QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap_err();
        assert!(error.to_string().contains("ACCESS_REFUSED"), "binding to {exchange}: {error}");
    }

    // It reads its own inbox.
    let letter = new_id();
    router.publisher().publish(&delivery(&a.code, &letter)).await.unwrap();
    let mut inbox = adapter.consume(&topology::inbox_queue(&a.code), 10, "adapter");
    let incoming = within(WAIT, "the letter in its own inbox", inbox.next()).await.unwrap();
    assert_eq!(incoming.message_id(), Some(letter.as_str()));
    assert_eq!(incoming.body(), &body(&letter)[..]);
    incoming.ack().await.unwrap();

    adapter.shutdown().await;
    router.shutdown().await;
    vhost.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publish_costs_neither_the_connection_nor_the_consumers() {
    let vhost = TestVhost::new().await;
    let management = vhost.management();
    let code = "AGENCY-H";
    let config = vhost.bus_config("refused");
    let connection_name = config.connection_name.clone();
    let bus = Bus::start(config, topology_for(&[code]));
    let mut deliveries = bus.consume(&topology::inbox_queue(code), 10, "adapter");
    let publisher = bus.publisher();

    let first = new_id();
    publisher.publish(&delivery(code, &first)).await.unwrap();
    let held = within(WAIT, "the first letter", deliveries.next()).await.unwrap();
    let subscribed_on = held.generation;

    // The broker closes the publishing channel over a missing exchange.
    let id = new_id();
    let missing = message("no.such.exchange", code, &id, headers::envelope_properties(&id));
    let error = publisher.publish(&missing).await.unwrap_err();
    assert!(matches!(&error, PublishError::Refused { code: 404, .. }), "{error:?}");

    // Publishing carries on, and the consumer was not disturbed.
    let second = new_id();
    publisher.publish_reliably(&delivery(code, &second), WAIT).await.unwrap();
    held.ack().await.unwrap();
    let incoming = within(WAIT, "the second letter", deliveries.next()).await.unwrap();
    assert_eq!(incoming.message_id(), Some(second.as_str()));
    assert!(!incoming.redelivered());
    assert_eq!(incoming.generation, subscribed_on, "the consumer had to subscribe again");
    incoming.ack().await.unwrap();

    // Shutting down leaves nothing behind: the consumer ends and no connection is left.
    bus.shutdown().await;
    let other = Bus::start_plain(vhost.bus_config("other"));
    other.publisher().publish(&delivery(code, &new_id())).await.unwrap();
    let after = within(WAIT, "the consumer to end with the bus", deliveries.next()).await;
    assert!(after.is_none(), "the consumer still receives after shutdown: {after:?}");
    eventually(WAIT, "the bus's connection to go away", || async {
        let connections = management.list_connections().await.unwrap();
        (!connections.iter().any(|c| c.connection_name.as_deref() == Some(connection_name.as_str())))
            .then_some(())
    })
    .await;

    other.shutdown().await;
    vhost.cleanup().await;
}
