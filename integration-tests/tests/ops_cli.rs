//! The operators' commands of the real `mirsal` binary against a router with real
//! traffic: `status`, `track`, `search`, `queues` and `dead-letters list | show |
//! replay | discard`, their `--json` parsed and their tables read, and the one-line
//! failures (a wrong or missing token, an unknown envelope, an unreachable router) with
//! exit code 2. `cargo build --workspace --bins` first (`scripts/test` does).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeSet, path::Path};

use bytes::Bytes;
use mirsal_envelope::{
    ReasonCode,
    pb::{self, notice::Kind},
};
use mirsal_integration_tests::{
    eventually,
    platform::{Inbox, PATIENCE, Platform, binary_path, free_port},
};
use mirsal_router::directory::AgencyStatus;
use serde_json::Value;

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `mirsal ARGS` against `url` with `token` in MIRSAL_ROUTER_TOKEN (none when `None`).
async fn mirsal_with(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(binary_path("mirsal"));
    command.args(args).env("MIRSAL_ROUTER_URL", url).env_remove("MIRSAL_ROUTER_TOKEN_FILE");
    match token {
        Some(token) => command.env("MIRSAL_ROUTER_TOKEN", token),
        None => command.env_remove("MIRSAL_ROUTER_TOKEN"),
    };
    let output = command.output().await.unwrap();
    Output {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// `mirsal ARGS` against the platform's router, which must succeed; its stdout.
async fn mirsal(platform: &Platform, args: &[&str]) -> String {
    let output = mirsal_with(&platform.http_url(), Some(&platform.http_token), args).await;
    assert_eq!(output.code, Some(0), "mirsal {args:?}: {}{}", output.stdout, output.stderr);
    output.stdout
}

/// `mirsal ARGS --json`, parsed.
async fn json(platform: &Platform, args: &[&str]) -> Value {
    let stdout = mirsal(platform, &[args, &["--json"]].concat()).await;
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("mirsal {args:?} --json: {e}: {stdout}"))
}

/// A failure: exit code `code` and exactly one line on stderr, which it returns.
fn one_line(output: &Output, code: i32, what: &str) -> String {
    assert_eq!(output.code, Some(code), "{what}: {}{}", output.stdout, output.stderr);
    assert_eq!(output.stderr.lines().count(), 1, "{what}: one line, got {:?}", output.stderr);
    output.stderr.clone()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

/// Waits until `mirsal dead-letters list --json` lists `count` dead letters; returns them.
async fn listed(platform: &Platform, count: usize) -> Vec<Value> {
    eventually(PATIENCE, &format!("{count} dead letters listed"), || async {
        let items = json(platform, &["dead-letters", "list"]).await["items"].as_array()?.clone();
        (items.len() == count).then_some(items)
    })
    .await
}

/// Waits until `mirsal status --json` shows agency `code` with `status`.
async fn wait_for_status(platform: &Platform, code: &str, status: &str) {
    eventually(PATIENCE, &format!("{code} {status}"), || async {
        let shown = json(platform, &["status"]).await;
        let agency = shown["agencies"]["agencies"].as_array()?.iter().find(|a| a["code"] == code)?.clone();
        (agency["status"] == status).then_some(())
    })
    .await;
}

async fn accepted(inbox: &mut Inbox, id: &str) {
    inbox
        .next_matching(&format!("the accepted notice of {id}"), |r| {
            r.notice().is_some_and(|n| n.subject_id == id && matches!(n.kind, Some(Kind::Accepted(_))))
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_commands_show_and_repair_a_running_platform() {
    let mut platform = Platform::new(&["A", "B", "S"]).await;
    platform.start_router().await;
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut b = platform.agency("B").inbox(verifier.clone());
    let mut s = platform.agency("S").inbox(verifier.clone());
    let (code_a, code_b, code_s) =
        (platform.code("A").to_owned(), platform.code("B").to_owned(), platform.code("S").to_owned());

    // L1, delivered; L2, waiting.
    let (l1, bytes) = platform.sign("A", platform.letter("A", &["B"], "ميزانية 2027"));
    platform.agency("A").submit(bytes).await;
    let letter = b.next().await;
    accepted(&mut a, &l1).await;
    let (_, receipt) =
        platform.receipt("B", &letter.verified, pb::receipt::Status::Delivered(pb::Delivered {}));
    platform.agency("B").submit(receipt).await;
    let (l2, bytes) = platform.sign("A", platform.letter("A", &["B"], "second"));
    platform.agency("A").submit(bytes).await;
    accepted(&mut a, &l2).await;

    // status
    let status = eventually(PATIENCE, "the receipt counted", || async {
        let status = json(&platform, &["status"]).await;
        (status["summary"]["receipts"] == 1).then_some(status)
    })
    .await;
    assert_eq!(status["readyz"]["ready"], true);
    assert_eq!(status["summary"]["accepted_letters"], 2);
    let codes: BTreeSet<String> = status["agencies"]["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes, [&code_a, &code_b, &code_s].into_iter().cloned().collect());
    let table = mirsal(&platform, &["status"]).await;
    assert!(table.starts_with(&format!("router {}/: ready", platform.http_url())), "{table}");
    for expected in [code_a.as_str(), code_b.as_str(), code_s.as_str(), "الجهة A", "Agency B"] {
        assert!(table.contains(expected), "no {expected:?} in mirsal status:\n{table}");
    }
    let cells = |line: &str| line.split(['│', '┆']).map(|c| c.trim().to_owned()).collect::<Vec<_>>();
    assert!(
        table
            .lines()
            .map(cells)
            .any(|row| row.contains(&"letters accepted".to_owned()) && row.contains(&"2".to_owned())),
        "no \"letters accepted: 2\" row in mirsal status:\n{table}"
    );

    // track
    let view = eventually(PATIENCE, "L1 delivered", || async {
        let view = json(&platform, &["track", &l1]).await;
        (view["tracking"][0]["status"] == "delivered").then_some(view)
    })
    .await;
    assert_eq!((view["id"].as_str(), view["sender"].as_str()), (Some(l1.as_str()), Some(code_a.as_str())));
    let timeline: Vec<&str> = view["tracking"][0]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["accepted", "queued", "delivered"]);
    let table = mirsal(&platform, &["track", &l1]).await;
    for expected in ["ميزانية 2027", "delivered", "now delivered", code_b.as_str()] {
        assert!(table.contains(expected), "no {expected:?} in mirsal track:\n{table}");
    }
    let unknown = mirsal_with(
        &platform.http_url(),
        Some(&platform.http_token),
        &["track", "01a241e4-0000-7000-8000-000000000000"],
    )
    .await;
    let line = one_line(&unknown, 2, "an unknown envelope");
    assert!(line.contains("404 Not Found") && line.contains("no envelope"), "{line}");

    // search
    let page = json(&platform, &["search", "--agency", &code_a, "--direction", "sent"]).await;
    assert_eq!(ids(&page), [l2.clone(), l1.clone()]);
    let page = json(&platform, &["search", "--agency", &code_b, "--status", "delivered"]).await;
    assert_eq!(ids(&page), [l1.as_str()]);
    let all = json(&platform, &["search", "--limit", "1", "--all"]).await;
    assert_eq!(ids(&all), [l2.clone(), l1.clone()], "--all follows next_cursor");
    assert!(all["next_cursor"].is_null());
    let first = json(&platform, &["search", "--limit", "1"]).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    assert_eq!(ids(&json(&platform, &["search", "--limit", "1", "--cursor", &cursor]).await), [l1.as_str()]);
    let table = mirsal(&platform, &["search", "--limit", "1"]).await;
    assert!(table.contains(&l2) && !table.contains(&l1), "{table}");
    assert!(table.contains(&format!("more: --cursor {cursor}")), "{table}");
    let bad =
        mirsal_with(&platform.http_url(), Some(&platform.http_token), &["search", "--cursor", "zzz"]).await;
    let line = one_line(&bad, 2, "a bad cursor");
    assert!(line.contains("400 Bad Request") && line.contains("not one this API returned"), "{line}");

    // A poisoned letter (to a suspended recipient) and some garbage, in the dead letters.
    platform.set_status("S", AgencyStatus::Suspended);
    wait_for_status(&platform, &code_s, "suspended").await;
    let (poisoned, poisoned_bytes) = platform.sign("A", platform.letter("A", &["S"], "while S is suspended"));
    platform.agency("A").submit(poisoned_bytes.clone()).await;
    let notice = a.next_matching("the rejected notice", |r| r.rejected_code().is_some()).await;
    assert_eq!(notice.rejected_code(), Some(ReasonCode::RecipientSuspended));
    platform.agency("A").submit(Bytes::from_static(b"not an envelope")).await;
    a.next_matching("the second rejected notice", |r| r.rejected_code().is_some()).await;

    // queues
    let queues = eventually(PATIENCE, "queue figures (management API)", || async {
        let queues = json(&platform, &["queues"]).await;
        // Both kept by the router, none left in the broker's queue.
        (queues["dead_letters"] == 2
            && queues["queues"]["mirsal.dead-letters"] == 0
            && queues["agencies"].as_array()?.iter().all(|a| a["inbox"]["consumers"].is_u64()))
        .then_some(queues)
    })
    .await;
    assert_eq!(queues["management"], true);
    let b_row = queues["agencies"].as_array().unwrap().iter().find(|a| a["code"] == code_b.as_str()).unwrap();
    assert_eq!(
        (b_row["undelivered"].as_u64(), b_row["inbox"]["consumers"].as_u64()),
        (Some(1), Some(1)),
        "{b_row}"
    );
    let table = mirsal(&platform, &["queues"]).await;
    for expected in [
        "mirsal.dead-letters",
        "mirsal.ingress",
        &format!("mirsal.inbox.{code_b}"),
        "OLDEST PENDING",
        "2 dead letter(s) kept by the router",
    ] {
        assert!(table.contains(expected), "no {expected:?} in mirsal queues:\n{table}");
    }

    // dead-letters list and show
    let items = listed(&platform, 2).await;
    let dead =
        items.iter().find(|d| d["message_id"] == poisoned.as_str()).expect("the poisoned letter").clone();
    let garbage = items.iter().find(|d| d["message_id"] != poisoned.as_str()).unwrap().clone();
    let (dead_id, garbage_id) =
        (dead["id"].as_str().unwrap().to_owned(), garbage["id"].as_str().unwrap().to_owned());
    assert_eq!(dead["reason_code"], ReasonCode::RecipientSuspended as i32);
    assert_eq!(garbage["reason_code"], ReasonCode::MalformedEnvelope as i32);
    let table = mirsal(&platform, &["dead-letters", "list"]).await;
    assert!(
        table.contains(&dead_id) && table.contains(&garbage_id) && table.contains("2 dead letter(s)"),
        "{table}"
    );
    let shown = json(&platform, &["dead-letters", "show", &dead_id]).await;
    assert_eq!(shown["envelope"]["content"]["header"]["envelopeId"], poisoned.as_str());
    let table = mirsal(&platform, &["dead-letters", "show", &dead_id]).await;
    assert!(table.contains("deaths") && table.contains("first died"), "{table}");

    // Replayed before the fix: refused again, exit 1, and still there.
    let again = mirsal_with(
        &platform.http_url(),
        Some(&platform.http_token),
        &["dead-letters", "replay", &dead_id, "--json"],
    )
    .await;
    let line = one_line(&again, 1, "a replay refused again");
    assert!(line.contains("refused") && line.contains("[reason 403]"), "{line}");
    let outcome: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(outcome["outcome"], "refused");

    // Fixed: replayed, delivered once.
    platform.set_status("S", AgencyStatus::Active);
    wait_for_status(&platform, &code_s, "active").await;
    let outcome = json(&platform, &["dead-letters", "replay", &dead_id]).await;
    assert_eq!(
        (outcome["id"].as_str(), outcome["outcome"].as_str()),
        (Some(dead_id.as_str()), Some("accepted"))
    );
    let arrived = s.next().await;
    assert_eq!((arrived.message_id.as_deref(), arrived.bytes), (Some(poisoned.as_str()), poisoned_bytes));
    let (marker, bytes) = platform.sign("A", platform.letter("A", &["S"], "marker"));
    platform.agency("A").submit(bytes).await;
    assert_eq!(s.next().await.message_id.as_deref(), Some(marker.as_str()), "the replayed letter came twice");

    // discard
    listed(&platform, 1).await;
    let discarded = json(&platform, &["dead-letters", "discard", &garbage_id]).await;
    assert_eq!(discarded["id"], garbage_id.as_str());
    assert_eq!(mirsal(&platform, &["dead-letters", "list"]).await.trim(), "no dead letters");

    // replay --all, at a bounded rate
    platform.set_status("S", AgencyStatus::Suspended);
    wait_for_status(&platform, &code_s, "suspended").await;
    let (later, bytes) = platform.sign("A", platform.letter("A", &["S"], "suspended again"));
    platform.agency("A").submit(bytes).await;
    a.next_matching("the third rejected notice", |r| r.rejected_code().is_some()).await;
    platform.set_status("S", AgencyStatus::Active);
    wait_for_status(&platform, &code_s, "active").await;
    listed(&platform, 1).await;
    let table = mirsal(&platform, &["dead-letters", "replay", "--all", "--per-second", "5"]).await;
    assert!(
        table.contains("accepted") && table.contains("1 of 1 replayed dead letter(s) delivered"),
        "{table}"
    );
    assert_eq!(s.next().await.message_id.as_deref(), Some(later.as_str()));
    listed(&platform, 0).await;

    // Failures: one line, exit code 2.
    let wrong = mirsal_with(&platform.http_url(), Some("not-the-token"), &["status"]).await;
    let line = one_line(&wrong, 2, "a wrong token");
    assert!(line.contains("401") && line.contains("MIRSAL_ROUTER_TOKEN is wrong"), "{line}");
    let missing = mirsal_with(&platform.http_url(), None, &["queues"]).await;
    let line = one_line(&missing, 2, "no token");
    assert!(line.contains("401") && line.contains("no bearer token given"), "{line}");
    let nowhere = format!("http://{}", free_port());
    let unreachable = mirsal_with(&nowhere, Some(&platform.http_token), &["dead-letters", "list"]).await;
    let line = one_line(&unreachable, 2, "an unreachable router");
    assert!(line.contains(&format!("cannot reach the router at {nowhere}/")), "{line}");

    // The token from a file, as the router's own http.token_file.
    let token_file = platform.root().join("router.token");
    assert!(Path::new(&token_file).is_file());
    let from_file = mirsal_with(
        &platform.http_url(),
        None,
        &["search", "--thread", &l1, "--json", "--token-file", token_file.to_str().unwrap()],
    )
    .await;
    assert_eq!(from_file.code, Some(0), "{}", from_file.stderr);
    assert_eq!(ids(&serde_json::from_str(&from_file.stdout).unwrap()), [l1.as_str()]);

    platform.cleanup().await;
}
