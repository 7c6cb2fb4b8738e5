//! The query string as ordered, percent-decoded pairs, and the typed
//! queries of the services built from it.

use super::params::Param;
use crate::service::listing::{Filters, ListQuery};

/// Parsed query parameters (repeatable, order kept).
#[derive(Debug, Clone, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
    /// The parameters the operation declares: in debug builds (the
    /// tests), reading another one fails, so the operations table (and the
    /// OpenAPI document made from it) names every parameter a handler reads.
    declared: Option<&'static [Param]>,
}

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        QueryParams {
            pairs,
            declared: None,
        }
    }

    /// The query of an operation that declares `params`.
    pub fn declared(mut self, params: &'static [Param]) -> Self {
        self.declared = Some(params);
        self
    }

    fn check_declared(&self, name: &str) {
        debug_assert!(
            self.declared
                .is_none_or(|params| params.iter().any(|p| p.name == name)),
            "query parameter {name:?} is read but not declared in the operations table"
        );
    }

    /// First value of `name` (restify keeps the first of repeated scalars).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.check_declared(name);
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// First non-empty value of `name`.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.check_declared(name);
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.check_declared(name);
        self.pairs.iter().any(|(k, _)| k == name)
    }
}

impl QueryParams {
    /// The filters ListImages, the catalog and `/datasets` share.
    pub fn filters(&self) -> Filters {
        let owned = |name: &str| self.get(name).map(str::to_string);
        let mut tags: Vec<(String, String)> = Vec::new();
        for (key, value) in self.iter() {
            if let Some(tag) = key.strip_prefix("tag.") {
                self.check_declared("tag.KEY");
                // The first of a repeated tag counts (restify's rule).
                if !tags.iter().any(|(k, _)| k == tag) {
                    tags.push((tag.to_string(), value.to_string()));
                }
            }
        }
        Filters {
            name: owned("name"),
            version: owned("version"),
            os: owned("os"),
            image_type: owned("type"),
            tags,
            billing_tags: self.get_all("billing_tag").map(str::to_string).collect(),
        }
    }

    /// ListImages' query.
    pub fn list_query(&self) -> ListQuery {
        let owned = |name: &str| self.get(name).map(str::to_string);
        ListQuery {
            incl_admin_fields: owned("inclAdminFields"),
            limit: owned("limit"),
            state: owned("state"),
            public: owned("public"),
            sort: owned("sort"),
            marker: owned("marker"),
            owner: owned("owner"),
            include_deprecated: owned("include_deprecated"),
            filters: self.filters(),
        }
    }
}
