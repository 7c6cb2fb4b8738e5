//! ListImages: an [`ImageQuery`] as one SQL statement with bind parameters,
//! for either database.
//!
//! `WHERE (p1 AND p2 …) OR (…) ORDER BY COALESCE(published_ms, 0) dir, uuid dir
//! LIMIT n`, the ORDER BY matching the `images_sort` index. Only fixed SQL
//! fragments are pushed; every value is bound. What the dialects word
//! differently is described by a [`ListDialect`].

use imgapi_domain::filter::{ImageQuery, Predicate, SortOrder};
use sqlx::{Database, Encode, QueryBuilder, Type};

/// How a database words the parts of a ListImages statement that differ.
pub(crate) struct ListDialect {
    /// A condition that always holds: the whole of an empty conjunction.
    pub(crate) always_true: &'static str,
    /// The function giving the 1-based position of a substring, 0 when
    /// absent: `f(haystack, needle)`. It must be case-sensitive and have no
    /// wildcards (unlike LIKE), and find `''` at 1 as JavaScript's
    /// `indexOf('')` does, so an empty needle matches everything.
    pub(crate) substring_position: &'static str,
    /// How tag keys and channels are looked up in their side tables.
    pub(crate) key_lookup: KeyLookup,
}

/// How a side-table column is compared to a value.
pub(crate) enum KeyLookup {
    /// `s.column = value`.
    Plain,
    /// Through an index on `md5(column)` (for values that may be longer
    /// than a b-tree entry): the md5 comparison lets the index serve, the
    /// plain one keeps it exact.
    Md5Index,
}

/// The statement selecting `(uuid, record)` for `query`. The caller handles
/// [`ImageQuery::matches_nothing`] (an empty `any_of` would be `WHERE` with
/// nothing after it).
pub(crate) fn list_query<DB>(dialect: &ListDialect, query: &ImageQuery) -> QueryBuilder<DB>
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
{
    let mut b = QueryBuilder::new("SELECT uuid, record FROM images WHERE ");
    for (i, conjunction) in query.any_of.iter().enumerate() {
        if i > 0 {
            b.push(" OR ");
        }
        b.push("(");
        if conjunction.is_empty() {
            b.push(dialect.always_true);
        }
        for (j, predicate) in conjunction.iter().enumerate() {
            if j > 0 {
                b.push(" AND ");
            }
            push_predicate(&mut b, dialect, predicate);
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

/// The opening of an `EXISTS` on a side table `s` keyed by `uuid`, up to
/// its first condition on `s`.
fn push_exists_open<DB: Database>(b: &mut QueryBuilder<DB>, table: &str) {
    b.push(format_args!(
        "EXISTS (SELECT 1 FROM {table} s WHERE s.uuid = images.uuid AND "
    ));
}

/// `s.column` equals `value`, compared as `lookup` says.
fn push_column_eq<DB>(b: &mut QueryBuilder<DB>, lookup: &KeyLookup, column: &str, value: &str)
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
{
    if let KeyLookup::Md5Index = lookup {
        b.push(format_args!("md5(s.{column}) = md5("));
        b.push_bind(value.to_owned());
        b.push(") AND ");
    }
    b.push(format_args!("s.{column} = "));
    b.push_bind(value.to_owned());
}

/// `EXISTS` on a side table keyed by `uuid` whose `column` equals `value`.
fn push_exists<DB>(
    b: &mut QueryBuilder<DB>,
    lookup: &KeyLookup,
    table: &str,
    column: &str,
    value: &str,
) where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
{
    push_exists_open(b, table);
    push_column_eq(b, lookup, column, value);
    b.push(")");
}

/// `f(column, value) > 0`: `column` contains `value`.
fn push_contains<DB>(b: &mut QueryBuilder<DB>, dialect: &ListDialect, column: &str, value: &str)
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
{
    b.push(format_args!("{}({column}, ", dialect.substring_position))
        .push_bind(value.to_owned())
        .push(") > 0");
}

fn push_predicate<DB>(b: &mut QueryBuilder<DB>, dialect: &ListDialect, predicate: &Predicate)
where
    DB: Database,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
{
    match predicate {
        Predicate::OwnerEq(v) => {
            b.push("owner = ").push_bind(v.clone());
        }
        Predicate::NameEq(v) => {
            b.push("name = ").push_bind(v.clone());
        }
        Predicate::NameContains(v) => push_contains(b, dialect, "name", v),
        Predicate::VersionEq(v) => {
            b.push("version = ").push_bind(v.clone());
        }
        Predicate::VersionContains(v) => push_contains(b, dialect, "version", v),
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
        Predicate::Tag { key, value: None } => {
            push_exists(b, &dialect.key_lookup, "image_tags", "key", key);
        }
        Predicate::Tag {
            key,
            value: Some(value),
        } => {
            push_exists_open(b, "image_tags");
            push_column_eq(b, &dialect.key_lookup, "key", key);
            b.push(" AND s.value = ");
            b.push_bind(value.clone());
            b.push(")");
        }
        Predicate::BillingTag(v) => {
            push_exists(b, &KeyLookup::Plain, "image_billing_tags", "tag", v);
        }
        Predicate::Channel(v) => {
            push_exists(b, &dialect.key_lookup, "image_channels", "channel", v);
        }
        Predicate::AclContains(v) => push_exists(b, &KeyLookup::Plain, "image_acl", "account", v),
        // NULL (no published_at) compares as unknown: never matches. The
        // same bound on `COALESCE(published_ms, 0)` adds no condition (a
        // row passing the first has that value) but is the `images_sort`
        // index's own expression, so a marker page seeks to its first row
        // instead of scanning every row before it.
        Predicate::PublishedAtGe(ms) => {
            b.push("(published_ms >= ").push_bind(*ms);
            b.push(" AND COALESCE(published_ms, 0) >= ").push_bind(*ms);
            b.push(")");
        }
        Predicate::PublishedAtLe(ms) => {
            b.push("(published_ms <= ").push_bind(*ms);
            b.push(" AND COALESCE(published_ms, 0) <= ").push_bind(*ms);
            b.push(")");
        }
        Predicate::NotDeprecated {
            at_ms,
            unless_owner,
        } => {
            b.push("(NOT ");
            push_exists_open(b, "image_lifecycle");
            b.push("s.deprecated_ms <= ").push_bind(*at_ms).push(")");
            if let Some(owner) = unless_owner {
                b.push(" OR owner = ").push_bind(owner.clone());
            }
            b.push(")");
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Postgres, Sqlite};

    use super::*;
    use crate::postgres::PostgresStore;
    use crate::sql::SqlBackend;
    use crate::sqlite::SqliteStore;

    /// Two conjunctions touching a substring match and a channel lookup,
    /// the parts the dialects word differently.
    fn sample_query() -> ImageQuery {
        ImageQuery {
            any_of: vec![
                vec![
                    Predicate::OwnerEq("o".into()),
                    Predicate::NameContains("x".into()),
                ],
                vec![Predicate::Public(true), Predicate::Channel("dev".into())],
            ],
            order: SortOrder::Desc,
            limit: Some(3),
        }
    }

    #[test]
    fn sqlite_sql_shape() {
        let dialect = &SqliteStore::LIST_DIALECT;
        let sql = list_query::<Sqlite>(dialect, &sample_query()).sql();
        assert_eq!(
            sql.as_str(),
            "SELECT uuid, record FROM images WHERE (owner = ? AND instr(name, ?) > 0) OR \
             (public = ? AND EXISTS (SELECT 1 FROM image_channels s WHERE s.uuid = images.uuid \
             AND s.channel = ?)) ORDER BY COALESCE(published_ms, 0) DESC, uuid DESC LIMIT ?"
        );
        let all = list_query::<Sqlite>(dialect, &ImageQuery::all()).sql();
        assert!(all.as_str().contains("WHERE (1) ORDER BY"));
    }

    #[test]
    fn postgres_sql_shape() {
        let dialect = &PostgresStore::LIST_DIALECT;
        let sql = list_query::<Postgres>(dialect, &sample_query()).sql();
        assert_eq!(
            sql.as_str(),
            "SELECT uuid, record FROM images WHERE (owner = $1 AND strpos(name, $2) > 0) OR \
             (public = $3 AND EXISTS (SELECT 1 FROM image_channels s WHERE s.uuid = images.uuid \
             AND md5(s.channel) = md5($4) AND s.channel = $5)) \
             ORDER BY COALESCE(published_ms, 0) DESC, uuid DESC LIMIT $6"
        );
        let all = list_query::<Postgres>(dialect, &ImageQuery::all()).sql();
        assert!(all.as_str().contains("WHERE (TRUE) ORDER BY"));
    }
}
