//! Pushing incoming items to the agency system: each pending item, oldest first, is
//! POSTed as JSON (the same [`Item`](crate::Item) the HTTP bridge returns) to the
//! configured URL; a 2xx answer acknowledges it (and, for a letter, sends its
//! `delivered` receipt). Anything else is retried with exponential backoff up to
//! `max_backoff`, so an agency system that is down gets everything once it is back.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{Adapter, config::WebhookConfig};

/// Runs until `shutdown` is cancelled.
pub async fn push(adapter: Adapter, config: WebhookConfig, shutdown: CancellationToken) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(30)).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; not pushing");
            return;
        }
    };
    let mut delay = Duration::from_millis(500);
    loop {
        let next = match adapter.pending_items(1) {
            Ok(mut items) => items.pop(),
            Err(error) => {
                tracing::error!(%error, "cannot read pending items");
                None
            }
        };
        let Some(item) = next else {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                () = shutdown.cancelled() => return,
            }
        };
        let mut request = client.post(&config.url).json(&item);
        if let Some(token) = &config.token {
            request = request.bearer_auth(token);
        }
        let pushed = match request.send().await {
            Ok(response) if response.status().is_success() => true,
            Ok(response) => {
                tracing::warn!(status = %response.status(), item = %item.id, "the webhook refused the item");
                false
            }
            Err(error) => {
                tracing::warn!(%error, item = %item.id, "the webhook is unreachable");
                false
            }
        };
        if pushed {
            delay = Duration::from_millis(500);
            crate::crash::point(crate::crash::HANDED_NOT_ACKED);
            if let Err(error) = adapter.ack(&item.id).await {
                tracing::error!(%error, item = %item.id, "pushed but cannot acknowledge");
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(config.max_backoff);
    }
}
