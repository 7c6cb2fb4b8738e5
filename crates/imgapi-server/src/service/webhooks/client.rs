//! The signed POST of one webhook delivery, under the `[remote]` address
//! policy: the URL is checked before every request (an IP literal), and
//! every address a name resolves to is checked at connect time (DNS may
//! have changed since the endpoint was added). Redirects are not followed:
//! a 3xx answer is a failure, as any other non-2xx.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use imgapi_domain::redact::redact_text;
use reqwest::{redirect, Url};
use sha2::Sha256;

use crate::config::Config;
use crate::service::import::fetch::FetchError;
use crate::service::import::fetch::{client_builder, read_limited, request_error, tls_config};
use crate::service::import::policy::{CheckedResolver, Policy};

/// The signature header: `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-imgapi-signature";
/// The event type (`image.created`, …, `webhook.test`).
pub const EVENT_HEADER: &str = "x-imgapi-event";
/// `<webhook id>:<seq>`: the same on every attempt of one event.
pub const DELIVERY_HEADER: &str = "x-imgapi-delivery";

/// Bytes of a failed answer's body kept in `last_error`.
const ERROR_SNIPPET: usize = 200;

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a delivery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// What the operator reads in `last_error` (no secrets).
    pub error: String,
}

/// The HTTP client of webhook deliveries.
pub struct WebhookClient {
    client: reqwest::Client,
    policy: Arc<Policy>,
    timeout_secs: u64,
}

impl WebhookClient {
    /// A client with `[webhooks] timeout_secs` for the whole request and
    /// the `[remote]` policy. Fails only if TLS cannot be set up.
    pub fn new(config: &Config) -> Result<WebhookClient, String> {
        let policy = Arc::new(Policy::from_config(&config.remote));
        let timeout_secs = config.webhooks.timeout_secs;
        let client = client_builder(&config.remote, &config.server_name, tls_config()?)
            .redirect(redirect::Policy::none())
            .dns_resolver(CheckedResolver {
                policy: Arc::clone(&policy),
            })
            .timeout(Duration::from_secs(timeout_secs))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(WebhookClient {
            client,
            policy,
            timeout_secs,
        })
    }

    /// POST `body` to `url`, signed with `secret`: the 2xx status, or why
    /// not.
    pub async fn post(
        &self,
        url: &str,
        secret: &str,
        event: &str,
        delivery: &str,
        body: Vec<u8>,
    ) -> Result<u16, Failure> {
        let failure = |error: String| Failure {
            status: None,
            error,
        };
        let url = Url::parse(url).map_err(|e| failure(format!("invalid URL: {e}")))?;
        self.policy
            .check_url(&url)
            .map_err(|refused| failure(format!("refused by the [remote] policy: {refused}")))?;
        let signature = signature(secret, &body);
        let sent = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_HEADER, event)
            .header(DELIVERY_HEADER, delivery)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) if e.is_timeout() => {
                return Err(failure(format!(
                    "no answer within {} s ([webhooks] timeout_secs)",
                    self.timeout_secs
                )))
            }
            Err(e) => {
                let error = match request_error(e) {
                    FetchError::Refused(refused) => {
                        format!("refused by the [remote] policy: {refused}")
                    }
                    other => other.to_string(),
                };
                return Err(failure(redact_text(&error).into_owned()));
            }
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(status);
        }
        let snippet = read_limited(resp, 64 * 1024)
            .await
            .ok()
            .map(|bytes| {
                let text = String::from_utf8_lossy(&bytes);
                let line: String = text
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(ERROR_SNIPPET)
                    .collect();
                line.trim().to_owned()
            })
            .filter(|s| !s.is_empty());
        let error = match snippet {
            Some(text) => format!("HTTP {status}: {text}"),
            None => format!("HTTP {status}"),
        };
        Err(Failure {
            status: Some(status),
            error,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2.
    #[test]
    fn signature_is_hmac_sha256_hex() {
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
