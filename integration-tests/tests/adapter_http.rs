//! The same flows as `adapter_flow.rs`, through the reference adapter's HTTP bridge only:
//! no Rust on the agency side. Two real `mirsal-adapter` processes run from their
//! bundles against the real broker and an in-process router, and the test speaks to
//! them with nothing but HTTP and JSON, as an agency system in any language would.
//! `cargo build --workspace --bins` first (`scripts/test` does).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, header};
use chrono::Utc;
use mirsal_envelope::pb;
use mirsal_integration_tests::{
    adapter_process::AdapterProcess,
    eventually,
    platform::{Bundle, PATIENCE, Platform},
};
use openssl::base64;
use reqwest::Method;
use serde_json::{Value, json};

/// A platform with agencies A and B, the router, and both adapters' processes.
struct Scene {
    platform: Platform,
    a: AdapterProcess,
    b: AdapterProcess,
}

impl Scene {
    /// Starts everything; `configure_b` may edit B's bundle before B's process starts.
    async fn new(configure_b: impl FnOnce(&Bundle)) -> Self {
        let mut platform = Platform::new(&["A", "B"]).await;
        platform.start_router().await;
        let (a, b) = (platform.bundle("A"), platform.bundle("B"));
        configure_b(&b);
        let a = AdapterProcess::start(&a, None).await;
        let b = AdapterProcess::start(&b, None).await;
        Self { platform, a, b }
    }

    fn code(&self, name: &str) -> String {
        self.platform.code(name).to_owned()
    }

    async fn finish(self) {
        self.a.stop().await;
        self.b.stop().await;
        self.platform.cleanup().await;
    }
}

/// `POST /v1/letters`: the status and the JSON answer.
async fn post_letter(process: &AdapterProcess, request: &Value) -> (StatusCode, Value) {
    let response = process.post("/v1/letters").json(request).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// B's pending letter `id`, once it has arrived.
async fn pending_letter(process: &AdapterProcess, id: &str) -> Value {
    eventually(PATIENCE, &format!("letter {id} in the inbox"), || async {
        process.pending().await.into_iter().find(|item| item["id"] == id)
    })
    .await
}

/// A's tracking of letter `id`, once `recipient` has reached `status`.
async fn tracking_at(process: &AdapterProcess, id: &str, recipient: &str, status: &str) -> Value {
    eventually(PATIENCE, &format!("{recipient} {status} in the sender's tracking"), || async {
        let tracking = process.tracking(id).await?;
        let recipients = tracking["recipients"].as_array()?;
        recipients.iter().any(|r| r["agency"] == recipient && r["status"] == status).then_some(tracking)
    })
    .await
}

fn decode(base64_text: &Value) -> Vec<u8> {
    base64::decode_block(base64_text.as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_is_sent_received_registered_and_tracked_over_http_only() {
    let scene = Scene::new(|_| {}).await;
    let (a, b) = (&scene.a, &scene.b);
    let (a_code, b_code) = (scene.code("A"), scene.code("B"));

    // Every byte value, so the base64 holds `+` and `/` too.
    let scan: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let request = json!({
        "to": [b_code],
        "priority": "urgent",
        "idempotency_key": "A-OUT-2026-55",
        "letter": {
            "subject": "طلب بيانات الموازنة",
            "body": "نرجو التكرم بتزويدنا بالبيانات",
            "language": "ar",
            "outgoingNumber": "A/2026/55",
            "outgoingDate": "2026-12-01",
            "attachments": [{
                "name": "scan.pdf",
                "mediaType": "application/pdf",
                "mainDocument": true,
                "content": base64::encode_block(&scan),
            }],
        },
    });
    let (status, answer) = post_letter(a, &request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = answer["envelope_id"].as_str().unwrap().to_owned();
    let (status, again) = post_letter(a, &request).await;
    assert_eq!(
        (status, again["envelope_id"].as_str()),
        (StatusCode::ACCEPTED, Some(id.as_str())),
        "same key"
    );

    // B finds the letter, once, with the same subject and attachment bytes.
    let item = pending_letter(b, &id).await;
    assert_eq!(b.pending_of("letter", 1).await.len(), 1, "the retry sent nothing new");
    assert_eq!((item["kind"].as_str(), item["sender"].as_str()), (Some("letter"), Some(a_code.as_str())));
    assert_eq!(item["acknowledged"], false);
    assert_eq!(item["header"]["envelopeId"], id.as_str());
    assert_eq!(item["header"]["recipients"], json!([{ "agency": b_code, "role": "RECIPIENT_ROLE_ACTION" }]));
    assert_eq!(item["header"]["priority"], "PRIORITY_URGENT");
    let letter = &item["body"]["letter"];
    assert_eq!(letter["subject"], "طلب بيانات الموازنة");
    assert_eq!(letter["outgoingNumber"], "A/2026/55");
    let attachment = &letter["attachments"][0];
    assert_eq!(
        (attachment["name"].as_str(), attachment["mainDocument"].as_bool()),
        (Some("scan.pdf"), Some(true))
    );
    assert_eq!(decode(&attachment["content"]), scan, "the attachment's bytes");
    assert_eq!(
        decode(&attachment["sha256"]),
        openssl::sha::sha256(&scan),
        "the adapter filled in the digest"
    );

    // The envelope as received verifies on its own, for the agency's archive.
    let response = b.get(&format!("/v1/inbox/{id}/envelope")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], mirsal_bus::headers::CONTENT_TYPE);
    let envelope = response.bytes().await.unwrap();
    let verified = scene.platform.verifier().verify(envelope, Utc::now()).unwrap();
    assert_eq!((verified.id(), verified.signer.as_str()), (id.as_str(), a_code.as_str()));
    assert_eq!(hex(&verified.digest), item["digest"], "the item's digest is the envelope's");
    let pb::signed_content::Body::Letter(signed) = &verified.body else { panic!("{:?}", verified.body) };
    assert_eq!(signed.attachments[0].content[..], scan[..]);

    // B stores it and acknowledges it, then registers it under its incoming number.
    let response = b.post(&format!("/v1/inbox/{id}/ack")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(b.pending().await.iter().all(|i| i["id"] != id.as_str()), "acknowledged: no longer pending");
    let kept: Value = b.get(&format!("/v1/inbox/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(kept["acknowledged"], true, "still there, acknowledged");
    // The router may handle two receipts about one letter in either order, and the
    // sender's timeline lists steps as they arrive: A sees `delivered` before B registers.
    tracking_at(a, &id, &b_code, "delivered").await;
    let registered =
        json!({ "status": "registered", "incoming_number": "B/IN/2026/901", "incoming_date": "2026-12-04" });
    let response = b.post(&format!("/v1/inbox/{id}/status")).json(&registered).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let receipt: Value = response.json().await.unwrap();
    let registered_receipt = receipt["receipt_id"].as_str().unwrap().to_owned();

    // A sees the platform's proof of submission and B's whole timeline.
    let tracking = tracking_at(a, &id, &b_code, "registered").await;
    assert_eq!(tracking["state"], "accepted", "{tracking}");
    assert!(tracking["audit_sequence"].as_u64().is_some_and(|s| s > 0), "{tracking}");
    assert_eq!(tracking["subject"], "طلب بيانات الموازنة");
    let timeline = tracking["recipients"][0]["timeline"].as_array().unwrap();
    let steps: Vec<&str> = timeline.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(steps, ["accepted", "delivered", "registered"]);
    assert!(timeline[2]["detail"].as_str().unwrap().contains("B/IN/2026/901"), "{tracking}");

    // A's inbox holds B's two receipts, committing to the digest of what B received.
    let receipts = a.pending_of("receipt", 2).await;
    assert_eq!(receipts.len(), 2);
    for receipt in &receipts {
        assert_eq!(receipt["sender"], b_code.as_str());
        assert_eq!(receipt["body"]["receipt"]["letterId"], id.as_str());
        assert_eq!(decode(&receipt["body"]["receipt"]["letterDigest"]), verified.digest);
    }
    assert!(receipts[0]["body"]["receipt"]["delivered"].is_object(), "{}", receipts[0]);
    assert_eq!(receipts[1]["id"], registered_receipt.as_str());
    assert_eq!(receipts[1]["body"]["receipt"]["registered"]["incomingNumber"], "B/IN/2026/901");
    scene.finish().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_refuses_a_missing_token_bad_input_and_unknown_ids() {
    let scene = Scene::new(|_| {}).await;
    let a = &scene.a;

    // Health needs no token.
    let health = a.health().await.unwrap();
    assert_eq!(
        (health["agency"].as_str(), health["connected"].as_bool()),
        (Some(scene.platform.code("A")), Some(true))
    );
    assert!(health["outbox"].is_u64() && health["pending"].is_u64(), "{health}");

    // Everything under /v1 does.
    let id = "01a24000-0000-7000-8000-000000000000";
    let endpoints = [
        (Method::POST, "/v1/letters".to_owned()),
        (Method::GET, format!("/v1/letters/{id}")),
        (Method::GET, "/v1/inbox".to_owned()),
        (Method::GET, format!("/v1/inbox/{id}")),
        (Method::GET, format!("/v1/inbox/{id}/envelope")),
        (Method::POST, format!("/v1/inbox/{id}/ack")),
        (Method::POST, format!("/v1/inbox/{id}/status")),
        (Method::POST, "/v1/requests/redelivery".to_owned()),
    ];
    let token = &a.bundle().token;
    let same_length = "x".repeat(token.len());
    for (method, path) in &endpoints {
        for presented in [None, Some("wrong"), Some(same_length.as_str()), Some(&token[..token.len() - 1])] {
            let mut request = a.http().request(method.clone(), a.url(path));
            if let Some(presented) = presented {
                request = request.bearer_auth(presented);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path} with {presented:?}");
            let error: Value = response.json().await.unwrap();
            assert!(error["error"].is_string(), "{error}");
        }
    }

    // A letter that breaks the contract: 400 with its reason code.
    let empty = json!({ "to": [scene.code("B")], "letter": { "subject": "", "body": "…" } });
    let (status, error) = post_letter(a, &empty).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(
        (error["reason_code"].as_i64(), error["reason"].as_str()),
        (Some(305), Some("REASON_CODE_EMPTY_SUBJECT"))
    );
    assert!(error["error"].as_str().is_some_and(|e| !e.is_empty()), "{error}");
    let unknown =
        json!({ "to": [scene.code("B")], "classification": "top-secret", "letter": { "subject": "x" } });
    let (status, error) = post_letter(a, &unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(error["error"].as_str().unwrap().contains("classification"), "{error}");
    let response =
        a.post("/v1/requests/redelivery").json(&json!({ "envelope_id": "nope" })).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.json::<Value>().await.unwrap()["reason_code"], 301);

    // Unknown ids: 404 with an error, on every endpoint that takes one.
    let status = json!({ "status": "closed" });
    for request in [
        a.get(&format!("/v1/letters/{id}")),
        a.get(&format!("/v1/inbox/{id}")),
        a.get(&format!("/v1/inbox/{id}/envelope")),
        a.post(&format!("/v1/inbox/{id}/ack")),
        a.post(&format!("/v1/inbox/{id}/status")).json(&status),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{}", response.url());
        let error: Value = response.json().await.unwrap();
        let message = error["error"].as_str().unwrap();
        assert!(message.starts_with("no ") && message.contains(id), "{message}");
    }
    scene.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confidential_letter_is_sealed_and_readable_by_its_recipient_over_http() {
    let scene = Scene::new(|_| {}).await;
    let (a, b) = (&scene.a, &scene.b);
    let request = json!({
        "to": [scene.code("B")],
        "classification": "confidential",
        "letter": {
            "subject": "خطة سرية",
            "body": "للاطلاع فقط",
            "attachments": [{ "name": "plan.txt", "mediaType": "text/plain", "content": base64::encode_block(b"the plan") }],
        },
    });
    let (status, answer) = post_letter(a, &request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = answer["envelope_id"].as_str().unwrap().to_owned();

    let item = pending_letter(b, &id).await;
    assert_eq!(item["kind"], "sealed", "it travelled sealed");
    assert_eq!(item["header"]["classification"], "CLASSIFICATION_CONFIDENTIAL");
    let letter = &item["body"]["letter"];
    assert_eq!(letter["subject"], "خطة سرية", "B's adapter opened it: {item}");
    assert_eq!(decode(&letter["attachments"][0]["content"]), b"the plan");
    let envelope = b.get(&format!("/v1/inbox/{id}/envelope")).send().await.unwrap().bytes().await.unwrap();
    let subject = "خطة سرية".as_bytes();
    assert!(!envelope.windows(subject.len()).any(|w| w == subject), "the envelope itself is sealed");

    b.ack(&id).await.unwrap();
    let tracking = tracking_at(a, &id, &scene.code("B"), "delivered").await;
    assert_eq!(tracking["classification"], "CLASSIFICATION_CONFIDENTIAL");
    scene.finish().await;
}

/// What the agency system's webhook saw.
#[derive(Debug, Default)]
struct Pushes {
    /// Every item pushed, in order, with the answer it got.
    items: Vec<(Value, StatusCode)>,
    /// The `Authorization` headers that came with them.
    authorizations: Vec<String>,
}

impl Pushes {
    fn of(&self, id: &str) -> Vec<StatusCode> {
        self.items.iter().filter(|(item, _)| item["id"] == id).map(|(_, status)| *status).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_is_pushed_again_after_a_failure_and_then_acknowledged() {
    // The agency system: the first push of each item fails with 500, later ones succeed.
    let pushes: Arc<Mutex<Pushes>> = Arc::default();
    let seen = Arc::clone(&pushes);
    let app = axum::Router::new().route(
        "/mirsal/items",
        axum::routing::post(move |headers: HeaderMap, axum::Json(item): axum::Json<Value>| {
            let seen = Arc::clone(&seen);
            async move {
                let mut seen = seen.lock().unwrap();
                let first = seen.items.iter().all(|(earlier, _)| earlier["id"] != item["id"]);
                let status = if first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
                let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                seen.authorizations.push(authorization.unwrap_or_default().to_owned());
                seen.items.push((item, status));
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let scene = Scene::new(|bundle| {
        let config = std::fs::read_to_string(&bundle.config_path).unwrap();
        let webhook = format!(
            "\n[webhook]\nurl = \"http://{hook}/mirsal/items\"\ntoken = \"hook-secret\"\nmax_backoff = \"1s\"\n"
        );
        std::fs::write(&bundle.config_path, config + &webhook).unwrap();
    })
    .await;
    let (a, b) = (&scene.a, &scene.b);

    let letter = json!({ "to": [scene.code("B")], "letter": { "subject": "عبر الخطاف", "body": "…" } });
    let (status, answer) = post_letter(a, &letter).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let id = answer["envelope_id"].as_str().unwrap().to_owned();

    // Refused once, pushed again, and acknowledged once the agency system said 200.
    eventually(PATIENCE, "the letter pushed twice and acknowledged", || async {
        let answers = pushes.lock().unwrap().of(&id);
        let pending = b.pending().await;
        (answers.len() >= 2 && pending.iter().all(|i| i["id"] != id.as_str())).then_some(())
    })
    .await;
    tracking_at(a, &id, &scene.code("B"), "delivered").await;
    let item: Value = b.get(&format!("/v1/inbox/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(item["acknowledged"], true);

    {
        let pushes = pushes.lock().unwrap();
        assert_eq!(
            pushes.of(&id),
            [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK],
            "pushed until it succeeded, then no more"
        );
        let (pushed, _) = pushes.items.iter().find(|(i, _)| i["id"] == id.as_str()).unwrap();
        assert_eq!(
            (pushed["kind"].as_str(), pushed["acknowledged"].as_bool()),
            (Some("letter"), Some(false))
        );
        assert_eq!(pushed["body"]["letter"]["subject"], "عبر الخطاف");
        assert_eq!(pushed["digest"], item["digest"], "the same item the bridge serves");
        assert!(
            pushes.authorizations.iter().all(|a| a == "Bearer hook-secret"),
            "{:?}",
            pushes.authorizations
        );
    }
    server.abort();
    scene.finish().await;
}
