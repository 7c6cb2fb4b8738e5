//! ListImages: an [`ImageQuery`] as one PostgreSQL statement with bind
//! parameters.
//!
//! `WHERE (p1 AND p2 …) OR (…) ORDER BY COALESCE(published_ms, 0) dir, uuid dir
//! LIMIT $n`, the ORDER BY matching the `images_sort` index. Only fixed SQL
//! fragments are pushed; every value is bound.

use imgapi_domain::filter::{ImageQuery, Predicate, SortOrder};
use sqlx::{Postgres, QueryBuilder};

/// The statement selecting `(uuid, record)` for `query`. The caller handles
/// [`ImageQuery::matches_nothing`] (an empty `any_of` would be `WHERE` with
/// nothing after it).
pub(super) fn list_query(query: &ImageQuery) -> QueryBuilder<Postgres> {
    let mut b = QueryBuilder::new("SELECT uuid, record FROM images WHERE ");
    for (i, conjunction) in query.any_of.iter().enumerate() {
        if i > 0 {
            b.push(" OR ");
        }
        b.push("(");
        if conjunction.is_empty() {
            b.push("TRUE");
        }
        for (j, predicate) in conjunction.iter().enumerate() {
            if j > 0 {
                b.push(" AND ");
            }
            push_predicate(&mut b, predicate);
        }
        b.push(")");
    }
    b.push(match query.order {
        SortOrder::Asc => " ORDER BY COALESCE(published_ms, 0) ASC, uuid ASC",
        SortOrder::Desc => " ORDER BY COALESCE(published_ms, 0) DESC, uuid DESC",
    });
    if let Some(limit) = query.limit {
        b.push(" LIMIT ");
        b.push_bind(i64::from(limit));
    }
    b
}

/// `EXISTS` on a side table keyed by `uuid`, comparing `column` exactly.
fn push_exists(b: &mut QueryBuilder<Postgres>, table: &str, column: &str, value: &str) {
    b.push(format_args!(
        "EXISTS (SELECT 1 FROM {table} s WHERE s.uuid = images.uuid AND s.{column} = "
    ));
    b.push_bind(value.to_owned());
    b.push(")");
}

/// `EXISTS` on a side table whose `column` is indexed as `md5(column)`:
/// the md5 comparison lets the index serve, the plain one keeps it exact.
fn push_exists_md5(b: &mut QueryBuilder<Postgres>, table: &str, column: &str, value: &str) {
    b.push(format_args!(
        "EXISTS (SELECT 1 FROM {table} s WHERE s.uuid = images.uuid AND md5(s.{column}) = md5("
    ));
    b.push_bind(value.to_owned());
    b.push(format_args!(") AND s.{column} = "));
    b.push_bind(value.to_owned());
    b.push(")");
}

fn push_predicate(b: &mut QueryBuilder<Postgres>, predicate: &Predicate) {
    match predicate {
        Predicate::OwnerEq(v) => {
            b.push("owner = ").push_bind(v.clone());
        }
        Predicate::NameEq(v) => {
            b.push("name = ").push_bind(v.clone());
        }
        // strpos() is case-sensitive and has no wildcards, unlike LIKE;
        // strpos(x, '') = 1 matches everything, as JavaScript's indexOf('')
        // does.
        Predicate::NameContains(v) => {
            b.push("strpos(name, ").push_bind(v.clone()).push(") > 0");
        }
        Predicate::VersionEq(v) => {
            b.push("version = ").push_bind(v.clone());
        }
        Predicate::VersionContains(v) => {
            b.push("strpos(version, ")
                .push_bind(v.clone())
                .push(") > 0");
        }
        Predicate::OsEq(v) => {
            b.push("os = ").push_bind(v.clone());
        }
        Predicate::TypeEq(v) => {
            b.push("type = ").push_bind(v.clone());
        }
        Predicate::TypeNe(v) => {
            b.push("type <> ").push_bind(v.clone());
        }
        Predicate::Public(v) => {
            b.push("public = ").push_bind(*v);
        }
        Predicate::Activated(v) => {
            b.push("activated = ").push_bind(*v);
        }
        Predicate::Disabled(v) => {
            b.push("disabled = ").push_bind(*v);
        }
        Predicate::StateEq(v) => {
            b.push("state = ").push_bind(v.clone());
        }
        Predicate::Tag { key, value: None } => push_exists_md5(b, "image_tags", "key", key),
        Predicate::Tag {
            key,
            value: Some(value),
        } => {
            b.push(
                "EXISTS (SELECT 1 FROM image_tags s WHERE s.uuid = images.uuid AND md5(s.key) = md5(",
            );
            b.push_bind(key.clone());
            b.push(") AND s.key = ");
            b.push_bind(key.clone());
            b.push(" AND s.value = ");
            b.push_bind(value.clone());
            b.push(")");
        }
        Predicate::BillingTag(v) => push_exists(b, "image_billing_tags", "tag", v),
        Predicate::Channel(v) => push_exists_md5(b, "image_channels", "channel", v),
        Predicate::AclContains(v) => push_exists(b, "image_acl", "account", v),
        // NULL (no published_at) compares as unknown: never matches.
        Predicate::PublishedAtGe(ms) => {
            b.push("published_ms >= ").push_bind(*ms);
        }
        Predicate::PublishedAtLe(ms) => {
            b.push("published_ms <= ").push_bind(*ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_shape() {
        let q = ImageQuery {
            any_of: vec![
                vec![
                    Predicate::OwnerEq("o".into()),
                    Predicate::NameContains("x".into()),
                ],
                vec![Predicate::Public(true), Predicate::Channel("dev".into())],
            ],
            order: SortOrder::Desc,
            limit: Some(3),
        };
        let sql = list_query(&q).sql();
        assert_eq!(
            sql.as_str(),
            "SELECT uuid, record FROM images WHERE (owner = $1 AND strpos(name, $2) > 0) OR \
             (public = $3 AND EXISTS (SELECT 1 FROM image_channels s WHERE s.uuid = images.uuid \
             AND md5(s.channel) = md5($4) AND s.channel = $5)) \
             ORDER BY COALESCE(published_ms, 0) DESC, uuid DESC LIMIT $6"
        );
        let all = list_query(&ImageQuery::all()).sql();
        assert!(all.as_str().contains("WHERE (TRUE) ORDER BY"));
    }
}
