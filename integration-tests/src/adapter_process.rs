//! The real `mirsal-adapter` binary run from a [`Bundle`], and its local HTTP bridge
//! spoken to over HTTP only, as an agency system in any language would.
//!
//! The binary must have been built (`cargo build --workspace --bins`; `scripts/test`
//! does it first). The process is killed if the [`AdapterProcess`] is dropped.

use mirsal_adapter::crash;
use reqwest::RequestBuilder;
use serde_json::{Value, json};

use crate::{
    eventually,
    platform::{Bundle, PATIENCE, binary_path},
};

/// A running `mirsal-adapter` process and how to talk to it.
#[derive(Debug)]
pub struct AdapterProcess {
    child: tokio::process::Child,
    bundle: Bundle,
    http: reqwest::Client,
}

impl AdapterProcess {
    /// Starts the binary on `bundle` (aborting at `crash_at`, one of the
    /// [`crash`] points, when given) and waits until its bridge answers and it is
    /// connected to the broker.
    ///
    /// # Panics
    /// When the binary is not built, or is not up and connected within [`PATIENCE`].
    pub async fn start(bundle: &Bundle, crash_at: Option<&str>) -> Self {
        let mut command = tokio::process::Command::new(binary_path("mirsal-adapter"));
        command.arg("--config").arg(&bundle.config_path).kill_on_drop(true);
        match crash_at {
            Some(point) => command.env(crash::CRASH_AT, point),
            None => command.env_remove(crash::CRASH_AT),
        };
        let process =
            Self { child: command.spawn().unwrap(), bundle: bundle.clone(), http: reqwest::Client::new() };
        eventually(PATIENCE, "the adapter to be up and connected", || async {
            let health = process.health().await?;
            (health["connected"] == true).then_some(())
        })
        .await;
        process
    }

    /// The bundle it runs from.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The bridge's URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.bundle.url())
    }

    /// A plain HTTP client, for requests that must not carry the token.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET path` with the bundle's bearer token.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.bundle.token)
    }

    /// `POST path` with the bundle's bearer token.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.bundle.token)
    }

    /// `GET /healthz` (no token), `None` while the bridge does not answer.
    pub async fn health(&self) -> Option<Value> {
        self.http.get(self.url("/healthz")).send().await.ok()?.json().await.ok()
    }

    /// Sends a plain letter to agency `to` under idempotency key `key`; returns its
    /// envelope id.
    ///
    /// # Errors
    /// The bridge is unreachable or refuses.
    pub async fn send(&self, to: &str, key: &str) -> Result<String, reqwest::Error> {
        let body = json!({ "to": [to], "idempotency_key": key, "letter": { "subject": format!("letter {key}"), "body": "…" } });
        let response = self.post("/v1/letters").json(&body).send().await?;
        let answer: Value = response.error_for_status()?.json().await?;
        Ok(answer["envelope_id"].as_str().unwrap().to_owned())
    }

    /// `GET /v1/inbox`: the items not yet acknowledged, oldest first.
    ///
    /// # Panics
    /// When the bridge does not answer 200.
    pub async fn pending(&self) -> Vec<Value> {
        let answer: Value =
            self.get("/v1/inbox").send().await.unwrap().error_for_status().unwrap().json().await.unwrap();
        answer["items"].as_array().unwrap().clone()
    }

    /// Pending items of `kind`, waiting until there are `count`.
    ///
    /// # Panics
    /// When there are not `count` within [`PATIENCE`].
    pub async fn pending_of(&self, kind: &str, count: usize) -> Vec<Value> {
        eventually(PATIENCE, &format!("{count} {kind} item(s) pending"), || async {
            let items: Vec<Value> = self.pending().await.into_iter().filter(|i| i["kind"] == kind).collect();
            (items.len() >= count).then_some(items)
        })
        .await
    }

    /// `POST /v1/inbox/{id}/ack`.
    ///
    /// # Errors
    /// The bridge is unreachable or refuses.
    pub async fn ack(&self, id: &str) -> Result<(), reqwest::Error> {
        self.post(&format!("/v1/inbox/{id}/ack")).send().await?.error_for_status().map(|_| ())
    }

    /// `GET /v1/letters/{id}`, `None` unless it answers 200.
    pub async fn tracking(&self, id: &str) -> Option<Value> {
        let response = self.get(&format!("/v1/letters/{id}")).send().await.ok()?;
        response.error_for_status().ok()?.json().await.ok()
    }

    /// Waits for the process to die at its crash point.
    ///
    /// # Panics
    /// When it does not die within [`PATIENCE`], or exits successfully.
    pub async fn crashed(mut self) {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the crash point was reached")
            .unwrap();
        assert!(!status.success(), "the adapter aborted at its crash point: {status}");
    }

    /// Stops the process with SIGTERM and checks that it exits cleanly.
    ///
    /// # Panics
    /// When it does not exit within [`PATIENCE`], or not successfully.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await.unwrap().unwrap();
        assert!(status.success(), "the adapter stops cleanly on SIGTERM: {status}");
    }
}
