//! The account directory: does an account uuid exist? (dc mode owner and
//! account checks, api.md §5.3 step 4, §5.13, §5.18 step 7, ExportImage;
//! errors `OwnerDoesNotExist` / `AccountDoesNotExist`).
//!
//! Pluggable, chosen by the `[account_directory]` config table:
//!
//! - `none` (the default): every uuid exists — nothing is checked.
//! - `static`: a configured list of account uuids.
//! - `ldap`: Triton's account database (UFDS) or any LDAP server with the
//!   same layout: an account is an `sdcPerson` entry whose `uuid` attribute is
//!   the account uuid (`uuid=<uuid>, ou=users, o=smartdc`). Sub-users (an
//!   `sdcPerson` below another `uuid=<account>` entry) are not accounts, as
//!   in the original (which searches one level below `ou=users`). Answers are
//!   cached for a short time, keyed by the looked-up uuid only; a directory
//!   that cannot be reached gives [`DirectoryError::Unavailable`] (503), never
//!   "does not exist".

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hashlink::LruCache;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use serde::Deserialize;
use uuid::Uuid;

/// Connect + bind + search, all together, must finish within this (seconds).
pub const DEFAULT_LDAP_TIMEOUT_SECS: u64 = 5;
/// How long "this account exists" is remembered (seconds).
pub const DEFAULT_CACHE_TTL_SECS: u64 = 60;
/// "Does not exist" is remembered for at most this long (seconds), so a
/// newly created account is usable soon.
pub const MAX_NEGATIVE_CACHE_TTL_SECS: u64 = 10;
/// At most this many uuids are cached.
pub const CACHE_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The directory could not answer (unreachable, timed out, bind refused,
    /// search failed). Not an answer: the server maps it to 503.
    #[error("account directory unavailable: {0}")]
    Unavailable(String),
    /// The `[account_directory]` configuration is unusable (start-up error).
    #[error("invalid account_directory configuration: {0}")]
    Config(String),
}

/// What the directory says about one account (ExportImage's path check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountInfo {
    /// The directory positively says the account does not exist.
    Missing,
    /// The account exists; `login` is its login name when the directory
    /// keeps logins (LDAP `login`), `None` for `none` / `static`.
    Exists { login: Option<String> },
}

/// Answers "does this account exist?".
#[async_trait]
pub trait AccountDirectory: Send + Sync {
    /// `Ok(false)` only when the directory positively says the account does
    /// not exist.
    async fn exists(&self, account: Uuid) -> Result<bool, DirectoryError>;
    /// Existence and login of `account` (uncached: ExportImage only).
    /// Directories without logins answer from [`AccountDirectory::exists`].
    async fn account_info(&self, account: Uuid) -> Result<AccountInfo, DirectoryError> {
        Ok(if self.exists(account).await? {
            AccountInfo::Exists { login: None }
        } else {
            AccountInfo::Missing
        })
    }
    /// `"none"`, `"static"` or `"ldap"` (for logs and Ping-like diagnostics).
    fn kind(&self) -> &'static str;
}

// ---------------------------------------------------------------------------
// Configuration

/// The `[account_directory]` table.
///
/// ```toml
/// [account_directory]
/// kind = "ldap"
/// url = "ldap://ufds.example.com:389"
/// base_dn = "ou=users, o=smartdc"
/// bind_dn = "cn=root"
/// bind_password = "secret"
/// timeout_secs = 5
/// cache_ttl_secs = 60
/// ```
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AccountDirectoryConfig {
    /// Every account exists (no check).
    #[default]
    None,
    /// Exactly these accounts exist.
    Static { accounts: Vec<Uuid> },
    /// Look accounts up in an LDAP directory (UFDS).
    Ldap {
        /// `ldap://host[:port]` (TLS is not supported: use a private network).
        url: String,
        /// Searched (subtree) for `(&(objectclass=sdcperson)(uuid=<uuid>))`.
        base_dn: String,
        /// Simple bind; anonymous when absent.
        bind_dn: Option<String>,
        bind_password: Option<String>,
        /// Bound on connect + bind + search; default 5.
        timeout_secs: Option<u64>,
        /// How long a positive answer is cached; negative answers at most
        /// 10 s (or this, if smaller). 0 disables the cache. Default 60.
        cache_ttl_secs: Option<u64>,
    },
}

impl fmt::Debug for AccountDirectoryConfig {
    // By hand so that the bind password never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Static { accounts } => f
                .debug_struct("Static")
                .field("accounts", &accounts.len())
                .finish(),
            Self::Ldap {
                url,
                base_dn,
                bind_dn,
                bind_password,
                timeout_secs,
                cache_ttl_secs,
            } => f
                .debug_struct("Ldap")
                .field("url", url)
                .field("base_dn", base_dn)
                .field("bind_dn", bind_dn)
                .field(
                    "bind_password",
                    &bind_password.as_ref().map(|_| "<redacted>"),
                )
                .field("timeout_secs", timeout_secs)
                .field("cache_ttl_secs", cache_ttl_secs)
                .finish(),
        }
    }
}

impl AccountDirectoryConfig {
    /// `"none"`, `"static"` or `"ldap"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Static { .. } => "static",
            Self::Ldap { .. } => "ldap",
        }
    }

    /// Checks what can be checked without contacting the directory.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        let Self::Ldap {
            url,
            base_dn,
            bind_dn,
            bind_password,
            timeout_secs,
            ..
        } = self
        else {
            return Ok(());
        };
        check_ldap_url(url).map_err(|e| DirectoryError::Config(format!("url {url:?}: {e}")))?;
        if base_dn.trim().is_empty() {
            return Err(DirectoryError::Config("base_dn is empty".into()));
        }
        if bind_password.is_some() && bind_dn.is_none() {
            return Err(DirectoryError::Config(
                "bind_password given without bind_dn".into(),
            ));
        }
        if *timeout_secs == Some(0) {
            return Err(DirectoryError::Config("timeout_secs must be > 0".into()));
        }
        Ok(())
    }
}

/// `ldap://host[:port][/]` (host may be `[v6]`); nothing else.
fn check_ldap_url(url: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "expected ldap://host[:port] (ldaps:// is not supported)";
    let authority = url.strip_prefix("ldap://").ok_or(SHAPE)?;
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(SHAPE)?;
        if !after.is_empty() && !after.starts_with(':') {
            return Err(SHAPE);
        }
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['/', '?', '@', ' ', '#']) {
        return Err(SHAPE);
    }
    match port.map(str::parse::<u16>) {
        Some(Ok(0) | Err(_)) => Err("bad port"),
        _ => Ok(()),
    }
}

/// Build the directory named by the config. Never contacts an LDAP server
/// (a directory that is down at start-up only fails lookups, with
/// [`DirectoryError::Unavailable`]); a connection is tried in the background
/// and a warning logged if it fails.
pub async fn open(
    cfg: &AccountDirectoryConfig,
) -> Result<Arc<dyn AccountDirectory>, DirectoryError> {
    cfg.validate()?;
    Ok(match cfg {
        AccountDirectoryConfig::None => Arc::new(NoDirectory),
        AccountDirectoryConfig::Static { accounts } => {
            Arc::new(StaticDirectory::new(accounts.iter().copied()))
        }
        AccountDirectoryConfig::Ldap {
            url,
            base_dn,
            bind_dn,
            bind_password,
            timeout_secs,
            cache_ttl_secs,
        } => {
            let ldap = Arc::new(LdapDirectory::new(
                url.clone(),
                base_dn.clone(),
                bind_dn
                    .clone()
                    .map(|dn| (dn, bind_password.clone().unwrap_or_default())),
                Duration::from_secs(timeout_secs.unwrap_or(DEFAULT_LDAP_TIMEOUT_SECS)),
            ));
            let warm = Arc::clone(&ldap);
            tokio::spawn(async move {
                match warm.warm_up().await {
                    Ok(()) => tracing::info!(url = %warm.url, "account directory connected"),
                    Err(e) => tracing::warn!(
                        url = %warm.url,
                        error = %e,
                        "account directory not reachable at start-up; lookups will retry"
                    ),
                }
            });
            let ttl = Duration::from_secs(cache_ttl_secs.unwrap_or(DEFAULT_CACHE_TTL_SECS));
            let negative = ttl.min(Duration::from_secs(MAX_NEGATIVE_CACHE_TTL_SECS));
            Arc::new(CachedDirectory::new(ldap, ttl, negative, CACHE_CAPACITY))
        }
    })
}

// ---------------------------------------------------------------------------
// none, static

/// Every account exists (the default; modes other than dc never ask).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDirectory;

#[async_trait]
impl AccountDirectory for NoDirectory {
    async fn exists(&self, _account: Uuid) -> Result<bool, DirectoryError> {
        Ok(true)
    }
    fn kind(&self) -> &'static str {
        "none"
    }
}

/// Exactly the configured accounts exist.
#[derive(Debug, Default, Clone)]
pub struct StaticDirectory {
    accounts: HashSet<Uuid>,
}

impl StaticDirectory {
    pub fn new(accounts: impl IntoIterator<Item = Uuid>) -> Self {
        StaticDirectory {
            accounts: accounts.into_iter().collect(),
        }
    }
}

#[async_trait]
impl AccountDirectory for StaticDirectory {
    async fn exists(&self, account: Uuid) -> Result<bool, DirectoryError> {
        Ok(self.accounts.contains(&account))
    }
    fn kind(&self) -> &'static str {
        "static"
    }
}

// Allow `Arc<D>` wherever a directory is expected (e.g. inside the cache).
#[async_trait]
impl<D: AccountDirectory + ?Sized> AccountDirectory for Arc<D> {
    async fn exists(&self, account: Uuid) -> Result<bool, DirectoryError> {
        (**self).exists(account).await
    }
    async fn account_info(&self, account: Uuid) -> Result<AccountInfo, DirectoryError> {
        (**self).account_info(account).await
    }
    fn kind(&self) -> &'static str {
        (**self).kind()
    }
}

// ---------------------------------------------------------------------------
// cache

/// A TTL cache in front of another directory. The key is the looked-up
/// account uuid and nothing else (not the caller, not the request). Errors
/// are never cached; answers that an account does not exist live for the
/// shorter `negative_ttl`. Bounded: when full, the least recently used
/// answer is dropped.
pub struct CachedDirectory<D> {
    inner: D,
    positive_ttl: Duration,
    negative_ttl: Duration,
    entries: Mutex<LruCache<Uuid, (bool, Instant)>>,
}

impl<D: AccountDirectory> CachedDirectory<D> {
    pub fn new(inner: D, positive_ttl: Duration, negative_ttl: Duration, capacity: usize) -> Self {
        CachedDirectory {
            inner,
            positive_ttl,
            negative_ttl,
            entries: Mutex::new(LruCache::new(capacity.max(1))),
        }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// Number of cached answers (expired ones included until seen or evicted).
    pub fn cached(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Uuid, (bool, Instant)>> {
        // A panic while holding this lock cannot leave the cache inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lookup(&self, account: Uuid, now: Instant) -> Option<bool> {
        let mut entries = self.lock();
        match entries.get(&account) {
            Some(&(answer, expires)) if now < expires => Some(answer),
            Some(_) => {
                entries.remove(&account);
                None
            }
            None => None,
        }
    }

    fn store(&self, account: Uuid, answer: bool, now: Instant) {
        let ttl = if answer {
            self.positive_ttl
        } else {
            self.negative_ttl
        };
        if ttl.is_zero() {
            return;
        }
        self.lock().insert(account, (answer, now + ttl));
    }
}

#[async_trait]
impl<D: AccountDirectory> AccountDirectory for CachedDirectory<D> {
    async fn exists(&self, account: Uuid) -> Result<bool, DirectoryError> {
        if let Some(answer) = self.lookup(account, Instant::now()) {
            return Ok(answer);
        }
        let answer = self.inner.exists(account).await?;
        self.store(account, answer, Instant::now());
        Ok(answer)
    }
    /// Always asks the directory (logins are not cached); the existence
    /// answer refreshes the cache.
    async fn account_info(&self, account: Uuid) -> Result<AccountInfo, DirectoryError> {
        let info = self.inner.account_info(account).await?;
        let exists = matches!(info, AccountInfo::Exists { .. });
        self.store(account, exists, Instant::now());
        Ok(info)
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

// ---------------------------------------------------------------------------
// LDAP

/// The search filter for one account (the uuid in its canonical lower-case
/// hyphenated form, as UFDS stores it; escaped although a parsed uuid never
/// needs it).
pub fn account_filter(account: Uuid) -> String {
    format!(
        "(&(objectclass=sdcperson)(uuid={}))",
        ldap3::ldap_escape(account.hyphenated().to_string())
    )
}

/// True when the entry's parent is itself an account (`uuid=…`), i.e. the
/// entry is a UFDS sub-user (`uuid=<user>, uuid=<account>, ou=users, …`).
fn is_sub_user(dn: &str) -> bool {
    // The second RDN. Account DNs contain no escaped commas (uuids and
    // `ou=users`), so a plain split is enough to find it.
    dn.split(',')
        .nth(1)
        .map(|rdn| {
            let rdn = rdn.trim_start();
            rdn.len() >= 5 && rdn[..5].eq_ignore_ascii_case("uuid=")
        })
        .unwrap_or(false)
}

/// Looks accounts up in an LDAP directory. One connection is kept and shared
/// (LDAP multiplexes operations); it is re-established when it fails.
/// Uncached: wrap it in a [`CachedDirectory`] (as [`open`] does).
pub struct LdapDirectory {
    url: String,
    base_dn: String,
    bind: Option<(String, String)>,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<Ldap>>,
}

impl fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("url", &self.url)
            .field("base_dn", &self.base_dn)
            .field("bind_dn", &self.bind.as_ref().map(|(dn, _)| dn))
            .field("timeout", &self.timeout)
            .finish()
    }
}

fn unavailable(what: &str, e: impl fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(format!("{what}: {e}"))
}

impl LdapDirectory {
    /// `bind`: (DN, password) for a simple bind; anonymous when `None`.
    pub fn new(
        url: String,
        base_dn: String,
        bind: Option<(String, String)>,
        timeout: Duration,
    ) -> Self {
        LdapDirectory {
            url,
            base_dn,
            bind,
            timeout,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Connect (and bind) now, keeping the connection for later lookups.
    pub async fn warm_up(&self) -> Result<(), DirectoryError> {
        match tokio::time::timeout(self.timeout, self.connection()).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> DirectoryError {
        // Whatever was in flight may hang on a dead peer: start afresh.
        if let Ok(mut guard) = self.conn.try_lock() {
            *guard = None;
        }
        DirectoryError::Unavailable(format!(
            "{}: no answer within {} s",
            self.url,
            self.timeout.as_secs_f64()
        ))
    }

    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| unavailable(&format!("cannot connect to {}", self.url), e))?;
        let url = self.url.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(url = %url, error = %e, "account directory connection closed");
            }
        });
        if let Some((dn, password)) = &self.bind {
            ldap.with_timeout(self.timeout)
                .simple_bind(dn, password)
                .await
                .and_then(|r| r.success())
                .map_err(|e| unavailable(&format!("bind as {dn:?} to {} failed", self.url), e))?;
        }
        Ok(ldap)
    }

    /// The shared connection, (re)connecting if there is none or it closed.
    async fn connection(&self) -> Result<Ldap, DirectoryError> {
        let mut guard = self.conn.lock().await;
        if let Some(ldap) = guard.as_mut() {
            if !ldap.is_closed() {
                return Ok(ldap.clone());
            }
        }
        *guard = None;
        let ldap = self.connect().await?;
        *guard = Some(ldap.clone());
        Ok(ldap)
    }

    async fn forget_connection(&self) {
        *self.conn.lock().await = None;
    }

    /// The account entry (not a sub-user) matching `filter`, with `attrs`.
    async fn search(
        &self,
        ldap: &mut Ldap,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Option<SearchEntry>, LdapError> {
        let (entries, _) = ldap
            .with_timeout(self.timeout)
            .search(&self.base_dn, Scope::Subtree, filter, attrs.to_vec())
            .await?
            .success()?;
        Ok(entries
            .into_iter()
            .map(SearchEntry::construct)
            .find(|e| !is_sub_user(&e.dn)))
    }

    /// The account's entry with `attrs` (`["1.1"]`: none), if it exists.
    async fn lookup(
        &self,
        account: Uuid,
        attrs: &[&str],
    ) -> Result<Option<SearchEntry>, DirectoryError> {
        let filter = account_filter(account);
        let mut ldap = self.connection().await?;
        match self.search(&mut ldap, &filter, attrs).await {
            Ok(found) => Ok(found),
            // The server answered, with an error (no such base DN, access
            // denied, …): reconnecting would not help.
            Err(e @ LdapError::LdapResult { .. }) => Err(unavailable(
                &format!("search under {:?} failed", self.base_dn),
                e,
            )),
            // The connection broke (server restarted, idle connection
            // dropped): reconnect once.
            Err(e) => {
                tracing::debug!(url = %self.url, error = %e, "account directory connection lost; reconnecting");
                drop(ldap);
                self.forget_connection().await;
                let mut ldap = self.connection().await?;
                self.search(&mut ldap, &filter, attrs)
                    .await
                    .map_err(|e| unavailable(&format!("search on {} failed", self.url), e))
            }
        }
    }
}

#[async_trait]
impl AccountDirectory for LdapDirectory {
    async fn exists(&self, account: Uuid) -> Result<bool, DirectoryError> {
        match tokio::time::timeout(self.timeout, self.lookup(account, &["1.1"])).await {
            Ok(r) => r.map(|entry| entry.is_some()),
            Err(_) => Err(self.timed_out()),
        }
    }
    async fn account_info(&self, account: Uuid) -> Result<AccountInfo, DirectoryError> {
        match tokio::time::timeout(self.timeout, self.lookup(account, &["login"])).await {
            Ok(r) => r.map(|entry| match entry {
                None => AccountInfo::Missing,
                Some(e) => AccountInfo::Exists {
                    login: e.attrs.get("login").and_then(|v| v.first()).cloned(),
                },
            }),
            Err(_) => Err(self.timed_out()),
        }
    }
    fn kind(&self) -> &'static str {
        "ldap"
    }
}

#[cfg(test)]
#[allow(clippy::print_stdout)] // the SKIP line
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A directory that counts lookups; accounts whose first byte is even exist.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl AccountDirectory for Counting {
        async fn exists(&self, account: Uuid) -> Result<bool, DirectoryError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                return Err(DirectoryError::Unavailable("down".into()));
            }
            Ok(account.as_bytes()[0] & 1 == 0)
        }
        fn kind(&self) -> &'static str {
            "counting"
        }
    }

    fn even() -> Uuid {
        Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap()
    }
    fn odd() -> Uuid {
        Uuid::parse_str("01000000-0000-4000-8000-000000000001").unwrap()
    }

    #[tokio::test]
    async fn no_directory_accepts_everything() {
        let d = open(&AccountDirectoryConfig::default()).await.unwrap();
        assert_eq!(d.kind(), "none");
        assert!(d.exists(Uuid::new_v4()).await.unwrap());
        assert!(d.exists(Uuid::nil()).await.unwrap());
    }

    #[tokio::test]
    async fn static_directory() {
        let a = Uuid::new_v4();
        let cfg = AccountDirectoryConfig::Static { accounts: vec![a] };
        let d = open(&cfg).await.unwrap();
        assert_eq!(d.kind(), "static");
        assert!(d.exists(a).await.unwrap());
        assert!(!d.exists(Uuid::new_v4()).await.unwrap());
        assert_eq!(
            d.account_info(a).await.unwrap(),
            AccountInfo::Exists { login: None }
        );
        assert_eq!(
            d.account_info(Uuid::new_v4()).await.unwrap(),
            AccountInfo::Missing
        );
        let empty = StaticDirectory::new([]);
        assert!(!empty.exists(a).await.unwrap());
    }

    #[tokio::test]
    async fn cache_serves_repeats_and_never_caches_errors() {
        let c = CachedDirectory::new(
            Counting::default(),
            Duration::from_secs(60),
            Duration::from_secs(10),
            100,
        );
        assert_eq!(c.kind(), "counting");
        assert!(c.exists(even()).await.unwrap());
        assert!(c.exists(even()).await.unwrap());
        assert!(!c.exists(odd()).await.unwrap());
        assert!(!c.exists(odd()).await.unwrap());
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 2);

        // Errors pass through and are not remembered.
        c.inner().fail.store(true, Ordering::SeqCst);
        let fresh = Uuid::parse_str("02000000-0000-4000-8000-000000000001").unwrap();
        assert!(matches!(
            c.exists(fresh).await,
            Err(DirectoryError::Unavailable(_))
        ));
        assert!(c.exists(fresh).await.is_err());
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 4);
        // Cached answers still served while the directory is down.
        assert!(c.exists(even()).await.unwrap());
        c.inner().fail.store(false, Ordering::SeqCst);
        assert!(c.exists(fresh).await.unwrap());
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn cache_expiry_positive_and_negative_ttls() {
        let c = CachedDirectory::new(
            Counting::default(),
            Duration::from_secs(60),
            Duration::from_secs(10),
            100,
        );
        let t0 = Instant::now();
        c.store(even(), true, t0);
        c.store(odd(), false, t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(c.lookup(even(), at(9)), Some(true));
        assert_eq!(c.lookup(odd(), at(9)), Some(false));
        assert_eq!(c.lookup(odd(), at(10)), None, "negative answers live 10 s");
        assert_eq!(c.lookup(even(), at(59)), Some(true));
        assert_eq!(c.lookup(even(), at(60)), None, "positive answers live 60 s");
        assert_eq!(c.cached(), 0, "expired entries are dropped when seen");
    }

    #[test]
    fn cache_zero_ttl_disables_and_capacity_bounds() {
        let off = CachedDirectory::new(Counting::default(), Duration::ZERO, Duration::ZERO, 10);
        off.store(even(), true, Instant::now());
        assert_eq!(off.cached(), 0);

        let c = CachedDirectory::new(
            Counting::default(),
            Duration::from_secs(60),
            Duration::from_secs(10),
            16,
        );
        let t0 = Instant::now();
        for i in 0..100u64 {
            c.store(
                Uuid::from_u64_pair(i, 1),
                true,
                t0 + Duration::from_millis(i),
            );
            assert!(c.cached() <= 16);
        }
        // The newest answer is there; the oldest were evicted.
        assert_eq!(c.lookup(Uuid::from_u64_pair(99, 1), t0), Some(true));
        assert_eq!(c.lookup(Uuid::from_u64_pair(0, 1), t0), None);
    }

    #[tokio::test]
    async fn cache_key_is_only_the_account() {
        // Same account looked up through one shared cache from two "callers"
        // (tasks) is one directory call; different accounts are separate.
        let c = Arc::new(CachedDirectory::new(
            Counting::default(),
            Duration::from_secs(60),
            Duration::from_secs(10),
            100,
        ));
        let (a, b) = (Arc::clone(&c), Arc::clone(&c));
        tokio::spawn(async move { a.exists(even()).await })
            .await
            .unwrap()
            .unwrap();
        tokio::spawn(async move { b.exists(even()).await })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 1);
        c.exists(odd()).await.unwrap();
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn filter_escaping() {
        // RFC 4515 §3: `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c`, `\00`.
        assert_eq!(ldap3::ldap_escape("abc-123"), "abc-123");
        assert_eq!(ldap3::ldap_escape("*)(uuid=*"), "\\2a\\29\\28uuid=\\2a");
        assert_eq!(ldap3::ldap_escape("a\\b\0c"), "a\\5cb\\00c");
        assert_eq!(ldap3::ldap_escape("é"), "é");
        let u = Uuid::parse_str("86055C40-2547-11E2-8A6B-4BB37EDC84BA").unwrap();
        assert_eq!(
            account_filter(u),
            "(&(objectclass=sdcperson)(uuid=86055c40-2547-11e2-8a6b-4bb37edc84ba))"
        );
    }

    #[test]
    fn sub_users_are_not_accounts() {
        assert!(!is_sub_user(
            "uuid=86055c40-2547-11e2-8a6b-4bb37edc84ba, ou=users, o=smartdc"
        ));
        assert!(!is_sub_user(
            "uuid=86055c40-2547-11e2-8a6b-4bb37edc84ba,ou=users,o=smartdc"
        ));
        assert!(is_sub_user(
            "uuid=3d1a3c7e-0000-4000-8000-00000000aa01, UUID=86055c40-2547-11e2-8a6b-4bb37edc84ba, ou=users, o=smartdc"
        ));
        assert!(!is_sub_user("uuid=x"));
    }

    #[derive(Debug, Deserialize)]
    struct File {
        #[serde(default)]
        account_directory: AccountDirectoryConfig,
    }

    fn parse(text: &str) -> Result<AccountDirectoryConfig, String> {
        toml::from_str::<File>(text)
            .map(|f| f.account_directory)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn config_parsing() {
        assert_eq!(parse("").unwrap(), AccountDirectoryConfig::None);
        assert_eq!(
            parse("[account_directory]\nkind = \"none\"\n").unwrap(),
            AccountDirectoryConfig::None
        );
        let a = "86055c40-2547-11e2-8a6b-4bb37edc84ba";
        assert_eq!(
            parse(&format!(
                "[account_directory]\nkind = \"static\"\naccounts = [\"{a}\"]\n"
            ))
            .unwrap(),
            AccountDirectoryConfig::Static {
                accounts: vec![Uuid::parse_str(a).unwrap()]
            }
        );
        let ldap = parse(
            "[account_directory]\n\
             kind = \"ldap\"\n\
             url = \"ldap://127.0.0.1:389\"\n\
             base_dn = \"ou=users, o=smartdc\"\n\
             bind_dn = \"cn=root\"\n\
             bind_password = \"secret\"\n\
             timeout_secs = 3\n\
             cache_ttl_secs = 30\n",
        )
        .unwrap();
        assert_eq!(
            ldap,
            AccountDirectoryConfig::Ldap {
                url: "ldap://127.0.0.1:389".into(),
                base_dn: "ou=users, o=smartdc".into(),
                bind_dn: Some("cn=root".into()),
                bind_password: Some("secret".into()),
                timeout_secs: Some(3),
                cache_ttl_secs: Some(30),
            }
        );
        assert_eq!(ldap.kind(), "ldap");
        assert!(ldap.validate().is_ok());
        assert!(!format!("{ldap:?}").contains("secret"), "password redacted");
        let minimal = parse(
            "[account_directory]\nkind = \"ldap\"\nurl = \"ldap://h\"\nbase_dn = \"o=smartdc\"\n",
        )
        .unwrap();
        assert!(minimal.validate().is_ok());

        // Errors: unknown kind, unknown field, missing field, wrong type.
        assert!(parse("[account_directory]\nkind = \"ufds\"\n").is_err());
        assert!(
            parse("[account_directory]\nkind = \"static\"\naccounts = []\nextra = 1\n").is_err()
        );
        assert!(parse("[account_directory]\nkind = \"ldap\"\nurl = \"ldap://h\"\n").is_err());
        assert!(parse("[account_directory]\nkind = \"static\"\naccounts = [\"nope\"]\n").is_err());
        assert!(
            parse("[account_directory]\naccounts = []\n").is_err(),
            "kind is required"
        );
    }

    #[tokio::test]
    async fn config_validation() {
        let ldap = |url: &str, base: &str| AccountDirectoryConfig::Ldap {
            url: url.into(),
            base_dn: base.into(),
            bind_dn: None,
            bind_password: None,
            timeout_secs: None,
            cache_ttl_secs: None,
        };
        for bad in [
            ldap("ldaps://h:636", "o=smartdc"),
            ldap("http://h", "o=smartdc"),
            ldap("not a url", "o=smartdc"),
            ldap("ldap://h", " "),
            ldap("ldap://", "o=smartdc"),
            ldap("ldap://h:notaport", "o=smartdc"),
            ldap("ldap://h:389/o=smartdc", "o=smartdc"),
            ldap("ldap://user@h", "o=smartdc"),
        ] {
            assert!(
                matches!(open(&bad).await, Err(DirectoryError::Config(_))),
                "{bad:?}"
            );
        }
        for good in [
            "ldap://h",
            "ldap://h:389",
            "ldap://h:389/",
            "ldap://[::1]:3389",
            "ldap://[::1]",
        ] {
            assert!(ldap(good, "o=smartdc").validate().is_ok(), "{good}");
        }
        let mut no_dn = ldap("ldap://h", "o=smartdc");
        if let AccountDirectoryConfig::Ldap { bind_password, .. } = &mut no_dn {
            *bind_password = Some("x".into());
        }
        assert!(no_dn.validate().is_err());
        let mut zero = ldap("ldap://h", "o=smartdc");
        if let AccountDirectoryConfig::Ldap { timeout_secs, .. } = &mut zero {
            *timeout_secs = Some(0);
        }
        assert!(zero.validate().is_err());
    }

    #[tokio::test]
    async fn ldap_down_at_startup_is_not_fatal_and_lookups_are_unavailable() {
        // A port nobody listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = AccountDirectoryConfig::Ldap {
            url: format!("ldap://127.0.0.1:{port}"),
            base_dn: "o=smartdc".into(),
            bind_dn: None,
            bind_password: None,
            timeout_secs: Some(2),
            cache_ttl_secs: None,
        };
        let d = open(&cfg)
            .await
            .expect("start-up does not need the directory");
        assert_eq!(d.kind(), "ldap");
        let t = Instant::now();
        let r = d.exists(Uuid::new_v4()).await;
        assert!(matches!(r, Err(DirectoryError::Unavailable(_))), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    // -----------------------------------------------------------------------
    // Against a real slapd (.ci/slapd-start.sh)

    const VADER: &str = "86055c40-2547-11e2-8a6b-4bb37edc84ba";
    const SDC: &str = "ba28f844-8cb4-f141-882d-46d6251e6a9f";
    /// A sub-user of vader added by .ci/slapd-start.sh.
    const VADER_SUB_USER: &str = "3d1a3c7e-5b1e-4c4a-9d7e-00000000aa01";
    const MISSING_TOO: &str = "00000000-1111-4222-8333-444444444444";

    /// The slapd address comes from CI (.ci/slapd-start.sh) through the
    /// environment; only this test reads it.
    #[allow(clippy::disallowed_methods)]
    fn test_env(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    /// A TCP forwarder to slapd whose connections the test can cut.
    struct Proxy {
        port: u16,
        cmd: tokio::sync::mpsc::UnboundedSender<bool>,
    }

    impl Proxy {
        async fn start(target: String) -> Proxy {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (cmd, mut rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
            tokio::spawn(async move {
                let mut conns = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        c = rx.recv() => {
                            // Dropping the tasks drops the sockets: both ends see the close.
                            conns.abort_all();
                            if c != Some(true) {
                                break; // stop: the listener is dropped too
                            }
                        }
                        accepted = listener.accept() => {
                            let Ok((mut client, _)) = accepted else { break };
                            let target = target.clone();
                            conns.spawn(async move {
                                if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                                }
                            });
                        }
                    }
                }
            });
            Proxy { port, cmd }
        }
        fn url(&self) -> String {
            format!("ldap://127.0.0.1:{}", self.port)
        }
        /// Cut the established connections, keep accepting new ones.
        async fn cut(&self) {
            self.cmd.send(true).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        /// Cut everything and close the port.
        async fn stop(self) {
            self.cmd.send(false).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test]
    async fn ldap_directory_against_slapd() {
        let (Some(url), Some(base)) = (test_env("LDAP_TEST_URL"), test_env("LDAP_TEST_BASE"))
        else {
            println!(
                "SKIP: LDAP directory test needs LDAP_TEST_URL (started by .ci/slapd-start.sh)"
            );
            return;
        };
        let bind = test_env("LDAP_TEST_BIND_DN")
            .map(|dn| (dn, test_env("LDAP_TEST_BIND_PASSWORD").unwrap_or_default()));
        let timeout = Duration::from_secs(3);
        let dir = |url: &str, base: &str| {
            LdapDirectory::new(url.into(), base.into(), bind.clone(), timeout)
        };
        let vader = Uuid::parse_str(VADER).unwrap();
        let sdc = Uuid::parse_str(SDC).unwrap();
        let sub_user = Uuid::parse_str(VADER_SUB_USER).unwrap();

        // 1. Directly (uncached): fixture accounts exist, others do not.
        let raw = dir(&url, &base);
        assert_eq!(raw.kind(), "ldap");
        assert!(raw.exists(vader).await.unwrap());
        assert!(raw.exists(sdc).await.unwrap());
        assert!(!raw.exists(Uuid::new_v4()).await.unwrap());
        // ExportImage's login lookup.
        assert_eq!(
            raw.account_info(vader).await.unwrap(),
            AccountInfo::Exists {
                login: Some("imgapitestvader".into())
            }
        );
        assert_eq!(
            raw.account_info(Uuid::new_v4()).await.unwrap(),
            AccountInfo::Missing
        );
        // A sub-user (sdcPerson below an account) is in the directory but is
        // not an account.
        {
            let mut ldap = raw.connection().await.unwrap();
            let (entries, _) = ldap
                .search(
                    &base,
                    Scope::Subtree,
                    &account_filter(sub_user),
                    vec!["1.1"],
                )
                .await
                .unwrap()
                .success()
                .unwrap();
            assert_eq!(entries.len(), 1, "slapd-start.sh loads a sub-user");
        }
        assert!(!raw.exists(sub_user).await.unwrap());
        // The base one level down, as the original searches, works too.
        assert!(dir(&url, &format!("ou=users, {base}"))
            .exists(vader)
            .await
            .unwrap());
        // A base DN that does not exist is a broken directory, not "no account".
        assert!(matches!(
            dir(&url, "o=nowhere").exists(vader).await,
            Err(DirectoryError::Unavailable(_))
        ));
        // A refused bind is Unavailable too.
        let bad_bind = LdapDirectory::new(
            url.clone(),
            base.clone(),
            Some((format!("cn=root,{base}"), "wrong password".into())),
            timeout,
        );
        assert!(matches!(
            bad_bind.exists(vader).await,
            Err(DirectoryError::Unavailable(_))
        ));

        // 2. The configured path (open + cache), through a proxy we can cut.
        let target = url
            .trim_start_matches("ldap://")
            .trim_end_matches('/')
            .to_string();
        let proxy = Proxy::start(target.clone()).await;
        let cfg = AccountDirectoryConfig::Ldap {
            url: proxy.url(),
            base_dn: base.clone(),
            bind_dn: bind.as_ref().map(|(dn, _)| dn.clone()),
            bind_password: bind.as_ref().map(|(_, pw)| pw.clone()),
            timeout_secs: Some(timeout.as_secs()),
            cache_ttl_secs: None,
        };
        let d = open(&cfg).await.unwrap();
        let missing = Uuid::new_v4();
        assert!(d.exists(vader).await.unwrap());
        assert!(!d.exists(missing).await.unwrap());

        // Reconnection: the connection breaks (slapd restarted, idle
        // connection dropped); the next lookup reconnects transparently.
        proxy.cut().await;
        assert!(
            d.exists(sdc).await.unwrap(),
            "reconnects after a broken connection"
        );

        // Cut everything and close the port.
        proxy.stop().await;
        // Cached answers are still served without the directory (the cache
        // serves repeats: no connection is needed) …
        assert!(d.exists(vader).await.unwrap());
        assert!(!d.exists(missing).await.unwrap());
        assert!(d.exists(sdc).await.unwrap());
        // … and an uncached lookup is Unavailable (not false, not a hang).
        let t = Instant::now();
        let r = d.exists(Uuid::parse_str(MISSING_TOO).unwrap()).await;
        assert!(matches!(r, Err(DirectoryError::Unavailable(_))), "{r:?}");
        assert!(
            t.elapsed() <= timeout + Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );

        // 3. A peer that accepts but never answers: bounded by the timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_url = format!("ldap://{}", silent.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let short = LdapDirectory::new(silent_url, base, bind.clone(), Duration::from_secs(1));
        let t = Instant::now();
        let r = short.exists(vader).await;
        assert!(matches!(r, Err(DirectoryError::Unavailable(_))), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        hold.abort();
    }
}
