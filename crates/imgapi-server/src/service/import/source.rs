//! [`Source`]: the URLs of another IMGAPI or of a legacy DSAPI server.

use reqwest::Url;
use uuid::Uuid;

use super::fetch::Trust;

/// Why a URL is not a usable source (or file) URL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("{raw:?}: {why}")]
    Unparsable { raw: String, why: String },
    #[error("{0:?} is not an http(s) URL")]
    NotHttp(String),
    /// A URL a remote document names that does not resolve.
    #[error("invalid URL {raw:?}: {why}")]
    Unresolvable { raw: String, why: String },
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
    pub fn parse(raw: &str, trust: Trust) -> Result<Source, SourceError> {
        let base = Url::parse(raw.trim()).map_err(|e| SourceError::Unparsable {
            raw: raw.to_string(),
            why: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(SourceError::NotHttp(raw.to_string()));
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

    /// ListImageSignatures (an IMGAPI extension, docs/signing.md); a DSAPI
    /// source has no signatures.
    pub fn signatures_url(&self, uuid: Uuid) -> Url {
        self.url(uuid, "/signatures", None)
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

    /// `<base>/changes` (ListChanges, an IMGAPI extension: the change
    /// feed) with the base's query (`channel`) and these parameters.
    pub fn changes_url(&self, params: &[(&str, &str)]) -> Url {
        let mut url = self.under("/changes", None);
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
    pub fn resolve(&self, raw: &str) -> Result<Url, SourceError> {
        self.base.join(raw).map_err(|e| SourceError::Unresolvable {
            raw: raw.to_string(),
            why: e.to_string(),
        })
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
        assert_eq!(
            s.signatures_url(u).as_str(),
            format!("http://h:1/images/{u}/signatures?channel=staging")
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
