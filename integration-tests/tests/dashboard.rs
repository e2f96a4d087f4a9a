//! The operators' dashboard (`GET /`, `crates/router/src/dashboard.html`) in a real
//! headless Chromium, driven over CDP, against a router carrying traffic. The page asks
//! for the token (and again after a 401); lists every agency with its Arabic name laid
//! out right to left; finds letters by agency, a sealed one's subject withheld; shows a
//! letter's per-recipient timeline after its id is typed into the lookup; charts the
//! traffic; lists the rejection (code 403) and the overdue report; replays a dead letter
//! whose cause was fixed, which then reaches its recipient exactly once; discards another
//! once the operator confirms; and says so when the router stops answering. It leaves a
//! screenshot in `target/dashboard.png` (or under CARGO_TARGET_DIR).
//!
//! Needs Debian's Chromium at `/usr/bin/chromium` (`bash deploy/dev/chromium.sh`, which
//! `scripts/test` runs); it never downloads a browser.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use chromiumoxide::{Browser, BrowserConfig, Page, handler::viewport::Viewport, page::ScreenshotParams};
use futures_util::StreamExt as _;
use mirsal_envelope::{
    Draft, HeaderDraft, Policy, ReasonCode, TrustStore, pb, pb::receipt::Status as ReceiptStatus,
};
use mirsal_integration_tests::platform::{PATIENCE, Platform, letters, submit_all};
use mirsal_router::directory::AgencyStatus;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Debian's Chromium (package `chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";
/// How often the DOM is asked again while a condition does not hold yet.
const DOM_POLL: Duration = Duration::from_millis(100);
const WIDTH: u32 = 1440;
const HEIGHT: u32 = 1000;

/// Fails at once, before any set-up, where the browser is missing.
///
/// # Panics
/// When `/usr/bin/chromium` is missing, saying how to install it.
fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: the dashboard test drives Debian's Chromium. Install it with \
         `bash deploy/dev/chromium.sh` (apt-get install chromium; scripts/test runs it)."
    );
}

/// A headless Chromium with a fresh profile, and the task that pumps its CDP events.
struct Chromium {
    browser: Browser,
    events: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts Chromium with the flags that work on the development machines as root.
    ///
    /// # Panics
    /// When `/usr/bin/chromium` is missing (saying how to install it) or does not start.
    async fn launch() -> Self {
        require_chromium();
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            // Only the flags below (plus --headless, --no-sandbox and the profile), not
            // chromiumoxide's defaults, which are tuned for another setting.
            .disable_default_args()
            .no_sandbox()
            .user_data_dir(profile.path())
            .window_size(WIDTH, HEIGHT)
            .viewport(Viewport {
                width: WIDTH,
                height: HEIGHT,
                device_scale_factor: Some(1.0),
                emulating_mobile: false,
                is_landscape: true,
                has_touch: false,
            })
            .args([
                "disable-gpu",
                "disable-quic",
                "no-first-run",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
                "disable-dev-shm-usage",
                "lang=en-US",
            ])
            .launch_timeout(PATIENCE)
            .request_timeout(PATIENCE)
            .build()
            .unwrap_or_else(|error| panic!("configuring Chromium: {error}"));
        let (browser, mut handler) = Browser::launch(config)
            .await
            .unwrap_or_else(|error| panic!("starting {CHROMIUM} headless: {error}"));
        // The handler must be polled for anything to happen. Events this version of the
        // protocol does not know come back as errors: skip them, stop only at the end.
        let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Self { browser, events, _profile: profile }
    }

    async fn open(&self, url: &str) -> Page {
        self.browser.new_page(url).await.unwrap_or_else(|error| panic!("opening {url}: {error}"))
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.events.abort();
    }
}

/// Evaluates `expression` in the page and deserializes its value.
async fn eval<T: DeserializeOwned>(page: &Page, expression: &str) -> Result<T, String> {
    let result = page.evaluate_expression(expression).await.map_err(|e| e.to_string())?;
    // CDP leaves `value` out for `null`.
    let value = result.value().cloned().unwrap_or(Value::Null);
    serde_json::from_value(value.clone()).map_err(|e| format!("{e} in {value}"))
}

/// Polls `expression` (which yields `null` until the condition holds) until it yields a
/// value, and returns it.
///
/// # Panics
/// After [`PATIENCE`], naming `what`, with the last answer and the page's status line.
async fn until<T: DeserializeOwned>(page: &Page, what: &str, expression: &str) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let last = match eval::<Option<T>>(page, expression).await {
            Ok(Some(value)) => return value,
            Ok(None) => "null".to_owned(),
            Err(error) => error,
        };
        if tokio::time::Instant::now() >= deadline {
            let status = eval::<String>(page, "document.querySelector('#status').textContent")
                .await
                .unwrap_or_else(|e| format!("(unreadable: {e})"));
            panic!(
                "timed out after {PATIENCE:?} waiting for {what}; last answer: {last}; status line: {status}"
            );
        }
        tokio::time::sleep(DOM_POLL).await;
    }
}

/// Clicks the element at `selector` (as a user would: mouse events at its centre).
async fn click(page: &Page, selector: &str) {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("no {selector} to click: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
}

/// Clicks into the input at `selector`, clears it and types `text`.
async fn type_into(page: &Page, selector: &str, text: &str) {
    let input = page.find_element(selector).await.unwrap_or_else(|e| panic!("no {selector}: {e}"));
    input.click().await.unwrap_or_else(|e| panic!("focusing {selector}: {e}"));
    eval::<Value>(page, &format!("document.querySelector({selector:?}).value = ''; null")).await.unwrap();
    input.type_str(text).await.unwrap_or_else(|e| panic!("typing into {selector}: {e}"));
}

/// The agency row of `code` in the page, once it shows `status` (the router has
/// reloaded its directory and the page has polled since).
async fn wait_for_status(page: &Page, code: &str, status: &str) {
    until::<bool>(
        page,
        &format!("{code} shown as {status}"),
        &format!(
            "document.querySelector('#agencies tbody tr[data-code=\"{code}\"][data-status=\"{status}\"]') ? true : null"
        ),
    )
    .await;
}

/// The dead letter's id as the router names it: the first 16 hex digits of the SHA-256
/// of the message body (`crates/router/src/deadletters.rs`).
fn dead_letter_id(body: &[u8]) -> String {
    mirsal_envelope::sha256(body)[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// `target/dashboard.png`: CARGO_TARGET_DIR when set, else the workspace's `target`.
fn screenshot_path() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    std::fs::create_dir_all(&target).unwrap();
    target.join("dashboard.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_platform_and_replays_a_fixed_dead_letter() {
    require_chromium(); // before any broker set-up
    let mut platform = Platform::new(&["A", "B", "C", "S"]).await;
    // Immediate letters are overdue after a second, so the overdue report shows up.
    platform.config_overrides.insert(
        "overdue",
        vec!["delivery_sla = { normal = \"24h\", urgent = \"4h\", immediate = \"1s\" }".into()],
    );
    platform.start_router().await;
    let verifier = platform.verifier();
    let mut a = platform.agency("A").inbox(verifier.clone());
    let mut b = platform.agency("B").inbox(verifier.clone());
    let mut c = platform.agency("C").inbox(verifier.clone());
    let mut s = platform.agency("S").inbox(verifier.clone());
    let code = |name: &str| platform.code(name).to_owned();

    // Traffic before the page opens: a letter to B and C that B acknowledges, an
    // immediate letter C never acknowledges, and a sealed letter to B.
    let subject = "ميزانية 2027";
    let (letter_id, bytes) = platform.sign("A", platform.letter("A", &["B", "C"], subject));
    platform.agency("A").submit(bytes).await;
    let to_b = b.next().await;
    assert_eq!(to_b.message_id.as_deref(), Some(letter_id.as_str()));
    let (_, delivered) = platform.receipt("B", &to_b.verified, ReceiptStatus::Delivered(pb::Delivered {}));
    platform.agency("B").submit(delivered).await;
    assert_eq!(c.next().await.message_id.as_deref(), Some(letter_id.as_str()));
    let mut urgent = platform.letter("A", &["C"], "عاجل: اجتماع اللجنة");
    urgent.header_mut().priority = pb::Priority::Immediate;
    let (urgent_id, bytes) = platform.sign("A", urgent);
    platform.agency("A").submit(bytes).await;
    assert_eq!(c.next().await.message_id.as_deref(), Some(urgent_id.as_str()));
    let ca = platform.authority.certificate().to_pem().unwrap();
    let crl = std::fs::read(platform.pki_dir().join("crl.pem")).unwrap();
    let trust = TrustStore::from_pem(&ca, &[&crl]).unwrap();
    let mut secret = platform.letter("A", &["B"], "سري للغاية");
    secret.header_mut().classification = pb::Classification::Confidential;
    let sealed = secret
        .build_sealed(
            &Policy::default(),
            chrono::Utc::now(),
            &[platform.agency("B").credentials.sealing.certificate.clone()],
            &trust,
        )
        .unwrap();
    let (sealed_id, bytes) = platform.sign_content("A", &sealed);
    platform.agency("A").submit(bytes).await;
    assert_eq!(b.next().await.message_id.as_deref(), Some(sealed_id.as_str()));

    let chromium = Chromium::launch().await;
    let page = chromium.open(&format!("{}/", platform.http_url())).await;

    // The token: a wrong one is refused (401) and asked for again; the right one opens it.
    until::<bool>(&page, "the token prompt", "document.querySelector('#login').hidden ? null : true").await;
    type_into(&page, "#token-input", "not-the-token").await;
    click(&page, "#token-button").await;
    let refused: String = until(
        &page,
        "the token prompt again after a 401",
        "(() => { const m = document.querySelector('#token-message').textContent; \
          return !document.querySelector('#login').hidden && m.includes('401') ? m : null; })()",
    )
    .await;
    assert!(refused.contains("401"), "{refused}");
    type_into(&page, "#token-input", &platform.http_token).await;
    click(&page, "#token-button").await;

    // (a) Every agency, with its Arabic name laid out right to left.
    let rows: Vec<Value> = until(
        &page,
        "a row per agency",
        "(() => { const rows = [...document.querySelectorAll('#agencies tbody tr[data-code]')]; \
          if (rows.length < 4) return null; \
          return rows.map(r => { const ar = r.querySelector('td.name-ar'); return { \
            code: r.dataset.code, health: r.dataset.health, \
            en: r.querySelector('td.name-en').textContent, ar: ar.textContent, \
            lang: ar.getAttribute('lang'), direction: getComputedStyle(ar).direction }; }); })()",
    )
    .await;
    for name in ["A", "B", "C", "S"] {
        let row = rows
            .iter()
            .find(|r| r["code"] == code(name).as_str())
            .unwrap_or_else(|| panic!("no row for agency {name} in {rows:?}"));
        assert_eq!(row["en"], format!("Agency {name}").as_str(), "{row}");
        assert_eq!(row["ar"], format!("الجهة {name}").as_str(), "{row}");
        assert_eq!(row["lang"], "ar", "{row}");
        assert_eq!(row["direction"], "rtl", "the Arabic name of {name} is laid out right to left: {row}");
    }

    // (f) The search: what B received, the sealed letter's subject withheld; a result
    // opens in the lookup.
    let b_code = code("B");
    type_into(&page, "#search-agency", &b_code).await;
    eval::<Value>(&page, "document.querySelector('#search-direction').value = 'received'; null")
        .await
        .unwrap();
    click(&page, "#search-button").await;
    let found: Vec<Value> = until(
        &page,
        "B's letters in the search results",
        &format!(
            "(() => {{ const rows = [...document.querySelectorAll('#search-results tbody tr[data-id]')]; \
               if (!rows.some(r => r.dataset.id === '{sealed_id}')) return null; \
               return rows.map(r => ({{ id: r.dataset.id, subject: r.querySelector('td.subject').textContent }})); }})()"
        ),
    )
    .await;
    let subject_of = |id: &str| {
        found
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["subject"].clone())
            .unwrap_or_else(|| panic!("{id} not in {found:?}"))
    };
    assert_eq!(subject_of(&sealed_id), "sealed", "the router cannot read a sealed letter's subject");
    assert_eq!(subject_of(&letter_id), subject);
    click(&page, &format!("#search-results tbody tr[data-id=\"{sealed_id}\"] a.lookup")).await;
    let shown: Value = until(
        &page,
        "the sealed letter in the lookup",
        &format!(
            "(() => {{ const f = n => document.querySelector(`#envelope-header dd[data-field=\"${{n}}\"]`); \
               return f('id') && f('id').textContent === '{sealed_id}' ? \
                 {{ subject: f('subject').textContent, classification: f('classification').textContent }} : null; }})()"
        ),
    )
    .await;
    assert_eq!(shown["subject"], "sealed", "{shown}");
    assert_eq!(shown["classification"], "confidential", "{shown}");

    // (f) The lookup: an unknown id says so; a real one shows the letter's header and,
    // per recipient, its timeline.
    type_into(&page, "#lookup-input", "01900000-0000-7000-8000-000000000000").await;
    click(&page, "#lookup-button").await;
    until::<bool>(
        &page,
        "the lookup to say the id is unknown",
        "document.querySelector('#lookup-message').textContent.startsWith('No envelope') \
         && document.querySelector('#envelope').hidden ? true : null",
    )
    .await;
    type_into(&page, "#lookup-input", &letter_id).await;
    click(&page, "#lookup-button").await;
    let timeline: Vec<String> = until(
        &page,
        "B's timeline with accepted, queued, delivered",
        &format!(
            "(() => {{ const id = document.querySelector('#envelope-header dd[data-field=\"id\"]'); \
               if (!id || id.textContent !== '{letter_id}') return null; \
               const steps = [...document.querySelectorAll('#timeline section.recipient[data-agency=\"{b_code}\"] li[data-status]')] \
               .map(li => li.dataset.status); return steps.includes('delivered') ? steps : null; }})()"
        ),
    )
    .await;
    assert_eq!(timeline, ["accepted", "queued", "delivered"]);
    let c_code = code("C");
    let c_timeline: Vec<String> = eval(
        &page,
        &format!(
            "[...document.querySelectorAll('#timeline section.recipient[data-agency=\"{c_code}\"] li[data-status]')].map(li => li.dataset.status)"
        ),
    )
    .await
    .unwrap();
    assert_eq!(c_timeline, ["accepted", "queued"], "C never sent its receipt");
    let header: Value = eval(
        &page,
        "(() => { const f = n => document.querySelector(`#envelope-header dd[data-field=\"${n}\"]`); \
          return { sender: f('sender').textContent, subject: f('subject').textContent, \
                   subject_dir: f('subject').querySelector('[dir]').getAttribute('dir'), \
                   recipients: f('recipients').textContent, priority: f('priority').textContent }; })()",
    )
    .await
    .unwrap();
    assert_eq!(header["sender"], code("A").as_str(), "{header}");
    assert_eq!(header["subject"], subject, "{header}");
    assert_eq!(header["subject_dir"], "auto", "{header}");
    assert!(header["recipients"].as_str().unwrap().contains(&b_code), "{header}");

    // (b) Throughput: three bursts, each after the page took another summary sample.
    for burst in 0..3 {
        let seen: u64 =
            eval(&page, "Number(document.querySelector('#throughput-chart').dataset.samples)").await.unwrap();
        until::<bool>(
            &page,
            "another throughput sample",
            &format!(
                "Number(document.querySelector('#throughput-chart').dataset.samples) > {seen} ? true : null"
            ),
        )
        .await;
        let batch = letters(&platform, "A", "B", 10 + 5 * burst);
        submit_all(platform.agency("A"), &batch, PATIENCE).await;
        for _ in 0..batch.len() {
            b.next().await;
        }
    }
    let accepted: u64 = until(
        &page,
        "the accepted figure to count every letter",
        "(() => { const n = Number(document.querySelector('#figure-accepted').textContent); return n >= 47 ? n : null; })()",
    )
    .await;
    assert!(accepted >= 47);
    until::<bool>(
        &page,
        "a throughput line and a latency line",
        "document.querySelector('#throughput-chart polyline') && document.querySelector('#latency-chart polyline') ? true : null",
    )
    .await;

    // (d) The immediate letter C never acknowledged is reported overdue.
    until::<bool>(
        &page,
        "the overdue report of the immediate letter",
        &format!("document.querySelector('#overdue tbody a.lookup[data-id=\"{urgent_id}\"]') ? true : null"),
    )
    .await;
    until::<bool>(
        &page,
        "C's row coloured overdue",
        &format!("document.querySelector('#agencies tbody tr[data-code=\"{c_code}\"][data-health=\"overdue\"]') ? true : null"),
    )
    .await;

    // (c, e) A letter to a suspended agency is refused and dead-lettered…
    let s_code = code("S");
    platform.set_status("S", AgencyStatus::Suspended);
    wait_for_status(&page, &s_code, "suspended").await;
    let (poisoned_id, poisoned) = platform.sign("A", platform.letter("A", &["S"], "إلى جهة موقوفة"));
    platform.agency("A").submit(poisoned.clone()).await;
    let rejected = a
        .next_matching("A's rejected notice", |r| {
            r.rejected_code().is_some() && r.notice().is_some_and(|n| n.subject_id == poisoned_id)
        })
        .await;
    assert_eq!(rejected.rejected_code(), Some(ReasonCode::RecipientSuspended));
    until::<bool>(
        &page,
        "the rejection with code 403",
        &format!(
            "(() => {{ const link = document.querySelector('#rejections tbody a.lookup[data-id=\"{poisoned_id}\"]'); \
               return link && link.closest('tr').querySelector('.reason-code').textContent === '403' ? true : null; }})()"
        ),
    )
    .await;
    let dead_id = dead_letter_id(&poisoned);
    let row = format!("#dead-letters tbody tr[data-id=\"{dead_id}\"]");
    until::<bool>(&page, "the dead letter", &format!("document.querySelector('{row}') ? true : null")).await;

    // …the cause is fixed, and Replay in the page delivers it.
    platform.set_status("S", AgencyStatus::Active);
    wait_for_status(&page, &s_code, "active").await;
    click(&page, &format!("{row} button.replay")).await;
    let outcome: String = until(
        &page,
        "the replay's outcome",
        &format!(
            "(() => {{ const o = document.querySelector('#dead-letter-outcome'); \
               return o.dataset.id === '{dead_id}' && o.dataset.outcome !== undefined ? o.dataset.outcome + ': ' + o.textContent : null; }})()"
        ),
    )
    .await;
    assert!(outcome.starts_with("accepted:"), "the replay was not accepted: {outcome}");
    until::<bool>(
        &page,
        "the dead-letter row to go",
        &format!("document.querySelector('#dead-letters tbody').dataset.key && !document.querySelector('{row}') ? true : null"),
    )
    .await;

    // Exactly once: the replayed letter, then the marker sent after it, nothing between.
    let replayed = s.next().await;
    assert_eq!(replayed.message_id.as_deref(), Some(poisoned_id.as_str()));
    assert_eq!(replayed.bytes, poisoned, "S gets the bytes A signed");
    let (marker_id, marker) = platform.sign("A", platform.letter("A", &["S"], "marker"));
    platform.agency("A").submit(marker).await;
    assert_eq!(
        s.next().await.message_id.as_deref(),
        Some(marker_id.as_str()),
        "the replayed letter arrived more than once"
    );

    // Discard, once the operator confirms: a letter to an agency that does not exist.
    let ghost = Draft::letter(
        HeaderDraft::new(code("A")).action("TGHOST-NOBODY"),
        pb::Letter {
            subject: "لا أحد".into(), body: "…".into(), language: "ar".into(), ..Default::default()
        },
    );
    let (ghost_id, ghost) = platform.sign("A", ghost);
    platform.agency("A").submit(ghost.clone()).await;
    let refused = a
        .next_matching("A's second rejected notice", |r| r.notice().is_some_and(|n| n.subject_id == ghost_id))
        .await;
    assert_eq!(refused.rejected_code(), Some(ReasonCode::UnknownRecipient));
    let ghost_row = format!("#dead-letters tbody tr[data-id=\"{}\"]", dead_letter_id(&ghost));
    until::<bool>(
        &page,
        "the second dead letter",
        &format!("document.querySelector('{ghost_row}') ? true : null"),
    )
    .await;
    // What the operator answers to the page's confirm().
    eval::<Value>(&page, "window.confirm = () => true; null").await.unwrap();
    click(&page, &format!("{ghost_row} button.discard")).await;
    until::<bool>(
        &page,
        "the discarded row to go",
        &format!(
            "document.querySelector('#dead-letter-outcome').dataset.outcome === 'discarded' \
             && !document.querySelector('{ghost_row}') ? true : null"
        ),
    )
    .await;

    // The screenshot, with the lookup still showing the first letter.
    until::<bool>(
        &page,
        "queue figures from the management API",
        &format!(
            "(() => {{ const c = document.querySelector('#agencies tbody tr[data-code=\"{b_code}\"] td.consumers'); \
               return c && c.textContent !== '—' ? true : null; }})()"
        ),
    )
    .await;
    eval::<Value>(&page, "window.scrollTo(0, 0); null").await.unwrap();
    let path = screenshot_path();
    page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
        .await
        .unwrap_or_else(|e| panic!("saving {}: {e}", path.display()));
    eprintln!("dashboard screenshot: {}", path.display());

    // A router that stopped answering is said so in the status line.
    platform.stop_router().await;
    let status: String = until(
        &page,
        "the status line to report the router gone",
        "(() => { const s = document.querySelector('#status'); \
          return s.classList.contains('error') && s.textContent.includes('did not answer') ? s.textContent : null; })()",
    )
    .await;
    assert!(status.contains("summary"), "{status}");

    chromium.close().await;
    platform.cleanup().await;
}
