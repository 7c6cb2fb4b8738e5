//! The ListImages query model (api.md §5.1), independent of any database.
//!
//! A query is a disjunction of conjunctions of [`Predicate`]s: the `account`
//! algorithm's union of sub-queries becomes one `OR`, so every backend can
//! push the whole query down to SQL and apply one sort and one limit.

/// One condition on an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    OwnerEq(String),
    NameEq(String),
    /// `name=~substr`: case-sensitive substring.
    NameContains(String),
    VersionEq(String),
    VersionContains(String),
    OsEq(String),
    TypeEq(String),
    /// `type=!t`
    TypeNe(String),
    Public(bool),
    Activated(bool),
    Disabled(bool),
    StateEq(String),
    /// `tag.KEY=VALUE`; `value: None` (from `tag.KEY=`) means "tag present".
    Tag {
        key: String,
        value: Option<String>,
    },
    /// `billing_tags` contains the value.
    BillingTag(String),
    /// `channels` contains the value.
    Channel(String),
    /// `acl` contains the account.
    AclContains(String),
    /// `published_at >= ms` (images without `published_at` never match).
    PublishedAtGe(i64),
    /// `published_at <= ms` (images without `published_at` never match).
    PublishedAtLe(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Asc,
    Desc,
}

/// A whole ListImages query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageQuery {
    /// OR of ANDs. An empty outer list matches nothing; `vec![vec![]]`
    /// matches everything.
    pub any_of: Vec<Vec<Predicate>>,
    /// Sort by `published_at` (missing = 0), ties broken by uuid.
    pub order: SortOrder,
    /// Maximum number of results; `None` = no limit.
    pub limit: Option<u32>,
}

impl ImageQuery {
    pub fn all() -> Self {
        ImageQuery {
            any_of: vec![vec![]],
            order: SortOrder::Asc,
            limit: None,
        }
    }

    pub fn matches_nothing(&self) -> bool {
        self.any_of.is_empty() || self.limit == Some(0)
    }
}
