//! The router's HTTP API against real traffic on the real broker: every endpoint of
//! `crates/router/src/http.rs`, with the fields an operator relies on — the figures
//! count what happened, tracking shows every step with its time and never a sealed
//! letter's content, search finds letters by each criterion and pages without
//! duplicates or gaps, agencies show their queues and health, overdue letters are
//! reported, a poisoned message lands in the dead letters and a replay after fixing
//! the cause delivers it exactly once, the audit chain verifies, and nothing under
//! `/api/v1` answers without the token.
//!
//! With `MIRSAL_API_SAMPLES=DIR`, every answer is also written to `DIR` (one JSON file
//! each: method, path, status, body) so it can be checked against the schemas of
//! `docs/router-openapi.yaml`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use mirsal_bus::{headers, topology};
use mirsal_envelope::{
    Draft, HeaderDraft, Policy, ReasonCode, TrustStore,
    pb::{self, notice::Kind, receipt::Status as ReceiptStatus},
};
use mirsal_integration_tests::{
    eventually,
    platform::{Inbox, PATIENCE, Platform},
    within,
};
use mirsal_router::directory::AgencyStatus;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The router's API as a script would call it.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

static SAMPLE: AtomicUsize = AtomicUsize::new(0);

impl Api {
    fn new(platform: &Platform) -> Self {
        Self { client: reqwest::Client::new(), base: platform.http_url(), token: platform.http_token.clone() }
    }

    /// `method path` with `authorization` (`None`: no header); the status, the content
    /// type and the body.
    async fn raw(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, String, String) {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.text().await.unwrap();
        if let Ok(dir) = std::env::var("MIRSAL_API_SAMPLES") {
            let n = SAMPLE.fetch_add(1, Ordering::Relaxed);
            let sample = serde_json::json!({
                "method": method.as_str(),
                "path": path,
                "status": status.as_u16(),
                "content_type": content_type,
                "body": body,
            });
            let name = format!("{}-{n:04}.json", std::process::id());
            std::fs::write(std::path::Path::new(&dir).join(name), sample.to_string()).unwrap();
        }
        (status, content_type, body)
    }

    /// `method path` with the token; the status and the JSON body.
    async fn call(&self, method: Method, path: &str) -> (StatusCode, Value) {
        let (status, content_type, body) =
            self.raw(method, path, Some(&format!("Bearer {}", self.token))).await;
        assert!(content_type.starts_with("application/json"), "{path}: {status} {content_type}: {body}");
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
    }

    /// `method path`, which must answer 200; its JSON.
    async fn ok(&self, method: Method, path: &str) -> Value {
        let (status, body) = self.call(method, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path).await
    }

    /// A search; the ids found, in order, and the page.
    async fn search(&self, query: &[(&str, &str)]) -> (Vec<String>, Value) {
        let page = self.get(&format!("/api/v1/search?{}", encode(query))).await;
        (ids(&page), page)
    }

    /// The agencies, by code.
    async fn agencies(&self) -> std::collections::BTreeMap<String, Value> {
        let list = self.get("/api/v1/agencies").await;
        assert_eq!(list["management"], true, "the fixture configures the management API");
        list["agencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["code"].as_str().unwrap().to_owned(), a.clone()))
            .collect()
    }

    async fn dead_letters(&self) -> Vec<Value> {
        self.get("/api/v1/dead-letters").await["items"].as_array().unwrap().clone()
    }

    /// Waits until the router's directory shows agency `code` with `status`.
    async fn wait_for_status(&self, code: &str, status: &str) {
        eventually(PATIENCE, &format!("{code} {status} in the router's directory"), || async {
            (self.agencies().await.get(code)?["status"] == status).then_some(())
        })
        .await;
    }
}

fn encode(query: &[(&str, &str)]) -> String {
    query
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap_or_else(|| panic!("not a time: {value}")).parse().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn delivered() -> ReceiptStatus {
    ReceiptStatus::Delivered(pb::Delivered {})
}

/// Signs and submits a letter `from` → `to` built by `header` from the default
/// header; returns its id and bytes.
async fn send(
    platform: &Platform,
    from: &str,
    to: &[&str],
    letter: pb::Letter,
    header: impl FnOnce(HeaderDraft) -> HeaderDraft,
) -> (String, Bytes) {
    let draft =
        to.iter().fold(HeaderDraft::new(platform.code(from)), |h, name| h.action(platform.code(name)));
    let (id, bytes) = platform.sign(from, Draft::letter(header(draft), letter));
    platform.agency(from).submit(bytes.clone()).await;
    (id, bytes)
}

fn letter(subject: &str) -> pb::Letter {
    pb::Letter {
        subject: subject.into(),
        body: "تحية طيبة وبعد".into(),
        language: "ar".into(),
        ..Default::default()
    }
}

/// Waits until the router lists `count` dead letters (it keeps each one as it reaches
/// `mirsal.dead-letters`), and returns them.
async fn listed(api: &Api, count: usize) -> Vec<Value> {
    eventually(PATIENCE, &format!("{count} dead letters listed"), || async {
        let items = api.dead_letters().await;
        (items.len() == count).then_some(items)
    })
    .await
}

/// Waits for the accepted notice of letter `id` in its sender's `inbox`.
async fn accepted(inbox: &mut Inbox, id: &str) {
    inbox
        .next_matching(&format!("the accepted notice of {id}"), |r| {
            r.notice().is_some_and(|n| n.subject_id == id && matches!(n.kind, Some(Kind::Accepted(_))))
        })
        .await;
}

/// The next message in `inbox` with envelope id `id`.
async fn arrives(inbox: &mut Inbox, id: &str) -> mirsal_integration_tests::platform::Received {
    inbox.next_matching(&format!("letter {id}"), |r| r.message_id.as_deref() == Some(id)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_search_and_figures_follow_real_traffic() {
    let mut platform = Platform::new(&["A", "B", "C", "P"]).await;
    platform.start_router().await;
    let api = Api::new(&platform);
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut b = platform.agency("B").inbox(verifier.clone());
    // C's inbox has no consumer: its letters wait there.
    let (code_a, code_b, code_c, code_p) = (
        platform.code("A").to_owned(),
        platform.code("B").to_owned(),
        platform.code("C").to_owned(),
        platform.code("P").to_owned(),
    );

    // L1: registered by B. L2: in L1's thread, urgent, not acknowledged.
    let numbered = pb::Letter { outgoing_number: "A/OUT/2026/1187".into(), ..letter("ميزانية 2027") };
    let (l1, l1_bytes) = send(&platform, "A", &["B"], numbered, |h| h).await;
    let l1_received = arrives(&mut b, &l1).await;
    let before_receipts = Utc::now();
    let (delivered_id, receipt) = platform.receipt("B", &l1_received.verified, delivered());
    platform.agency("B").submit(receipt).await;
    // Receipts about one letter may be processed in any order; these tests want the
    // timeline in the usual one.
    eventually(PATIENCE, "L1 delivered", || async {
        let view = api.get(&format!("/api/v1/envelopes/{l1}")).await;
        (view["tracking"][0]["status"] == "delivered").then_some(())
    })
    .await;
    let registered = ReceiptStatus::Registered(pb::Registered {
        incoming_number: "B/IN/2026/77".into(),
        incoming_date: "2026-12-04".into(),
    });
    let (registered_id, receipt) = platform.receipt("B", &l1_received.verified, registered);
    platform.agency("B").submit(receipt).await;
    let (l2, _) = send(&platform, "A", &["B"], letter("رد على الميزانية"), |h| {
        h.thread(l1.clone()).priority(pb::Priority::Urgent)
    })
    .await;
    arrives(&mut b, &l2).await;

    // S1: confidential, sealed for B.
    let ca = platform.authority.certificate().to_pem().unwrap();
    let crl = std::fs::read(platform.pki_dir().join("crl.pem")).unwrap();
    let trust = TrustStore::from_pem(&ca, &[&crl]).unwrap();
    let secret = pb::Letter { body: "للاطلاع فقط".into(), ..letter("خطة سرية") };
    let sealed = Draft::letter(
        HeaderDraft::new(code_a.clone())
            .action(code_b.clone())
            .classification(pb::Classification::Confidential),
        secret,
    )
    .build_sealed(
        &Policy::default(),
        Utc::now(),
        std::slice::from_ref(&platform.agency("B").credentials.sealing.certificate),
        &trust,
    )
    .unwrap();
    let (s1, s1_bytes) = platform.sign_content("A", &sealed);
    platform.agency("A").submit(s1_bytes).await;
    arrives(&mut b, &s1).await;

    // C1, C2 wait in C's inbox.
    let (c1, _) = send(&platform, "A", &["C"], letter("to C, one"), |h| h).await;
    accepted(&mut a, &c1).await;
    let (c2, _) = send(&platform, "A", &["C"], letter("to C, two"), |h| h).await;
    accepted(&mut a, &c2).await;

    // Five letters from P to B, for paging and the date range, each accepted in a
    // millisecond after `from_p` (router times are milliseconds).
    let from_p = Utc::now() + chrono::Duration::milliseconds(2);
    eventually(PATIENCE, "the clock to pass from_p", || async { (Utc::now() > from_p).then_some(()) }).await;
    let mut p_ids = Vec::new();
    for i in 0..5 {
        let (id, _) = send(&platform, "P", &["B"], letter(&format!("page {i}")), |h| h).await;
        arrives(&mut b, &id).await;
        p_ids.push(id);
    }
    let after_p = Utc::now();

    // One refusal: a recipient that does not exist.
    let (refused, _) =
        send(&platform, "A", &["B"], letter("misaddressed"), |h| h.action("ZZ-NOT-AN-AGENCY")).await;
    let notice = a.next_matching("the rejected notice", |r| r.rejected_code().is_some()).await;
    assert_eq!(notice.rejected_code(), Some(ReasonCode::UnknownRecipient));

    // Summary: what happened since the router started.
    let summary = eventually(PATIENCE, "the summary to count everything", || async {
        let summary = api.get("/api/v1/summary").await;
        (summary["receipts"] == 2 && summary["rejected"] == 1 && summary["in_flight"] == 0).then_some(summary)
    })
    .await;
    assert_eq!(summary["accepted_letters"], 10, "L1, L2, S1, C1, C2 and five from P: {summary}");
    assert_eq!(summary["ready"], true);
    assert_eq!(summary["dead_letters"], 1, "the refused letter: {summary}");
    assert!(summary["latency_samples"].as_u64().unwrap() >= 1, "{summary}");
    assert!(summary["latency_p50"].as_f64().unwrap() >= 0.0, "{summary}");
    time(&summary["at"]);
    let queues = eventually(PATIENCE, "queue depths in the summary (management API)", || async {
        let queues = api.get("/api/v1/summary").await["queues"].clone();
        // The refused one is kept by the router, not left in the broker's queue.
        (queues["mirsal.dead-letters"] == 0 && queues["mirsal.ingress"].is_u64()).then_some(queues)
    })
    .await;
    assert!(queues[format!("mirsal.inbox.{code_c}")].is_u64(), "{queues}");

    // Metrics: labelled counters and the latency histograms.
    let (status, content_type, metrics) = api.raw(Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    for line in [
        format!("mirsal_envelopes_accepted_total{{kind=\"letter\",sender=\"{code_a}\"}} 4"),
        format!("mirsal_envelopes_accepted_total{{kind=\"sealed\",sender=\"{code_a}\"}} 1"),
        format!("mirsal_envelopes_accepted_total{{kind=\"letter\",sender=\"{code_p}\"}} 5"),
        format!("mirsal_envelopes_accepted_total{{kind=\"receipt\",sender=\"{code_b}\"}} 2"),
        format!(
            "mirsal_envelopes_rejected_total{{code=\"{}\",reason=\"REASON_CODE_UNKNOWN_RECIPIENT\"}} 1",
            ReasonCode::UnknownRecipient as i32
        ),
        format!("mirsal_receipts_total{{agency=\"{code_b}\",status=\"registered\"}} 1"),
        "mirsal_submit_to_queued_seconds_count 10".to_owned(),
        "mirsal_queued_to_delivered_seconds_count 1".to_owned(),
        "mirsal_delivered_to_registered_seconds_count 1".to_owned(),
        "mirsal_envelopes_received_total 13".to_owned(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "no line {line:?} in /metrics:\n{metrics}");
    }
    for name in [
        "mirsal_submit_to_queued_seconds_bucket{le=",
        "mirsal_queued_to_delivered_seconds_bucket{le=",
        "mirsal_delivered_to_registered_seconds_bucket{le=",
    ] {
        assert!(metrics.contains(name), "no {name} in /metrics");
    }
    assert!(metrics.trim_end().ends_with("# EOF"));

    // L1's tracking: every step with its time, after the receipts.
    let view = eventually(PATIENCE, "L1 registered and its accepted notice confirmed", || async {
        let view = api.get(&format!("/api/v1/envelopes/{l1}")).await;
        (view["tracking"][0]["status"] == "registered" && view["completed"] == true).then_some(view)
    })
    .await;
    assert_eq!(view["id"], l1.as_str());
    assert_eq!(view["kind"], "letter");
    assert_eq!(view["sender"], code_a.as_str());
    assert_eq!(view["recipients"], serde_json::json!([{ "agency": code_b, "role": "action" }]));
    assert_eq!(view["classification"], "unclassified");
    assert_eq!(view["priority"], "normal");
    assert_eq!(view["subject"], "ميزانية 2027");
    assert_eq!(view["outgoing_number"], "A/OUT/2026/1187");
    assert_eq!(view["sealed"], false);
    assert_eq!(view["thread_id"], l1.as_str(), "a first letter opens its own thread");
    assert_eq!(view["digest"], hex(&l1_received.verified.digest));
    assert_eq!(view["size"], l1_bytes.len());
    assert!(view["audit_sequence"].as_u64().unwrap() > 0);
    assert!(
        millis(time(&view["accepted_at"]))
            >= millis(time(&view["created_at"])) - chrono::Duration::milliseconds(1)
    );
    let row = &view["tracking"][0];
    assert_eq!(row["agency"], code_b.as_str());
    assert_eq!(row["incoming_number"], "B/IN/2026/77");
    assert_eq!(
        (row["delivery_overdue"].clone(), row["reply_overdue"].clone()),
        (Value::Bool(false), Value::Bool(false))
    );
    let steps = row["timeline"].as_array().unwrap();
    let statuses: Vec<&str> = steps.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "queued", "delivered", "registered"]);
    let times: Vec<DateTime<Utc>> = steps.iter().map(|s| time(&s["at"])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(times[2] >= millis(before_receipts), "delivered at {} before its receipt was sent", times[2]);
    assert_eq!(steps[2]["receipt_id"], delivered_id.as_str());
    assert_eq!(steps[3]["receipt_id"], registered_id.as_str());
    assert!(steps[3]["detail"].as_str().unwrap().contains("B/IN/2026/77"));
    assert_eq!(steps[0]["receipt_id"], "");

    let view = api.get(&format!("/api/v1/envelopes/{l2}")).await;
    assert_eq!((view["thread_id"].as_str(), view["priority"].as_str()), (Some(l1.as_str()), Some("urgent")));
    assert_eq!(view["tracking"][0]["status"], "queued");

    // A receipt is archived too, and says what it is about.
    let view = api.get(&format!("/api/v1/envelopes/{delivered_id}")).await;
    assert_eq!((view["kind"].as_str(), view["about"].as_str()), (Some("receipt"), Some(l1.as_str())));
    assert_eq!(view["sender"], code_b.as_str());
    assert_eq!(view["tracking"], serde_json::json!([]));

    // The sealed letter: its header, never its content.
    let (status, _, text) = api
        .raw(Method::GET, &format!("/api/v1/envelopes/{s1}"), Some(&format!("Bearer {}", api.token)))
        .await;
    assert_eq!(status, StatusCode::OK);
    for secret in ["خطة سرية", "للاطلاع فقط"] {
        assert!(!text.contains(secret), "the sealed letter's text {secret:?} is in {text}");
    }
    let view: Value = serde_json::from_str(&text).unwrap();
    assert_eq!((view["kind"].as_str(), view["sealed"].as_bool()), (Some("sealed"), Some(true)));
    assert_eq!((view["subject"].clone(), view["outgoing_number"].clone()), (Value::Null, Value::Null));
    assert_eq!(view["classification"], "confidential");
    assert_eq!(view["attachments"], serde_json::json!([]));
    assert_eq!(view["tracking"][0]["status"], "queued");

    let (status, body) =
        api.call(Method::GET, "/api/v1/envelopes/01a241e4-0000-7000-8000-000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("no envelope"), "{body}");

    // Search, by each criterion.
    let (found, _) = api.search(&[("agency", &code_a), ("direction", "sent")]).await;
    assert_eq!(found, [&c2, &c1, &s1, &l2, &l1].map(String::clone), "A's letters, newest first");
    let (found, _) = api.search(&[("agency", &code_b), ("direction", "received")]).await;
    assert_eq!(
        set(&found.iter().collect::<Vec<_>>()),
        set(&[&l1, &l2, &s1, &p_ids[0], &p_ids[1], &p_ids[2], &p_ids[3], &p_ids[4]])
    );
    let (found, _) = api.search(&[("agency", &code_b), ("direction", "sent")]).await;
    assert!(found.is_empty(), "receipts are not letters: {found:?}");
    let (found, _) = api.search(&[("agency", &code_c)]).await;
    assert_eq!(found, [&c2, &c1].map(String::clone));
    let (found, _) = api.search(&[("thread", &l1)]).await;
    assert_eq!(found, [&l2, &l1].map(String::clone));
    let (found, _) = api.search(&[("outgoing_number", "A/OUT/2026/1187")]).await;
    assert_eq!(found, [l1.as_str()]);
    let (found, _) = api.search(&[("incoming_number", "B/IN/2026/77")]).await;
    assert_eq!(found, [l1.as_str()]);
    let (found, _) = api.search(&[("incoming_number", "B/IN/2026/78")]).await;
    assert!(found.is_empty());
    let (found, _) = api.search(&[("status", "registered")]).await;
    assert_eq!(found, [l1.as_str()]);
    let (found, _) = api.search(&[("status", "delivered")]).await;
    assert!(found.is_empty(), "L1 has moved on to registered: {found:?}");
    let (found, _) = api.search(&[("agency", &code_a), ("status", "queued")]).await;
    assert_eq!(found, [&c2, &c1, &s1, &l2].map(String::clone));
    let (found, _) = api.search(&[("priority", "urgent")]).await;
    assert_eq!(found, [l2.as_str()]);
    let (found, _) = api.search(&[("from", &rfc3339(from_p)), ("to", &rfc3339(after_p))]).await;
    assert_eq!(
        set(&found.iter().collect::<Vec<_>>()),
        set(&p_ids.iter().collect::<Vec<_>>()),
        "P's letters, and only them"
    );
    let (found, _) = api.search(&[("agency", &code_a), ("to", &rfc3339(from_p))]).await;
    assert_eq!(found.len(), 5, "all of A's letters came before P's: {found:?}");
    let (found, _) = api.search(&[("agency", &code_p), ("from", &rfc3339(after_p))]).await;
    assert!(found.is_empty());
    let (found, page) =
        api.search(&[("agency", &code_a), ("overdue", "false"), ("priority", "normal")]).await;
    assert_eq!(found, [&c2, &c1, &s1, &l1].map(String::clone));
    let sealed_item = page["items"].as_array().unwrap().iter().find(|i| i["id"] == s1.as_str()).unwrap();
    assert_eq!((sealed_item["kind"].as_str(), sealed_item["subject"].clone()), (Some("sealed"), Value::Null));
    assert_eq!(sealed_item["statuses"], serde_json::json!([{ "agency": code_b, "status": "queued" }]));

    // Paging: 5 letters, 2 a page → 2 + 2 + 1, newest first, no duplicates, no gaps.
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("agency", code_p.as_str()), ("direction", "sent"), ("limit", "2")];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.as_str()));
        }
        let (found, page) = api.search(&query).await;
        pages.push(found);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(page["next_cursor"].is_null(), "{page}");
                break;
            }
        }
        assert!(pages.len() < 5, "the pages never end: {pages:?}");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    let all: Vec<String> = pages.concat();
    let mut newest_first = p_ids.clone();
    newest_first.reverse();
    assert_eq!(all, newest_first, "every letter once, newest first");

    // Criteria that cannot be served.
    for (query, expected) in [
        ("direction=sent", "direction needs an agency"),
        ("status=bogus", "not a tracking status"),
        ("priority=low", "expected normal, urgent or immediate"),
        ("cursor=zzz", "not one this API returned"),
    ] {
        let (status, body) = api.call(Method::GET, &format!("/api/v1/search?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(body["error"].as_str().unwrap().contains(expected), "{query}: {body}");
    }

    // Agencies: every one, with inbox figures once the management API has sampled them.
    let agencies = eventually(PATIENCE, "inbox figures for every agency (management API)", || async {
        let agencies = api.agencies().await;
        let sampled = agencies.values().all(|a| {
            ["messages", "ready", "unacknowledged", "consumers"].iter().all(|f| a["inbox"][f].is_u64())
        });
        (sampled && agencies[&code_c]["inbox"]["messages"] == 2).then_some(agencies)
    })
    .await;
    assert_eq!(agencies.keys().cloned().collect::<BTreeSet<_>>(), set(&[&code_a, &code_b, &code_c, &code_p]));
    for (name, code) in [("A", &code_a), ("B", &code_b), ("C", &code_c), ("P", &code_p)] {
        let agency = &agencies[code];
        assert_eq!(agency["name_ar"], format!("الجهة {name}"));
        assert_eq!(agency["name_en"], format!("Agency {name}"));
        assert_eq!(
            (agency["status"].as_str(), agency["clearance"].as_str()),
            (Some("active"), Some("secret"))
        );
        assert_eq!(agency["inbox"]["name"], format!("mirsal.inbox.{code}"));
        assert!(
            agency["inbox"]["consumers"].is_u64() && agency["inbox"]["unacknowledged"].is_u64(),
            "{agency}"
        );
    }
    let figures = |code: &str| {
        let agency = &agencies[code];
        ["undelivered", "sent_today", "received_today", "overdue"].map(|f| agency[f].as_u64().unwrap())
    };
    assert_eq!(figures(&code_a), [0, 5, 0, 0], "A: {}", agencies[&code_a]);
    assert_eq!(
        figures(&code_b),
        [7, 0, 8, 0],
        "B: L2, S1 and P's five wait for B's receipt: {}",
        agencies[&code_b]
    );
    assert_eq!(figures(&code_c), [2, 0, 2, 0], "C: {}", agencies[&code_c]);
    assert_eq!(figures(&code_p), [0, 5, 0, 0], "P: {}", agencies[&code_p]);
    assert_eq!(agencies[&code_c]["inbox"]["consumers"], 0);
    assert_eq!(agencies[&code_c]["health"], "no-consumer");
    assert!(agencies[&code_c]["oldest_pending_seconds"].as_i64().unwrap() >= 0);
    assert_eq!(agencies[&code_a]["oldest_pending_seconds"], Value::Null);
    assert_eq!(agencies[&code_b]["inbox"]["consumers"], 1);
    assert_eq!(agencies[&code_b]["health"], "ok");
    assert_eq!(agencies[&code_a]["health"], "ok");

    // Rejections, newest first, with their reason code.
    let rejections = api.get("/api/v1/rejections?limit=10").await;
    let items = rejections["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{rejections}");
    assert_eq!(items[0]["kind"], "rejected");
    assert_eq!(items[0]["reason_code"], ReasonCode::UnknownRecipient as i32);
    assert_eq!(items[0]["envelope_id"], refused.as_str());
    assert_eq!(items[0]["agency"], code_a.as_str());
    assert!(items[0]["detail"].as_str().unwrap().contains("ZZ-NOT-AN-AGENCY"), "{rejections}");
    assert_eq!(api.get("/api/v1/overdue").await["items"], serde_json::json!([]), "nothing is late yet");

    // The audit chain: a head, signed in the background, that verifies.
    let head = eventually(PATIENCE, "a signed audit head", || async {
        let head = api.get("/api/v1/audit").await;
        (head["last_signed_sequence"].as_u64()? > 0).then_some(head)
    })
    .await;
    let sequence = head["sequence"].as_u64().unwrap();
    assert!(sequence > 0);
    assert!(head["hash"].as_str().unwrap().len() == 64, "{head}");
    let verdict = api.ok(Method::POST, "/api/v1/audit/verify").await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert!(verdict["events"].as_u64().unwrap() >= sequence, "{verdict}");
    assert!(verdict["signed_heads"].as_u64().unwrap() >= 1, "{verdict}");
    platform.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_letter_is_reported_flagged_and_found() {
    let mut platform = Platform::new(&["A", "B"]).await;
    platform.config_overrides.insert(
        "overdue",
        vec!["delivery_sla = { normal = \"1s\", urgent = \"1h\", immediate = \"1h\" }".into()],
    );
    platform.start_router().await;
    let api = Api::new(&platform);
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut b = platform.agency("B").inbox(verifier.clone());
    let code_b = platform.code("B").to_owned();

    // B takes both letters from its inbox but never sends a receipt.
    let (late, _) = send(&platform, "A", &["B"], letter("nobody acknowledges this"), |h| h).await;
    arrives(&mut b, &late).await;
    let (urgent, _) =
        send(&platform, "A", &["B"], letter("an hour to deliver"), |h| h.priority(pb::Priority::Urgent))
            .await;
    arrives(&mut b, &urgent).await;
    let notice = a
        .next_matching("the overdue notice", |r| {
            matches!(r.notice().and_then(|n| n.kind.as_ref()), Some(Kind::Overdue(_)))
        })
        .await;
    assert_eq!(notice.notice().unwrap().subject_id, late);

    let overdue = eventually(PATIENCE, "the overdue report", || async {
        let items = api.get("/api/v1/overdue?limit=5").await["items"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(overdue.len(), 1, "{overdue:?}");
    assert_eq!(overdue[0]["kind"], "overdue-delivery");
    assert_eq!(overdue[0]["envelope_id"], late.as_str());
    assert_eq!(overdue[0]["agency"], code_b.as_str());
    assert_eq!(overdue[0]["reason_code"], Value::Null);
    time(&overdue[0]["at"]);

    let view = api.get(&format!("/api/v1/envelopes/{late}")).await;
    assert_eq!(view["tracking"][0]["delivery_overdue"], true);
    assert_eq!(view["tracking"][0]["status"], "queued");
    let (found, page) = api.search(&[("overdue", "true")]).await;
    assert_eq!(found, [late.as_str()]);
    assert_eq!(page["items"][0]["overdue"], true);
    let (found, _) = api.search(&[("overdue", "false")]).await;
    assert_eq!(found, [urgent.as_str()]);

    let agencies = api.agencies().await;
    let agency = &agencies[&code_b];
    assert_eq!((agency["overdue"].as_u64(), agency["undelivered"].as_u64()), (Some(1), Some(2)), "{agency}");
    assert_eq!(agency["health"], "overdue");
    let (_, _, metrics) = api.raw(Method::GET, "/metrics", None).await;
    assert!(metrics.lines().any(|l| l == "mirsal_overdue_total{kind=\"delivery\"} 1"), "{metrics}");
    platform.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_letter_is_dead_lettered_and_a_replay_after_the_fix_delivers_it_once() {
    let mut platform = Platform::new(&["A", "S"]).await;
    platform.start_router().await;
    let api = Api::new(&platform);
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut s = platform.agency("S").inbox(verifier.clone());
    let (code_a, code_s) = (platform.code("A").to_owned(), platform.code("S").to_owned());

    // The poison: a letter to a suspended recipient.
    platform.set_status("S", AgencyStatus::Suspended);
    api.wait_for_status(&code_s, "suspended").await;
    let (poisoned, poisoned_bytes) =
        send(&platform, "A", &["S"], letter("while S is suspended"), |h| h).await;
    let notice = a.next_matching("the rejected notice", |r| r.rejected_code().is_some()).await;
    assert_eq!(notice.rejected_code(), Some(ReasonCode::RecipientSuspended));

    let listed_now = listed(&api, 1).await;
    let dead = &listed_now[0];
    let id = dead["id"].as_str().unwrap().to_owned();
    assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(dead["message_id"], poisoned.as_str());
    assert_eq!(dead["reason_code"], ReasonCode::RecipientSuspended as i32);
    assert!(dead["reason"].as_str().unwrap().contains("REASON_CODE_RECIPIENT_SUSPENDED"), "{dead}");
    assert_eq!(dead["origin"], code_a.as_str());
    assert_eq!(dead["queue"], "mirsal.ingress");
    assert_eq!(dead["death"], "refused");
    assert_eq!(dead["size"], poisoned_bytes.len());
    assert_eq!(dead["deaths"], 1);
    let received_at = time(&dead["received_at"]);
    assert_eq!(time(&dead["last_died_at"]), received_at);

    let shown = api.get(&format!("/api/v1/dead-letters/{id}")).await;
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["reason_code"], ReasonCode::RecipientSuspended as i32);
    assert_eq!(shown["envelope"]["content"]["header"]["envelopeId"], poisoned.as_str());
    assert_eq!(shown["envelope"]["content"]["header"]["recipients"][0]["agency"], code_s.as_str());
    // Who sent what to whom, never what the letter says.
    assert_eq!(shown["envelope"]["content"]["letter"]["body"], "(14 characters withheld)");
    assert!(!shown.to_string().contains("تحية طيبة وبعد"), "{shown}");

    // Looking does not touch it: listed and shown again and again, it stays one death.
    for _ in 0..30 {
        assert_eq!(api.dead_letters().await.len(), 1);
        assert_eq!(api.get(&format!("/api/v1/dead-letters/{id}")).await["deaths"], 1);
    }

    // Replayed before the cause is fixed: refused again, and still there.
    let replayed = api.ok(Method::POST, &format!("/api/v1/dead-letters/{id}/replay")).await;
    assert_eq!(replayed["id"], id.as_str());
    assert_eq!(replayed["outcome"], "refused");
    assert_eq!(replayed["reason_code"], ReasonCode::RecipientSuspended as i32);
    // The new refusal comes back through the dead-letter queue and counts as a death.
    let again = eventually(PATIENCE, "the second death recorded", || async {
        let items = api.dead_letters().await;
        (items.len() == 1 && items[0]["deaths"] == 2).then_some(items)
    })
    .await;
    assert_eq!(again[0]["id"], id.as_str());
    assert_eq!(time(&again[0]["received_at"]), received_at, "the first arrival is kept");
    assert!(time(&again[0]["last_died_at"]) >= received_at);
    // Nothing happens without the token.
    for (method, path) in [
        (Method::DELETE, format!("/api/v1/dead-letters/{id}")),
        (Method::POST, format!("/api/v1/dead-letters/{id}/replay")),
    ] {
        let (status, _, _) = api.raw(method, &path, Some("Bearer not-the-token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    // Fixed: the replay delivers it, once.
    platform.set_status("S", AgencyStatus::Active);
    api.wait_for_status(&code_s, "active").await;
    let replayed = api.ok(Method::POST, &format!("/api/v1/dead-letters/{id}/replay")).await;
    assert_eq!(replayed["outcome"], "accepted", "{replayed}");
    assert_eq!((replayed["reason_code"].clone(), replayed["detail"].clone()), (Value::Null, Value::Null));
    let arrived = s.next().await;
    assert_eq!(arrived.message_id.as_deref(), Some(poisoned.as_str()));
    assert_eq!(arrived.bytes, poisoned_bytes, "the recipient gets the bytes the sender signed");
    accepted(&mut a, &poisoned).await;
    let (marker, _) = send(&platform, "A", &["S"], letter("marker"), |h| h).await;
    assert_eq!(s.next().await.message_id.as_deref(), Some(marker.as_str()), "the replayed letter came twice");
    assert!(api.dead_letters().await.is_empty(), "the replayed dead letter is gone");
    assert_eq!(api.get("/api/v1/summary").await["dead_letters"], 0);
    for (method, path) in [
        (Method::GET, format!("/api/v1/dead-letters/{id}")),
        (Method::POST, format!("/api/v1/dead-letters/{id}/replay")),
        (Method::DELETE, format!("/api/v1/dead-letters/{id}")),
    ] {
        let (status, body) = api.call(method, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"], format!("no dead letter {id}"));
    }
    let view = api.get(&format!("/api/v1/envelopes/{poisoned}")).await;
    assert_eq!(view["tracking"][0]["agency"], code_s.as_str());
    assert_eq!(view["tracking"][0]["status"], "queued");

    // Replay them all, at most 2 a second.
    platform.set_status("S", AgencyStatus::Suspended);
    api.wait_for_status(&code_s, "suspended").await;
    let mut batch = BTreeSet::new();
    for i in 0..3 {
        let (id, _) = send(&platform, "A", &["S"], letter(&format!("batch {i}")), |h| h).await;
        a.next_matching("a rejected notice", |r| r.rejected_code().is_some()).await;
        batch.insert(id);
    }
    platform.set_status("S", AgencyStatus::Active);
    api.wait_for_status(&code_s, "active").await;
    listed(&api, 3).await;
    let started = Instant::now();
    let replayed = api.ok(Method::POST, "/api/v1/dead-letters/replay?per_second=2").await;
    let took = started.elapsed();
    let items = replayed["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{replayed}");
    assert!(items.iter().all(|i| i["outcome"] == "accepted"), "{replayed}");
    assert!(took >= Duration::from_secs(1), "3 replays at 2 a second took only {took:?}");
    let mut arrived = BTreeSet::new();
    for _ in 0..3 {
        arrived.insert(s.next().await.message_id.unwrap());
    }
    assert_eq!(arrived, batch);
    let (marker, _) = send(&platform, "A", &["S"], letter("second marker"), |h| h).await;
    assert_eq!(s.next().await.message_id.as_deref(), Some(marker.as_str()));
    assert!(api.dead_letters().await.is_empty());
    assert_eq!(api.ok(Method::POST, "/api/v1/dead-letters/replay").await["items"], serde_json::json!([]));

    // Discard: gone for good, and recorded in the audit log.
    platform.agency("A").submit(Bytes::from_static(b"definitely not an envelope")).await;
    a.next_matching("the rejected notice", |r| r.rejected_code() == Some(ReasonCode::MalformedEnvelope))
        .await;
    let garbage = listed(&api, 1).await.remove(0);
    assert_eq!(garbage["reason_code"], ReasonCode::MalformedEnvelope as i32);
    assert_eq!(garbage["origin"], code_a.as_str());
    let garbage_id = garbage["id"].as_str().unwrap().to_owned();
    let before = api.get("/api/v1/audit").await["sequence"].as_u64().unwrap();
    let discarded = api.ok(Method::DELETE, &format!("/api/v1/dead-letters/{garbage_id}")).await;
    assert_eq!(discarded, garbage, "the discard answers with the dead letter it removed");
    assert!(api.dead_letters().await.is_empty());
    assert_eq!(api.get("/api/v1/audit").await["sequence"].as_u64().unwrap(), before + 1, "one audit event");
    let (status, _) = api.call(Method::DELETE, &format!("/api/v1/dead-letters/{garbage_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(api.ok(Method::POST, "/api/v1/audit/verify").await["ok"], true);
    platform.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_died_in_an_inbox_is_put_back_into_it_once() {
    let mut platform = Platform::new(&["A", "B"]).await;
    platform.start_router().await;
    let api = Api::new(&platform);
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier);
    let (code_a, code_b) = (platform.code("A").to_owned(), platform.code("B").to_owned());

    // B's adapter cannot take the letter and rejects it: it dies in B's inbox.
    let mut b = platform.agency("B").bus.consume(&topology::inbox_queue(&code_b), 10, "rejecting-adapter");
    let (id, bytes) = send(&platform, "A", &["B"], letter("rejected at the inbox"), |h| h).await;
    accepted(&mut a, &id).await;
    let copy = within(PATIENCE, "the copy in B's inbox", b.next()).await.unwrap();
    assert_eq!(copy.message_id(), Some(id.as_str()));
    copy.reject().await.unwrap();
    let dead = listed(&api, 1).await.remove(0);
    assert_eq!(dead["message_id"], id.as_str());
    assert_eq!(dead["queue"], format!("mirsal.inbox.{code_b}"));
    assert_eq!(dead["death"], "rejected");
    assert_eq!(dead["origin"], code_a.as_str(), "the sender, from the router's header: {dead}");
    assert_eq!(dead["reason_code"], Value::Null);
    let dead_id = dead["id"].as_str().unwrap().to_owned();

    // Replayed: back into B's inbox with the bytes and headers it had, then gone.
    let before = api.get("/api/v1/audit").await["sequence"].as_u64().unwrap();
    let replayed = api.ok(Method::POST, &format!("/api/v1/dead-letters/{dead_id}/replay")).await;
    assert_eq!(replayed["outcome"], "redelivered", "{replayed}");
    let again = within(PATIENCE, "the copy back in B's inbox", b.next()).await.unwrap();
    assert_eq!(again.body(), &bytes[..], "the bytes the sender signed");
    assert_eq!(again.message_id(), Some(id.as_str()));
    assert_eq!(again.header(headers::KIND), Some("letter"));
    assert_eq!(again.header(headers::ORIGIN), Some(code_a.as_str()));
    assert!(again.user_id().is_none());
    again.ack().await.unwrap();
    assert!(api.dead_letters().await.is_empty());
    assert_eq!(api.get("/api/v1/audit").await["sequence"].as_u64().unwrap(), before + 1, "one audit event");
    let (marker, _) = send(&platform, "A", &["B"], letter("marker"), |h| h).await;
    let next = within(PATIENCE, "the marker", b.next()).await.unwrap();
    assert_eq!(next.message_id(), Some(marker.as_str()), "the redelivered copy came twice");
    next.ack().await.unwrap();
    let (status, _) = api.call(Method::POST, &format!("/api/v1/dead-letters/{dead_id}/replay")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    platform.cleanup().await;
}

/// Every route of the operators' API, with placeholder ids.
const API_ROUTES: [(&str, &str); 13] = [
    ("GET", "/api/v1/summary"),
    ("GET", "/api/v1/envelopes/01a241e4-d248-7420-815d-f1f00b8b73b9"),
    ("GET", "/api/v1/search?agency=X"),
    ("GET", "/api/v1/agencies"),
    ("GET", "/api/v1/rejections?limit=1"),
    ("GET", "/api/v1/overdue"),
    ("GET", "/api/v1/dead-letters"),
    ("POST", "/api/v1/dead-letters/replay?per_second=5"),
    ("GET", "/api/v1/dead-letters/0123456789abcdef"),
    ("DELETE", "/api/v1/dead-letters/0123456789abcdef"),
    ("POST", "/api/v1/dead-letters/0123456789abcdef/replay"),
    ("GET", "/api/v1/audit"),
    ("POST", "/api/v1/audit/verify"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_wants_the_token_and_the_public_routes_do_not() {
    let mut platform = Platform::new(&["A"]).await;
    platform.start_router().await;
    let api = Api::new(&platform);
    // As long as the real token, differing in its first character.
    let first = if api.token.starts_with('x') { 'y' } else { 'x' };
    let wrong_same_length = format!("{first}{}", &api.token[1..]);
    let refusals = [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some("Bearer wrong".to_owned()),
        Some(format!("Bearer {wrong_same_length}")),
        Some(format!("Bearer {}x", api.token)),
        Some(format!("Basic {}", api.token)),
        Some(api.token.clone()),
    ];
    for (method, path) in API_ROUTES.iter().copied().chain([("GET", "/api/v1/search?bogus=1")]) {
        let method: Method = method.parse().unwrap();
        for authorization in &refusals {
            let (status, content_type, body) = api.raw(method.clone(), path, authorization.as_deref()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path} with {authorization:?}: {body}");
            assert!(content_type.starts_with("application/json"), "{content_type}");
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body, serde_json::json!({ "error": "missing or wrong bearer token" }));
        }
        let (status, _, body) = api.raw(method.clone(), path, Some(&format!("Bearer {}", api.token))).await;
        let expected = if path.contains("bogus") {
            StatusCode::BAD_REQUEST
        } else if path.contains("0123456789abcdef") || path.contains("/envelopes/") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{method} {path} with the token: {body}");
    }
    // A refusal names the scheme it wants; the scheme itself is case-insensitive.
    let refused = api.client.get(format!("{}/api/v1/summary", api.base)).send().await.unwrap();
    assert_eq!(refused.headers()["www-authenticate"], "Bearer realm=\"mirsal\"");
    let (status, _, body) =
        api.raw(Method::GET, "/api/v1/summary", Some(&format!("bearer {}", api.token))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Unknown paths and methods get JSON errors too.
    let (status, content_type, body) = api.raw(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::NOT_FOUND, "application/json"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        serde_json::json!({ "error": "no such endpoint" })
    );
    let wrong_method = api.client.put(format!("{}/healthz", api.base)).send().await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        wrong_method.headers()["allow"].to_str().unwrap().contains("GET"),
        "{:?}",
        wrong_method.headers()
    );
    let body: Value = wrong_method.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "error": "method not allowed on this endpoint" }));
    let (status, _, body) =
        api.raw(Method::GET, "/api/v1/rejections?limit=many", Some(&format!("Bearer {}", api.token))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["error"].as_str().unwrap().contains("limit"), "names the parameter: {body}");

    // The public routes answer without a token (and ignore a wrong one).
    for authorization in [None, Some("Bearer wrong")] {
        let (status, content_type, body) = api.raw(Method::GET, "/healthz", authorization).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/json"));
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), serde_json::json!({ "status": "ok" }));
        let (status, _, body) = api.raw(Method::GET, "/readyz", authorization).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap(),
            serde_json::json!({ "ready": true, "broker": true, "consuming": true })
        );
        let (status, content_type, body) = api.raw(Method::GET, "/metrics", authorization).await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
        assert!(body.contains("mirsal_envelopes_received_total 0"), "{body}");
        let (status, content_type, body) = api.raw(Method::GET, "/", authorization).await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"), "{content_type}");
        assert!(body.to_lowercase().contains("<html"), "the dashboard page");
    }
    platform.cleanup().await;
}

/// The routes of `crates/router/src/http.rs` (its module doc's table), as `(method,
/// path)` with `{id}` parameters.
fn documented_routes() -> BTreeSet<(String, String)> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/router/src/http.rs"))
            .unwrap();
    source
        .lines()
        .filter_map(|line| line.strip_prefix("//! | `"))
        .filter_map(|row| row.split('`').next())
        .filter_map(|route| route.split_once(' '))
        .map(|(method, path)| (method.to_lowercase(), path.split('?').next().unwrap().to_owned()))
        .collect()
}

#[test]
fn the_openapi_file_describes_every_route_of_the_router() {
    let routes = documented_routes();
    assert_eq!(routes.len(), 17, "the route table of http.rs: {routes:?}");
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/router/src/http.rs"))
            .unwrap();
    for (method, path) in &routes {
        assert!(
            source.contains(&format!("\"{path}\"")),
            "{method} {path} is in the module doc but not registered in routes()"
        );
    }
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/router-openapi.yaml")).unwrap();
    let mut described = BTreeSet::new();
    let mut in_paths = false;
    let mut path = None;
    for line in spec.lines() {
        if line == "paths:" {
            in_paths = true;
        } else if !line.starts_with(' ') && !line.is_empty() {
            in_paths = false;
        } else if in_paths && line.starts_with("  /") && line.ends_with(':') && !line.starts_with("   ") {
            path = Some(line.trim().trim_end_matches(':').to_owned());
        } else if in_paths && let Some(path) = &path {
            for method in ["get", "post", "put", "delete", "patch"] {
                if line == format!("    {method}:") {
                    described.insert((method.to_owned(), path.clone()));
                }
            }
        }
    }
    assert_eq!(described, routes, "docs/router-openapi.yaml and the routes of http.rs differ");
}

/// Every dead letter the router listed is found by the calls that follow, however many
/// and however quickly they come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_dead_letter_is_found_by_the_next_call() {
    let mut platform = Platform::new(&["A"]).await;
    platform.start_router().await;
    let api = Api::new(&platform);
    for i in 0..3 {
        platform.agency("A").submit(Bytes::from(format!("not an envelope {i}"))).await;
    }
    let kept = listed(&api, 3).await;
    let mut misses = Vec::new();
    for round in 0..20 {
        let listed_now = api.dead_letters().await.len();
        for dead in &kept {
            let id = dead["id"].as_str().unwrap();
            let (status, body) = api.call(Method::GET, &format!("/api/v1/dead-letters/{id}")).await;
            if status != StatusCode::OK {
                misses.push(format!("round {round} (listed {listed_now}): {status} {body}"));
            }
        }
    }
    assert!(
        misses.is_empty(),
        "{} of 60 look-ups missed a dead letter that is there: {misses:#?}",
        misses.len()
    );
    platform.cleanup().await;
}
