//! Retention rules (docs/lifecycle.md "Retention rules"): which active
//! images a set of rules removes, and why a removal a rule asks for is
//! refused. Pure: the server reads the images and the protected set, this
//! module decides.
//!
//! A rule applies to the images of one owner (or of every owner) whose
//! name matches a pattern (`*` and `?` globs; otherwise the exact name).
//! Per (owner, name) it keeps the newest `keep_versions` active images
//! (by `published_at`, ties by uuid) and those published within
//! `keep_days`; with both, an image is kept when either keeps it. An image
//! matched by several rules goes only when every one of them lets it go.
//! The plan never removes a protected image, any image of the origin chain
//! of an image that stays, or the last active version of an (owner, name).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// The largest `keep_versions` / `keep_days` accepted.
pub const MAX_KEEP: u32 = 100_000;

/// What a rule says, as configured or sent to AddRetentionRule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// `None` = the images of every owner.
    pub owner: Option<Uuid>,
    /// Name pattern: `*` matches any run of characters, `?` one character.
    pub name: String,
    pub keep_versions: Option<u32>,
    pub keep_days: Option<u32>,
}

/// Why a rule is refused: the field and a message saying what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl RuleSpec {
    /// Check the rule: a non-empty pattern of printable characters, at least
    /// one of `keep_versions` / `keep_days`, each between 1 and [`MAX_KEEP`].
    pub fn validate(&self) -> Result<(), RuleError> {
        let err = |field, message: String| Err(RuleError { field, message });
        if self.name.trim().is_empty() {
            return err(
                "name",
                "\"name\" (a name or pattern) must not be empty".into(),
            );
        }
        if self.name.len() > 512 || self.name.chars().any(char::is_control) {
            return err(
                "name",
                "\"name\" must be at most 512 bytes of printable characters".into(),
            );
        }
        if self.keep_versions.is_none() && self.keep_days.is_none() {
            return err(
                "keep_versions",
                "a rule needs \"keep_versions\" and/or \"keep_days\" (what it keeps)".into(),
            );
        }
        for (field, value) in [
            ("keep_versions", self.keep_versions),
            ("keep_days", self.keep_days),
        ] {
            if let Some(n) = value.filter(|n| *n == 0 || *n > MAX_KEEP) {
                return err(
                    field,
                    format!("\"{field}\" must be between 1 and {MAX_KEEP} (got {n})"),
                );
            }
        }
        Ok(())
    }

    /// Whether the rule applies to an image of `owner` named `name`.
    pub fn applies_to(&self, owner: Uuid, name: &str) -> bool {
        self.owner.is_none_or(|o| o == owner) && glob_matches(&self.name, name)
    }
}

/// `*` / `?` glob match over characters; a pattern without either is an
/// exact comparison.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative match with backtracking to the last `*`: linear space,
    // no recursion whatever the pattern.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A rule with its identity: `config:N` for the N-th configured rule,
/// the stored id for rules added through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub spec: RuleSpec,
}

/// What the planner needs of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanImage {
    pub uuid: Uuid,
    pub owner: Uuid,
    pub name: String,
    pub version: String,
    pub published_at: Option<String>,
    /// `published_at` in ms (`None`: never published).
    pub published_ms: Option<i64>,
    pub origin: Option<Uuid>,
    /// In state `active`: only those are candidates.
    pub active: bool,
}

/// Why an image a rule would remove stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptReason {
    Protected,
    /// It is in the origin chain of this image, which stays.
    OriginOf(Uuid),
    /// The newest active version of its (owner, name).
    LastActiveVersion,
}

impl std::fmt::Display for KeptReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeptReason::Protected => f.write_str("protected"),
            KeptReason::OriginOf(uuid) => write!(f, "origin of {uuid}"),
            KeptReason::LastActiveVersion => f.write_str("last active version"),
        }
    }
}

/// One image of a plan with the rule that selected it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub image: PlanImage,
    pub rule: String,
}

/// The plan: what goes, oldest first, and what stays although a rule
/// would have removed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub delete: Vec<Planned>,
    pub kept: Vec<(Planned, KeptReason)>,
}

/// Decide which of `images` the rules remove at `now_ms`. `images` should
/// hold every image that may name a candidate as its origin (whatever its
/// state or owner), not only the candidates.
pub fn plan(rules: &[Rule], images: &[PlanImage], now_ms: i64, protected: &BTreeSet<Uuid>) -> Plan {
    let by_uuid: HashMap<Uuid, &PlanImage> = images.iter().map(|i| (i.uuid, i)).collect();
    // Active images per (owner, name), newest first.
    let mut groups: BTreeMap<(Uuid, &str), Vec<&PlanImage>> = BTreeMap::new();
    for image in images.iter().filter(|i| i.active) {
        groups
            .entry((image.owner, image.name.as_str()))
            .or_default()
            .push(image);
    }
    let mut wanted: Vec<Planned> = Vec::new();
    for ((owner, name), group) in &mut groups {
        group.sort_by(|a, b| {
            b.published_ms
                .cmp(&a.published_ms)
                .then_with(|| b.uuid.cmp(&a.uuid))
        });
        let matching: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.spec.applies_to(*owner, name))
            .collect();
        let Some(first) = matching.first() else {
            continue;
        };
        for (rank, image) in group.iter().enumerate() {
            if matching
                .iter()
                .all(|r| lets_go(&r.spec, rank, image, now_ms))
            {
                wanted.push(Planned {
                    image: (*image).clone(),
                    rule: first.id.clone(),
                });
            }
        }
    }

    let mut kept: Vec<(Planned, KeptReason)> = Vec::new();
    let mut going: BTreeMap<Uuid, Planned> = BTreeMap::new();
    for planned in wanted {
        let group = &groups[&(planned.image.owner, planned.image.name.as_str())];
        let newest = group.first().is_some_and(|i| i.uuid == planned.image.uuid);
        if protected.contains(&planned.image.uuid) {
            kept.push((planned, KeptReason::Protected));
        } else if newest {
            kept.push((planned, KeptReason::LastActiveVersion));
        } else {
            going.insert(planned.image.uuid, planned);
        }
    }
    // Every image that stays keeps its whole origin chain; walking each
    // chain to its base also covers the ancestors kept on the way.
    let staying: Vec<&PlanImage> = images
        .iter()
        .filter(|i| !going.contains_key(&i.uuid))
        .collect();
    for image in staying {
        let mut seen = BTreeSet::from([image.uuid]);
        let mut next = image.origin;
        while let Some(origin) = next.filter(|o| seen.insert(*o)) {
            if let Some(planned) = going.remove(&origin) {
                kept.push((planned, KeptReason::OriginOf(image.uuid)));
            }
            next = by_uuid.get(&origin).and_then(|o| o.origin);
        }
    }
    let mut delete: Vec<Planned> = going.into_values().collect();
    let oldest_first = |a: &Planned, b: &Planned| {
        (a.image.published_ms, a.image.uuid).cmp(&(b.image.published_ms, b.image.uuid))
    };
    delete.sort_by(oldest_first);
    kept.sort_by(|a, b| oldest_first(&a.0, &b.0));
    Plan { delete, kept }
}

/// Whether `spec` lets the image at `rank` (0 = newest) of its group go.
fn lets_go(spec: &RuleSpec, rank: usize, image: &PlanImage, now_ms: i64) -> bool {
    let kept_by_count = spec
        .keep_versions
        .is_some_and(|n| rank < usize::try_from(n).unwrap_or(usize::MAX));
    let kept_by_age = spec.keep_days.is_some_and(|days| {
        let window = i64::from(days).saturating_mul(86_400_000);
        // Never published: its age is unknown, so it is not old enough.
        image
            .published_ms
            .is_none_or(|ms| ms >= now_ms.saturating_sub(window))
    });
    !kept_by_count && !kept_by_age
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const NOW: i64 = 1_000 * DAY;

    fn owner(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn img(n: u128, o: u8, name: &str, days_ago: i64) -> PlanImage {
        PlanImage {
            uuid: Uuid::from_u128(n),
            owner: owner(o),
            name: name.into(),
            version: format!("1.{n}"),
            published_at: None,
            published_ms: Some(NOW - days_ago * DAY),
            origin: None,
            active: true,
        }
    }

    fn rule(owner: Option<Uuid>, name: &str, versions: Option<u32>, days: Option<u32>) -> Rule {
        Rule {
            id: "r".into(),
            spec: RuleSpec {
                owner,
                name: name.into(),
                keep_versions: versions,
                keep_days: days,
            },
        }
    }

    fn deleted(plan: &Plan) -> Vec<u128> {
        plan.delete.iter().map(|p| p.image.uuid.as_u128()).collect()
    }

    #[test]
    fn globs() {
        assert!(glob_matches("base-*", "base-64"));
        assert!(glob_matches("base-??", "base-64"));
        assert!(!glob_matches("base-?", "base-64"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "aXbYbc"));
        assert!(!glob_matches("a*b*c", "aXbYb"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
    }

    #[test]
    fn validation() {
        assert!(rule(None, "x", Some(1), None).spec.validate().is_ok());
        assert_eq!(
            rule(None, "x", None, None)
                .spec
                .validate()
                .unwrap_err()
                .field,
            "keep_versions"
        );
        assert_eq!(
            rule(None, "x", None, Some(0))
                .spec
                .validate()
                .unwrap_err()
                .field,
            "keep_days"
        );
        assert_eq!(
            rule(None, " ", Some(1), None)
                .spec
                .validate()
                .unwrap_err()
                .field,
            "name"
        );
    }

    #[test]
    fn keep_versions_per_owner_and_name() {
        let images = vec![
            img(1, 1, "base", 30),
            img(2, 1, "base", 20),
            img(3, 1, "base", 10),
            img(4, 2, "base", 30),
            img(5, 2, "base", 20),
            img(6, 1, "other", 30),
            img(7, 1, "other", 20),
        ];
        let p = plan(
            &[rule(Some(owner(1)), "base", Some(1), None)],
            &images,
            NOW,
            &BTreeSet::new(),
        );
        assert_eq!(deleted(&p), vec![1, 2]);
        assert!(p.kept.is_empty());
        let p = plan(
            &[rule(None, "*", Some(1), None)],
            &images,
            NOW,
            &BTreeSet::new(),
        );
        assert_eq!(deleted(&p), vec![1, 4, 6, 2]);
    }

    #[test]
    fn keep_days_and_both() {
        let images = vec![
            img(1, 1, "b", 30),
            img(2, 1, "b", 20),
            img(3, 1, "b", 10),
            img(4, 1, "b", 1),
        ];
        let p = plan(
            &[rule(None, "b", None, Some(15))],
            &images,
            NOW,
            &BTreeSet::new(),
        );
        assert_eq!(deleted(&p), vec![1, 2]);
        // Either keeps: the newest 3 by count, the last 15 days by age.
        let p = plan(
            &[rule(None, "b", Some(3), Some(15))],
            &images,
            NOW,
            &BTreeSet::new(),
        );
        assert_eq!(deleted(&p), vec![1]);
    }

    #[test]
    fn last_active_version_stays() {
        let images = vec![img(1, 1, "b", 30), img(2, 1, "b", 20)];
        let p = plan(
            &[rule(None, "b", None, Some(5))],
            &images,
            NOW,
            &BTreeSet::new(),
        );
        assert_eq!(deleted(&p), vec![1]);
        assert_eq!(p.kept.len(), 1);
        assert_eq!(p.kept[0].0.image.uuid.as_u128(), 2);
        assert_eq!(p.kept[0].1, KeptReason::LastActiveVersion);
    }

    #[test]
    fn protected_stays() {
        let images = vec![img(1, 1, "b", 30), img(2, 1, "b", 20), img(3, 1, "b", 10)];
        let protected = BTreeSet::from([Uuid::from_u128(1)]);
        let p = plan(&[rule(None, "b", Some(1), None)], &images, NOW, &protected);
        assert_eq!(deleted(&p), vec![2]);
        assert_eq!(p.kept[0].1, KeptReason::Protected);
    }

    #[test]
    fn origin_chain_of_a_kept_image_stays() {
        // base (1) <- mid (2) <- leaf (3), one name each version: the leaf
        // is kept, so mid and base stay though the rule lets them go.
        let mut images = vec![
            img(1, 1, "b", 30),
            img(2, 1, "b", 20),
            img(3, 1, "b", 10),
            img(4, 1, "b", 5),
        ];
        images[1].origin = Some(Uuid::from_u128(1));
        images[3].origin = Some(Uuid::from_u128(2));
        let p = plan(
            &[rule(None, "b", Some(1), None)],
            &images,
            NOW,
            &BTreeSet::new(),
        );
        assert_eq!(deleted(&p), vec![3]);
        let reasons: Vec<_> = p
            .kept
            .iter()
            .map(|(k, r)| (k.image.uuid.as_u128(), r.clone()))
            .collect();
        assert_eq!(
            reasons,
            vec![
                (1, KeptReason::OriginOf(Uuid::from_u128(4))),
                (2, KeptReason::OriginOf(Uuid::from_u128(4))),
            ]
        );
    }

    #[test]
    fn origin_of_an_image_out_of_scope_stays() {
        let mut images = vec![
            img(1, 1, "b", 30),
            img(2, 1, "b", 20),
            img(9, 2, "child", 1),
        ];
        images[2].origin = Some(Uuid::from_u128(1));
        images[2].active = false;
        let p = plan(
            &[rule(Some(owner(1)), "b", Some(1), None)],
            &images,
            NOW,
            &BTreeSet::new(),
        );
        assert!(deleted(&p).is_empty());
        assert_eq!(p.kept[0].1, KeptReason::OriginOf(Uuid::from_u128(9)));
    }

    #[test]
    fn every_matching_rule_must_let_go() {
        let images = vec![img(1, 1, "b", 30), img(2, 1, "b", 20), img(3, 1, "b", 10)];
        let rules = [
            rule(None, "*", Some(1), None),
            rule(None, "b", Some(2), None),
        ];
        let p = plan(&rules, &images, NOW, &BTreeSet::new());
        assert_eq!(deleted(&p), vec![1]);
    }

    #[test]
    fn origin_cycles_end() {
        let mut images = vec![img(1, 1, "b", 30), img(2, 1, "b", 20), img(3, 1, "b", 10)];
        images[0].origin = Some(Uuid::from_u128(2));
        images[1].origin = Some(Uuid::from_u128(1));
        images[2].origin = Some(Uuid::from_u128(1));
        let p = plan(
            &[rule(None, "b", Some(1), None)],
            &images,
            NOW,
            &BTreeSet::new(),
        );
        assert!(deleted(&p).is_empty());
        assert_eq!(p.kept.len(), 2);
    }
}
