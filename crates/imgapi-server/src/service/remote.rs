//! Outbound HTTP: a fetcher that refuses what the `[remote]` policy does
//! not allow (docs/mirroring.md, "SSRF policy"), and [`Source`], the URLs
//! of another IMGAPI or of a legacy DSAPI server.
//!
//! - Scheme: `https:` only, unless `allow_http`.
//! - Host: when `allowed_hosts` is not empty, only those hosts.
//! - Address: unless `allow_private_addresses`, never a loopback, private
//!   (RFC 1918), link-local, unique-local, CGNAT, unspecified, multicast,
//!   documentation or otherwise reserved address. IP literals are checked
//!   before any connection; DNS names are checked by the client's own
//!   resolver, on EVERY address a name resolves to, at connect time (so a
//!   name cannot resolve to a public address when checked and to 127.0.0.1
//!   when used).
//! - Redirects: at most `max_redirects`, each hop checked like the first
//!   URL (`max_redirects = 0`: a redirect is answered as is, not followed).
//! - Timeouts: connecting, and a transfer that receives nothing.
//!
//! URLs of configured `[datacenters]` are operator configuration: they go
//! through a second client with the same timeouts but no address policy.
//!
//! TLS is rustls with the `ring` provider, as the server's own listener,
//! and the operating system's trust roots (rustls-platform-verifier).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use imgapi_blob::ByteStream;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{redirect, Url};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::RemoteConfig;

/// Largest remote JSON document read (a manifest; an error body).
const MAX_REMOTE_JSON: usize = 4 * 1024 * 1024;

/// Why the policy refuses a URL or an address; the text names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

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

/// The checks of the `[remote]` policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub allow_http: bool,
    pub allow_private_addresses: bool,
    /// Lower-case; `.example.com` matches subdomains.
    pub allowed_hosts: Vec<String>,
    pub max_redirects: usize,
}

impl Policy {
    pub fn from_config(cfg: &RemoteConfig) -> Policy {
        Policy {
            allow_http: cfg.allow_http,
            allow_private_addresses: cfg.allow_private_addresses,
            allowed_hosts: cfg
                .allowed_hosts
                .iter()
                .map(|h| {
                    h.trim()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_ascii_lowercase()
                })
                .collect(),
            max_redirects: cfg.max_redirects,
        }
    }

    /// Scheme, host allow-list and (for IP literals) address of `url`,
    /// without any network access.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(Refused(
                    "http: URLs are not allowed ([remote] allow_http = false)".into(),
                ))
            }
            other => {
                return Err(Refused(format!(
                    "{other}: URLs are not supported (only http: and https:)"
                )))
            }
        }
        let Some((name, literal)) = host_of(url) else {
            return Err(Refused("the URL has no host".into()));
        };
        if !self.allowed_hosts.is_empty() && !self.host_allowed(&name) {
            return Err(Refused(format!(
                "host {name} is not in [remote] allowed_hosts"
            )));
        }
        if let Some(ip) = literal {
            self.check_ip(ip, None)?;
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allowed_hosts
            .iter()
            .any(|entry| match entry.strip_prefix('.') {
                Some(suffix) => host == suffix || host.ends_with(entry.as_str()),
                None => host == entry,
            })
    }

    /// An address a connection would go to; `name` is the DNS name it
    /// came from, if any.
    pub fn check_ip(&self, ip: IpAddr, name: Option<&str>) -> Result<(), Refused> {
        if self.allow_private_addresses {
            return Ok(());
        }
        match non_public(ip) {
            None => Ok(()),
            Some(kind) => {
                let from = name.map(|n| format!(" (from {n})")).unwrap_or_default();
                Err(Refused(format!(
                    "{ip}{from} is {kind} ([remote] allow_private_addresses = false)"
                )))
            }
        }
    }
}

/// The URL's host, lower-case without IPv6 brackets, and its address when
/// it is an IP literal (the URL parser has normalised forms like `0x7f.1`).
fn host_of(url: &Url) -> Option<(String, Option<IpAddr>)> {
    let host = url.host_str()?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Some((bare.to_ascii_lowercase(), bare.parse::<IpAddr>().ok()))
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            if v6.is_unspecified() {
                return Some("an unspecified address");
            }
            if v6.is_loopback() {
                return Some("a loopback address");
            }
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                Ipv4Addr::new(a, b, c, d)
            };
            match seg {
                // NAT64 (64:ff9b::/96): the IPv4 address it reaches.
                [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => non_public_v4(embedded(hi, lo)),
                // 6to4 (2002::/16) embeds an IPv4 address too.
                [0x2002, hi, lo, ..] => non_public_v4(embedded(hi, lo)),
                // IPv4-compatible (deprecated) ::a.b.c.d.
                [0, 0, 0, 0, 0, 0, _, _] => Some("a reserved (IPv4-compatible) address"),
                [first, ..] if first & 0xfe00 == 0xfc00 => Some("a unique local address (ULA)"),
                [first, ..] if first & 0xffc0 == 0xfe80 => Some("a link-local address"),
                [first, ..] if first & 0xffc0 == 0xfec0 => Some("a site-local address"),
                [first, ..] if first & 0xff00 == 0xff00 => Some("a multicast address"),
                [0x2001, 0x0db8, ..] => Some("a documentation address"),
                _ => None,
            }
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let kind = match o {
        [0, ..] => "an unspecified address",
        [127, ..] => "a loopback address",
        [10, ..] | [192, 168, ..] => "a private (RFC 1918) address",
        [172, b, ..] if b & 0xf0 == 16 => "a private (RFC 1918) address",
        [169, 254, ..] => "a link-local address",
        [100, b, ..] if b & 0xc0 == 64 => "a shared (CGNAT, RFC 6598) address",
        [a, ..] if (224..240).contains(&a) => "a multicast address",
        [a, ..] if a >= 240 => "a reserved address",
        [192, 0, 0, _] => "a reserved (IETF protocol assignments) address",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "a documentation address",
        [198, b, ..] if b & 0xfe == 18 => "a benchmarking address",
        _ => return None,
    };
    Some(kind)
}

/// The resolver of the checked client: every address of a name must pass.
struct CheckedResolver {
    policy: Arc<Policy>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            for addr in &addrs {
                policy.check_ip(addr.ip(), Some(&host))?;
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
            .map_err(|e| format!("TLS certificate verifier: {e}"))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let base = |tls: rustls::ClientConfig| {
            reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .user_agent(user_agent)
                .connect_timeout(Duration::from_secs(cfg.connect_timeout_secs))
                .read_timeout(Duration::from_secs(cfg.read_timeout_secs))
                .no_proxy()
        };
        let checked = base(tls.clone())
            .redirect(checked_redirects(Arc::clone(&policy)))
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
            .map_err(|e| std::io::Error::other(error_chain(&e)));
        Ok((Box::pin(stream), length))
    }
}

/// The checked client's redirect rule: count, then check the next hop.
fn checked_redirects(policy: Arc<Policy>) -> redirect::Policy {
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
        match policy.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(Refused(why)) => {
                let refused = Refused(format!("redirect to {} refused: {why}", attempt.url()));
                attempt.error(refused)
            }
        }
    })
}

/// A policy refusal somewhere in the cause chain wins; else the chain.
fn request_error(e: reqwest::Error) -> FetchError {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = src {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return FetchError::Refused(refused.clone());
        }
        src = err.source();
    }
    FetchError::Transport(error_chain(&e))
}

/// `error: cause: cause…`, without repeating a cause already included.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut src = err.source();
    while let Some(e) = src {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = e.source();
    }
    out
}

/// Read a whole (small) body, failing beyond `max` bytes.
async fn read_limited(resp: reqwest::Response, max: usize) -> Result<Vec<u8>, FetchError> {
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

/// Another IMGAPI (or a legacy DSAPI): its base URL (which may carry
/// `?channel=`) and trust.
#[derive(Debug, Clone)]
pub struct Source {
    pub base: Url,
    pub trust: Trust,
    /// The URL path ends in `/datasets`: a legacy DSAPI server. Its
    /// listing is `<base>`, a manifest `<base>/<uuid>` (v1, upgraded on
    /// arrival), and a file is at the manifest's `files[0].url`.
    pub dsapi: bool,
}

impl Source {
    /// Parse an operator-given source URL (the `source` parameter).
    pub fn parse(raw: &str, trust: Trust) -> Result<Source, String> {
        let base = Url::parse(raw.trim()).map_err(|e| format!("{raw:?}: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(format!("{raw:?} is not an http(s) URL"));
        }
        let dsapi = base.path().trim_end_matches('/').ends_with("/datasets");
        Ok(Source { base, trust, dsapi })
    }

    /// The same source with `key=value` added to its query (every URL
    /// made from it carries it), e.g. `channel`.
    pub fn with_query_pair(&self, key: &str, value: &str) -> Source {
        let mut out = self.clone();
        out.base.query_pairs_mut().append_pair(key, value);
        out
    }

    /// `<base path><rest>` with the base's query (and `account`, when
    /// given).
    fn under(&self, rest: &str, account: Option<Uuid>) -> Url {
        let mut url = self.base.clone();
        let path = format!("{}{rest}", self.base.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_fragment(None);
        if let Some(acc) = account {
            url.query_pairs_mut()
                .append_pair("account", &acc.to_string());
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// `<base>/images/<uuid>[/<rest>]` with the base's query (and
    /// `account`, when given); a DSAPI source has no such prefix.
    fn url(&self, uuid: Uuid, rest: &str, account: Option<Uuid>) -> Url {
        if self.dsapi {
            self.under(&format!("/{uuid}{rest}"), None)
        } else {
            self.under(&format!("/images/{uuid}{rest}"), account)
        }
    }

    pub fn image_url(&self, uuid: Uuid, account: Option<Uuid>) -> Url {
        self.url(uuid, "", account)
    }

    /// GetImageFile of an IMGAPI source (a DSAPI manifest names its file's
    /// URL itself: [`Source::resolve`] it).
    pub fn file_url(&self, uuid: Uuid) -> Url {
        self.url(uuid, "/file", None)
    }

    pub fn icon_url(&self, uuid: Uuid) -> Url {
        self.url(uuid, "/icon", None)
    }

    /// The listing (`<base>/images` or, DSAPI, `<base>`) with these query
    /// parameters added.
    pub fn list_url(&self, params: &[(&str, &str)]) -> Url {
        let mut url = if self.dsapi {
            self.under("", None)
        } else {
            self.under("/images", None)
        };
        if !params.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in params {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    /// A URL a remote document names (a DSAPI `files[].url`), resolved
    /// against the base when it is relative.
    pub fn resolve(&self, raw: &str) -> Result<Url, String> {
        self.base
            .join(raw)
            .map_err(|e| format!("invalid URL {raw:?}: {e}"))
    }

    /// The base URL as given (for job params and messages).
    pub fn as_str(&self) -> &str {
        self.base.as_str()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(allow_http: bool, allow_private: bool, hosts: &[&str]) -> Policy {
        Policy::from_config(&RemoteConfig {
            allow_http,
            allow_private_addresses: allow_private,
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..RemoteConfig::default()
        })
    }

    fn check(p: &Policy, url: &str) -> Result<(), String> {
        p.check_url(&Url::parse(url).unwrap()).map_err(|r| r.0)
    }

    #[test]
    fn address_classes() {
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ];
        for ip in public {
            assert_eq!(non_public(ip.parse().unwrap()), None, "{ip}");
        }
        let refused = [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "RFC 1918"),
            ("172.16.0.1", "RFC 1918"),
            ("172.31.255.255", "RFC 1918"),
            ("192.168.1.1", "RFC 1918"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "CGNAT"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fd00::1", "unique local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "RFC 1918"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:c0a8:0101::1", "RFC 1918"),
        ];
        for (ip, kind) in refused {
            let got = non_public(ip.parse().unwrap());
            assert!(got.is_some_and(|k| k.contains(kind)), "{ip}: {got:?}");
        }
    }

    #[test]
    fn urls() {
        let default = policy(false, false, &[]);
        assert_eq!(check(&default, "https://images.example.com/x"), Ok(()));
        assert!(check(&default, "http://images.example.com/")
            .unwrap_err()
            .contains("allow_http = false"));
        assert!(check(&default, "ftp://images.example.com/")
            .unwrap_err()
            .contains("not supported"));
        let e = check(&default, "https://127.0.0.1/").unwrap_err();
        assert!(e.contains("127.0.0.1 is a loopback address"), "{e}");
        assert!(e.contains("allow_private_addresses = false"), "{e}");
        assert!(check(&default, "https://[::1]:8443/").is_err());
        assert!(check(&default, "https://10.0.0.5/").is_err());
        // A redirect hop goes through the same check.
        assert!(check(&default, "https://169.254.169.254/latest/meta-data").is_err());

        let open = policy(true, true, &[]);
        assert_eq!(check(&open, "http://127.0.0.1:8080/"), Ok(()));

        let listed = policy(false, false, &["images.example.com", ".mirror.example.org"]);
        assert_eq!(check(&listed, "https://IMAGES.example.com/"), Ok(()));
        assert_eq!(check(&listed, "https://a.mirror.example.org/"), Ok(()));
        assert_eq!(check(&listed, "https://mirror.example.org/"), Ok(()));
        assert!(check(&listed, "https://evil.example.com/")
            .unwrap_err()
            .contains("not in [remote] allowed_hosts"));
        assert!(check(&listed, "https://xmirror.example.org/").is_err());
    }

    #[tokio::test]
    async fn resolver_checks_every_address() {
        let resolver = CheckedResolver {
            policy: Arc::new(policy(false, false, &[])),
        };
        let err = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("(from localhost) is a loopback address"),
            "{err}"
        );
        let open = CheckedResolver {
            policy: Arc::new(policy(false, true, &[])),
        };
        assert!(open.resolve("localhost".parse().unwrap()).await.is_ok());
    }

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

    #[test]
    fn source_urls() {
        let s = Source::parse("http://h:1/?channel=staging", Trust::Checked).unwrap();
        let u = Uuid::nil();
        assert_eq!(
            s.image_url(u, None).as_str(),
            format!("http://h:1/images/{u}?channel=staging")
        );
        assert_eq!(
            s.file_url(u).as_str(),
            format!("http://h:1/images/{u}/file?channel=staging")
        );
        let s = Source::parse("https://h/prefix/", Trust::Checked).unwrap();
        assert_eq!(
            s.image_url(u, Some(u)).as_str(),
            format!("https://h/prefix/images/{u}?account={u}")
        );
        assert!(!s.dsapi);
        assert_eq!(
            s.list_url(&[("state", "all")]).as_str(),
            "https://h/prefix/images?state=all"
        );
        let d = Source::parse("http://h:1/datasets/?channel=x", Trust::Checked).unwrap();
        assert!(d.dsapi);
        assert_eq!(
            d.image_url(u, Some(u)).as_str(),
            format!("http://h:1/datasets/{u}?channel=x")
        );
        assert_eq!(
            d.list_url(&[("name", "a b")]).as_str(),
            "http://h:1/datasets?channel=x&name=a+b"
        );
        assert_eq!(
            d.resolve("/datasets/x/f.zfs.gz").unwrap().as_str(),
            "http://h:1/datasets/x/f.zfs.gz"
        );
        assert!(
            Source::parse("https://h/mirror/datasets", Trust::Checked)
                .unwrap()
                .dsapi
        );
        assert!(
            !Source::parse("https://h/datasetsx", Trust::Checked)
                .unwrap()
                .dsapi
        );
        assert!(Source::parse("file:///etc/passwd", Trust::Checked).is_err());
        assert!(Source::parse("not a url", Trust::Checked).is_err());
    }
}
