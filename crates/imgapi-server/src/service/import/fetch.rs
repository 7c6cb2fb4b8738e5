//! Outbound HTTP: a fetcher that refuses what the `[remote]` policy
//! ([`super::policy`]) does not allow, with timeouts for connecting and
//! for a transfer that receives nothing.
//!
//! URLs of configured `[datacenters]` are operator configuration: they go
//! through a second client with the same timeouts but no address policy.
//!
//! TLS is rustls with the `ring` provider, as the server's own listener,
//! and the operating system's trust roots (rustls-platform-verifier).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use imgapi_blob::{error_chain_deduped, ByteStream};
use reqwest::{redirect, Url};
use serde_json::{Map, Value};

use super::policy::{host_of, CheckedResolver, Policy, Refused};
use crate::config::RemoteConfig;

/// Largest remote JSON document read (a manifest; an error body).
const MAX_REMOTE_JSON: usize = 4 * 1024 * 1024;

/// What a fetch can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The `[remote]` policy refused the URL, an address or a redirect.
    #[error("{0}")]
    Refused(Refused),
    /// The remote answered with a non-2xx status.
    #[error("{}", .message.clone().unwrap_or_else(|| format!("HTTP {status}")))]
    Status {
        status: u16,
        /// `code` of a restify/IMGAPI error body, when there is one.
        code: Option<String>,
        /// `message` of that body.
        message: Option<String>,
        /// The whole JSON body, when it is one.
        body: Option<Value>,
    },
    /// Connecting, TLS, a timeout, a broken transfer, an unreadable body.
    #[error("{0}")]
    Transport(String),
}

/// Which client a request goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Any URL that came with a request: the policy applies.
    Checked,
    /// A configured datacenter's IMGAPI: trusted configuration.
    Trusted,
}

/// The outbound HTTP clients and the policy they enforce.
pub struct Fetcher {
    checked: reqwest::Client,
    trusted: reqwest::Client,
    policy: Arc<Policy>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Build both clients. Fails only if TLS cannot be set up.
    pub fn new(cfg: &RemoteConfig, user_agent: &str) -> Result<Fetcher, String> {
        let policy = Arc::new(Policy::from_config(cfg));
        let tls = tls_config()?;
        let base = |tls: rustls::ClientConfig| client_builder(cfg, user_agent, tls);
        let checked = base(tls.clone())
            .redirect({
                let allow_http = policy.allow_http;
                checked_redirects(Arc::clone(&policy), move |_| allow_http)
            })
            .dns_resolver(CheckedResolver {
                policy: Arc::clone(&policy),
            })
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let max = cfg.max_redirects;
        let trusted = base(tls)
            .redirect(if max == 0 {
                redirect::Policy::none()
            } else {
                redirect::Policy::limited(max)
            })
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Fetcher {
            checked,
            trusted,
            policy,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Check a client-given URL before any request: the static rules,
    /// then (for a DNS name) every address it resolves to now. The
    /// resolver checks again at connect time, whatever happens meanwhile.
    pub async fn precheck(&self, url: &Url) -> Result<(), Refused> {
        self.policy.check_url(url)?;
        if self.policy.allow_private_addresses {
            return Ok(());
        }
        if let Some((name, None)) = host_of(url) {
            let port = url.port_or_known_default().unwrap_or(443);
            // A name that does not resolve is left to the request to report.
            if let Ok(addrs) = tokio::net::lookup_host((name.as_str(), port)).await {
                for addr in addrs {
                    self.policy.check_ip(addr.ip(), Some(&name))?;
                }
            }
        }
        Ok(())
    }

    /// GET `url`; a non-2xx answer is [`FetchError::Status`].
    pub async fn get(&self, url: Url, trust: Trust) -> Result<reqwest::Response, FetchError> {
        let client = match trust {
            Trust::Checked => {
                self.policy.check_url(&url).map_err(FetchError::Refused)?;
                &self.checked
            }
            Trust::Trusted => &self.trusted,
        };
        let resp = client.get(url).send().await.map_err(request_error)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = read_limited(resp, MAX_REMOTE_JSON)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let field = |k: &str| {
            body.as_ref()
                .and_then(|b| b.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Err(FetchError::Status {
            status,
            code: field("code"),
            message: field("message"),
            body,
        })
    }

    /// GET a JSON object (a manifest).
    pub async fn get_object(
        &self,
        url: Url,
        trust: Trust,
    ) -> Result<Map<String, Value>, FetchError> {
        match self.get_json(url, trust, MAX_REMOTE_JSON).await? {
            Value::Object(map) => Ok(map),
            _ => Err(FetchError::Transport(
                "the answer is not a JSON object".into(),
            )),
        }
    }

    /// GET a JSON array (a listing) of at most `max` bytes.
    pub async fn get_array(
        &self,
        url: Url,
        trust: Trust,
        max: usize,
    ) -> Result<Vec<Value>, FetchError> {
        match self.get_json(url, trust, max).await? {
            Value::Array(items) => Ok(items),
            _ => Err(FetchError::Transport(
                "the answer is not a JSON array".into(),
            )),
        }
    }

    async fn get_json(&self, url: Url, trust: Trust, max: usize) -> Result<Value, FetchError> {
        let resp = self.get(url, trust).await?;
        let bytes = read_limited(resp, max).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| FetchError::Transport(format!("invalid JSON: {e}")))
    }

    /// GET a body as a stream of chunks, with its announced length.
    pub async fn get_stream(
        &self,
        url: Url,
        trust: Trust,
    ) -> Result<(ByteStream, Option<u64>), FetchError> {
        let resp = self.get(url, trust).await?;
        let length = resp.content_length();
        let stream = resp
            .bytes_stream()
            .map_err(|e| std::io::Error::other(error_chain_deduped(&e)));
        Ok((Box::pin(stream), length))
    }
}

/// TLS for outbound requests: rustls with `ring` and the system's roots.
pub(crate) fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
        .map_err(|e| format!("TLS certificate verifier: {e}"))?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// An outbound client's common settings: TLS, user agent, the `[remote]`
/// timeouts, no proxy.
pub(crate) fn client_builder(
    cfg: &RemoteConfig,
    user_agent: &str,
    tls: rustls::ClientConfig,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
        .read_timeout(Duration::from_secs(cfg.read_timeout_secs))
        .no_proxy()
}

/// The checked client's redirect rule: count, then check the next hop.
/// `allow_http` says whether a hop may be plain http (the `[remote]`
/// setting, or the Docker registries listed as insecure).
pub(crate) fn checked_redirects(
    policy: Arc<Policy>,
    allow_http: impl Fn(&Url) -> bool + Send + Sync + 'static,
) -> redirect::Policy {
    if policy.max_redirects == 0 {
        return redirect::Policy::none();
    }
    redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > policy.max_redirects {
            let refused = Refused(format!(
                "more than {} redirects ([remote] max_redirects)",
                policy.max_redirects
            ));
            return attempt.error(refused);
        }
        match policy.check_url_with_http(attempt.url(), allow_http(attempt.url())) {
            Ok(()) => attempt.follow(),
            Err(Refused(why)) => {
                let refused = Refused(format!("redirect to {} refused: {why}", attempt.url()));
                attempt.error(refused)
            }
        }
    })
}

/// A policy refusal somewhere in the cause chain wins; else the chain.
pub(crate) fn request_error(e: reqwest::Error) -> FetchError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = src {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return FetchError::Refused(refused.clone());
        }
        src = err.source();
    }
    FetchError::Transport(error_chain_deduped(&e))
}

/// Read a whole (small) body, failing beyond `max` bytes.
pub(crate) async fn read_limited(
    resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(request_error)?;
        if out.len() + chunk.len() > max {
            return Err(FetchError::Transport(format!(
                "the answer exceeds {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A one-shot HTTP server answering every request with a redirect.
    async fn redirector(location: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/start", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        url
    }

    /// The first hop is sent without the policy check (the only way to
    /// reach a local server with private addresses refused); the redirect
    /// to a private address, literal or by name, must be refused.
    #[tokio::test]
    async fn redirect_hops_to_private_addresses_are_refused() {
        let cfg = RemoteConfig {
            allow_http: true,
            ..RemoteConfig::default()
        };
        let fetcher = Fetcher::new(&cfg, "test").unwrap();
        for (location, rule) in [
            (
                "http://10.255.255.1/x".to_string(),
                "redirect to http://10.255.255.1/x refused: 10.255.255.1 is a private (RFC 1918) address",
            ),
            (
                "http://[fd00::1]/x".to_string(),
                "refused: fd00::1 is a unique local address (ULA)",
            ),
            ("http://localhost:9/x".to_string(), "(from localhost) is a loopback address"),
        ] {
            let start = redirector(location.clone()).await;
            let err = fetcher.checked.get(&start).send().await.unwrap_err();
            match request_error(err) {
                FetchError::Refused(Refused(why)) => {
                    assert!(why.contains(rule), "{location}: {why}")
                }
                other => panic!("{location}: not refused: {other:?}"),
            }
        }
        // The same first hop through the public API is refused at once.
        let start = redirector("http://example.com/".into()).await;
        let got = fetcher
            .get(Url::parse(&start).unwrap(), Trust::Checked)
            .await;
        assert!(matches!(got, Err(FetchError::Refused(_))));
    }
}
