//! Reading a simplestreams server through the `[remote]`-checked client:
//! the index, the products file it names, and item streams.

use imgapi_blob::ByteStream;
use reqwest::Url;
use serde_json::Value;

use crate::service::import::fetch::{read_limited, FetchError, Fetcher, Trust};
use crate::service::ServiceError;

/// Where the index lives, relative to the server's URL.
pub const INDEX_PATH: &str = "streams/v1/index.json";
/// Largest index or products document read (the public servers' products
/// files are a few MB).
const MAX_DOCUMENT: usize = 64 * 1024 * 1024;

/// A simplestreams server.
pub struct Server<'a> {
    fetcher: &'a Fetcher,
    base: Url,
}

fn remote_error(what: &str, url: &Url, e: FetchError) -> ServiceError {
    ServiceError::RemoteSource(format!("cannot read {what} {url}: {e}"))
}

impl<'a> Server<'a> {
    /// `url` is checked against the `[remote]` policy (and its addresses,
    /// again at connect time).
    pub async fn new(fetcher: &'a Fetcher, url: &str) -> Result<Server<'a>, ServiceError> {
        let mut base = Url::parse(url)
            .map_err(|e| ServiceError::Internal(format!("LXD remote URL {url:?}: {e}")))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        fetcher.precheck(&base).await.map_err(|r| {
            ServiceError::RemoteSource(format!(
                "LXD remote {url} refused by the [remote] policy: {r}"
            ))
        })?;
        Ok(Server { fetcher, base })
    }

    /// `path` as the original resolves it: a full URL as is, an absolute
    /// path on the server's host, else relative to the server's URL.
    pub fn url_of(&self, path: &str) -> Result<Url, ServiceError> {
        let parsed = if path.contains("://") {
            Url::parse(path)
        } else {
            self.base.join(path)
        };
        parsed.map_err(|e| ServiceError::RemoteSource(format!("invalid path {path:?}: {e}")))
    }

    async fn document(&self, what: &str, path: &str) -> Result<Value, ServiceError> {
        let url = self.url_of(path)?;
        let resp = self
            .fetcher
            .get(url.clone(), Trust::Checked)
            .await
            .map_err(|e| remote_error(what, &url, e))?;
        let bytes = read_limited(resp, MAX_DOCUMENT)
            .await
            .map_err(|e| remote_error(what, &url, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ServiceError::RemoteSource(format!("{what} {url} is not JSON: {e}")))
    }

    /// The products document (read through the index).
    pub async fn products(&self) -> Result<Value, ServiceError> {
        let index = self.document("the index", INDEX_PATH).await?;
        let path = super::streams::products_path(&index)?;
        self.document("the products file", &path).await
    }

    /// An item's bytes, with the length the server announces.
    pub async fn item_stream(&self, path: &str) -> Result<(ByteStream, Option<u64>), ServiceError> {
        let url = self.url_of(path)?;
        self.fetcher
            .get_stream(url.clone(), Trust::Checked)
            .await
            .map_err(|e| ServiceError::Download(format!("Download error: {url}: {e}")))
    }
}
