//! The `[remote]` policy (docs/mirroring.md, "SSRF policy"): what an
//! outbound request may reach.
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

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use crate::config::RemoteConfig;

/// Why the policy refuses a URL or an address; the text names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

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
        self.check_url_with_http(url, self.allow_http)
    }

    /// [`Policy::check_url`] with plain `http:` allowed or not by the
    /// caller (Docker registries: only those listed as insecure).
    pub fn check_url_with_http(&self, url: &Url, allow_http: bool) -> Result<(), Refused> {
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
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
pub(crate) fn host_of(url: &Url) -> Option<(String, Option<IpAddr>)> {
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
pub(crate) struct CheckedResolver {
    pub(crate) policy: Arc<Policy>,
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
}
