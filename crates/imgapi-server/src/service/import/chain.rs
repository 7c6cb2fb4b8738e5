//! The walk down an image's origin chain, shared by every import that
//! brings missing origins along.

use std::future::Future;

use uuid::Uuid;

/// Longest origin chain walked (api.md §7).
pub const MAX_ORIGIN_CHAIN: usize = 100;

/// What the caller of a walk found out about one origin.
pub enum Origin<T> {
    /// Here already, as needed: the chain ends.
    Present,
    /// To be imported (with what the caller learned about it, `item`); the
    /// walk goes on to `next`, its own origin.
    Missing { item: T, next: Option<Uuid> },
}

/// Why a walk stopped short.
#[derive(Debug)]
pub enum WalkError<E> {
    /// More than [`MAX_ORIGIN_CHAIN`] origins, or an origin met twice.
    TooLongOrLoops,
    /// What the caller's `visit` failed with.
    Visit(E),
}

/// Walk from `first` (an image's origin) down the chain, asking `visit`
/// about each origin, until one is present or the chain ends; the missing
/// origins, base first. Meeting one of `loops_at` (the image itself, for
/// a caller that counts that as a loop) or an origin already walked is
/// [`WalkError::TooLongOrLoops`].
pub async fn missing_origins<T, E, F, Fut>(
    first: Option<Uuid>,
    loops_at: &[Uuid],
    mut visit: F,
) -> Result<Vec<(Uuid, T)>, WalkError<E>>
where
    F: FnMut(Uuid) -> Fut,
    Fut: Future<Output = Result<Origin<T>, E>>,
{
    let mut chain: Vec<(Uuid, T)> = Vec::new();
    let mut next = first;
    while let Some(origin) = next {
        if chain.len() >= MAX_ORIGIN_CHAIN
            || loops_at.contains(&origin)
            || chain.iter().any(|(walked, _)| *walked == origin)
        {
            return Err(WalkError::TooLongOrLoops);
        }
        match visit(origin).await.map_err(WalkError::Visit)? {
            Origin::Present => break,
            Origin::Missing { item, next: after } => {
                chain.push((origin, item));
                next = after;
            }
        }
    }
    chain.reverse();
    Ok(chain)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// A chain `origins[a] = b`, with the images in `here` present.
    async fn walk(
        origins: &HashMap<Uuid, Uuid>,
        here: &[Uuid],
        first: Uuid,
        loops_at: &[Uuid],
    ) -> Result<Vec<Uuid>, WalkError<()>> {
        let got = missing_origins(Some(first), loops_at, |u| {
            let present = here.contains(&u);
            let next = origins.get(&u).copied();
            async move {
                Ok(if present {
                    Origin::Present
                } else {
                    Origin::Missing { item: (), next }
                })
            }
        })
        .await?;
        Ok(got.into_iter().map(|(u, ())| u).collect())
    }

    #[tokio::test]
    async fn base_first_up_to_a_present_origin() {
        let origins = HashMap::from([(id(3), id(2)), (id(2), id(1))]);
        assert_eq!(
            walk(&origins, &[], id(3), &[]).await.unwrap(),
            [id(1), id(2), id(3)]
        );
        assert_eq!(walk(&origins, &[id(2)], id(3), &[]).await.unwrap(), [id(3)]);
    }

    #[tokio::test]
    async fn loops_and_long_chains_are_refused() {
        let looped = HashMap::from([(id(1), id(2)), (id(2), id(1))]);
        assert!(matches!(
            walk(&looped, &[], id(1), &[]).await,
            Err(WalkError::TooLongOrLoops)
        ));
        assert!(matches!(
            walk(&looped, &[], id(1), &[id(2)]).await,
            Err(WalkError::TooLongOrLoops)
        ));
        let long: HashMap<Uuid, Uuid> = (1..=200).map(|n| (id(n), id(n + 1))).collect();
        assert!(matches!(
            walk(&long, &[], id(1), &[]).await,
            Err(WalkError::TooLongOrLoops)
        ));
        let just: HashMap<Uuid, Uuid> = (1..MAX_ORIGIN_CHAIN as u128)
            .map(|n| (id(n), id(n + 1)))
            .collect();
        assert_eq!(
            walk(&just, &[], id(1), &[]).await.unwrap().len(),
            MAX_ORIGIN_CHAIN
        );
    }
}
