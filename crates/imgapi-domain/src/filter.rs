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
    /// Not deprecated at `at_ms` (no deprecation time, or one after it),
    /// or owned by `unless_owner` (owners always see their own images).
    NotDeprecated {
        at_ms: i64,
        unless_owner: Option<String>,
    },
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

/// The `state` parameter of ListImages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    Active,
    Disabled,
    Unactivated,
    Creating,
    Failed,
    All,
}

impl StateFilter {
    pub fn parse(s: &str) -> Option<StateFilter> {
        Some(match s {
            "active" => StateFilter::Active,
            "disabled" => StateFilter::Disabled,
            "unactivated" => StateFilter::Unactivated,
            "creating" => StateFilter::Creating,
            "failed" => StateFilter::Failed,
            "all" => StateFilter::All,
            _ => return None,
        })
    }

    fn predicates(self) -> Vec<Predicate> {
        match self {
            StateFilter::Active => vec![Predicate::Activated(true), Predicate::Disabled(false)],
            StateFilter::Disabled => vec![Predicate::Activated(true), Predicate::Disabled(true)],
            StateFilter::Unactivated => vec![Predicate::Activated(false)],
            StateFilter::Creating => vec![Predicate::StateEq("creating".into())],
            StateFilter::Failed => vec![Predicate::StateEq("failed".into())],
            StateFilter::All => vec![],
        }
    }

    /// States implying "activated = false" or "disabled = true" restrict an
    /// account to its own images (api.md §5.1 account algorithm).
    fn own_images_only(self) -> bool {
        matches!(self, StateFilter::Disabled | StateFilter::Unactivated)
    }
}

/// Everything ListImages filters on, already parsed and validated.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub account: Option<String>,
    pub owner: Option<String>,
    /// `None` = the default (`active`).
    pub state: Option<StateFilter>,
    pub public: Option<bool>,
    /// Plain predicates: name, version, os, type, tags, billing tags,
    /// channel, marker.
    pub common: Vec<Predicate>,
    pub order: SortOrder,
    pub limit: Option<u32>,
}

/// Build the query of api.md §5.1, including the `account` union.
pub fn build_list_query(f: &ListFilter) -> ImageQuery {
    let state = f.state.unwrap_or(StateFilter::Active);
    let mut base = f.common.clone();
    if let Some(p) = f.public {
        base.push(Predicate::Public(p));
    }
    let with = |extra: Vec<Predicate>| -> Vec<Predicate> {
        let mut c = base.clone();
        c.extend(extra);
        c
    };
    let mut any_of = Vec::new();
    match (&f.account, &f.owner) {
        (None, owner) => {
            let mut c = with(state.predicates());
            if let Some(o) = owner {
                c.push(Predicate::OwnerEq(o.clone()));
            }
            any_of.push(c);
        }
        (Some(acc), None) => {
            let mut own = with(state.predicates());
            own.push(Predicate::OwnerEq(acc.clone()));
            any_of.push(own);
            if !state.own_images_only() {
                any_of.extend(shared_queries(&with(state.predicates()), acc, f.public));
            }
        }
        (Some(acc), Some(owner)) if acc == owner => {
            let mut own = with(state.predicates());
            own.push(Predicate::OwnerEq(owner.clone()));
            any_of.push(own);
        }
        (Some(acc), Some(owner)) => {
            if !state.own_images_only() {
                // In this branch the original drops a creating/failed filter.
                let preds = match state {
                    StateFilter::Creating | StateFilter::Failed => vec![],
                    other => other.predicates(),
                };
                let mut c = with(preds);
                c.push(Predicate::OwnerEq(owner.clone()));
                any_of.extend(shared_queries(&c, acc, f.public));
            }
        }
    }
    ImageQuery {
        any_of,
        order: f.order,
        limit: f.limit,
    }
}

/// Q2 (public, activated) and Q3 (private, activated, on the ACL).
fn shared_queries(base: &[Predicate], account: &str, public: Option<bool>) -> Vec<Vec<Predicate>> {
    let mut out = Vec::new();
    if public != Some(false) {
        let mut q = base.to_vec();
        q.extend([Predicate::Public(true), Predicate::Activated(true)]);
        out.push(q);
    }
    if public != Some(true) {
        let mut q = base.to_vec();
        q.extend([
            Predicate::Public(false),
            Predicate::Activated(true),
            Predicate::AclContains(account.to_string()),
        ]);
        out.push(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_account_is_one_query() {
        let q = build_list_query(&ListFilter::default());
        assert_eq!(
            q.any_of,
            vec![vec![Predicate::Activated(true), Predicate::Disabled(false)]]
        );
    }

    #[test]
    fn account_union() {
        let f = ListFilter {
            account: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(build_list_query(&f).any_of.len(), 3);
        let f = ListFilter {
            account: Some("a".into()),
            state: Some(StateFilter::Disabled),
            ..Default::default()
        };
        assert_eq!(
            build_list_query(&f).any_of.len(),
            1,
            "disabled: own images only"
        );
        let f = ListFilter {
            account: Some("a".into()),
            public: Some(true),
            ..Default::default()
        };
        assert_eq!(build_list_query(&f).any_of.len(), 2);
        let f = ListFilter {
            account: Some("a".into()),
            owner: Some("b".into()),
            state: Some(StateFilter::Unactivated),
            ..Default::default()
        };
        assert!(build_list_query(&f).any_of.is_empty());
    }
}
