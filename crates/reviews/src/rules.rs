//! The rules every store applies to a review write, as pure functions: the in-memory store
//! calls them, and a database adapter calls the same ones inside its transaction, so every
//! store refuses the same writes.

use crate::{Error, ProductRating, RatingWrite, Result, Review, ReviewKey};

/// What a store does with a review write that passed [`check_review_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum WriteCheck {
    /// Write the review (or delete it), the rating if one was given, and the events.
    Apply,
    /// Write nothing: the stored review's version (`current`, 0 when absent) is not the
    /// expected one, or the stored rating's `seq` is not the one the write expects.
    Mismatch {
        /// The stored review's version.
        current: u64,
    },
}

/// Decides a review write: `next` (`None` to delete) replacing `stored` under `key` at
/// `expected_version`, with `rating` (the new rating and the `seq` it replaces) when the
/// write moves the product's rating.
///
/// The order of the checks is the contract: malformed records first, then the two
/// compare-and-sets (a lost race is a [`WriteCheck::Mismatch`], never an error), then the
/// rating: the write must carry exactly the rating that follows from `stored_rating` and the
/// change of the review's counted stars, and none when they do not move. So a stored rating
/// always equals the sum and count of the published reviews it was built from.
///
/// # Errors
/// [`Error::Invalid`] for a record out of bounds, a version that is not `expected_version + 1`,
/// a delete expecting version 0, a record under another key, or a rating that does not follow
/// from the change (or is missing, or present for a change that moves nothing);
/// [`Error::Corrupt`] when the stored rating cannot take the change.
pub fn check_review_write(
    key: &ReviewKey,
    stored: Option<&Review>,
    stored_rating: Option<&ProductRating>,
    next: Option<&Review>,
    expected_version: u64,
    rating: Option<&RatingWrite>,
) -> Result<WriteCheck> {
    match next {
        Some(review) => {
            review.validate()?;
            if review.product_id != key.product_id || review.author != key.author {
                return Err(Error::invalid("review", format!("not the review {key}")));
            }
            if Some(review.version) != expected_version.checked_add(1) {
                return Err(Error::invalid(
                    "review.version",
                    format!("{} does not follow {expected_version}", review.version),
                ));
            }
        }
        None if expected_version == 0 => {
            return Err(Error::invalid(
                "expected_version",
                "a delete names the version it deletes",
            ));
        }
        None => {}
    }
    if let Some(w) = rating
        && w.rating.product_id != key.product_id
    {
        return Err(Error::invalid(
            "rating.product_id",
            format!("{} is not {}", w.rating.product_id, key.product_id),
        ));
    }
    let current = stored.map_or(0, |r| r.version);
    if current != expected_version {
        return Ok(WriteCheck::Mismatch { current });
    }
    let stored_seq = stored_rating.map_or(0, |r| r.seq);
    if rating.is_some_and(|w| w.expected_seq != stored_seq) {
        return Ok(WriteCheck::Mismatch { current });
    }
    let Some(sku) = next.or(stored).map(|r| &r.sku) else {
        // Deleting what is not there at version ≥ 1 was a mismatch above.
        return Ok(WriteCheck::Mismatch { current });
    };
    let base = match stored_rating {
        Some(r) => r.clone(),
        None => ProductRating::empty(key.product_id.clone(), sku.clone()),
    };
    let expected = base.after_change(
        stored.and_then(Review::counted_stars),
        next.and_then(Review::counted_stars),
        sku,
    )?;
    let follows = match (&expected, rating) {
        (None, None) => true,
        (Some(e), Some(w)) => {
            (e.stars_sum, e.review_count, e.seq)
                == (w.rating.stars_sum, w.rating.review_count, w.rating.seq)
        }
        _ => false,
    };
    if !follows {
        return Err(Error::invalid(
            "rating",
            format!(
                "the write carries {:?}, the change makes {:?}",
                rating.map(|w| (w.rating.stars_sum, w.rating.review_count, w.rating.seq)),
                expected.map(|e| (e.stars_sum, e.review_count, e.seq)),
            ),
        ));
    }
    Ok(WriteCheck::Apply)
}

/// Decides a moderation update of a question: compare-and-set on `version`, and nothing but
/// the moderation fields (`status`, `moderation_note`, `moderated_at`) may change.
///
/// # Errors
/// [`Error::Invalid`] for a record out of bounds, a version that is not
/// `expected_version + 1`, or a change to anything but moderation.
pub fn check_question_update(
    stored: &crate::Question,
    next: &crate::Question,
    expected_version: u64,
) -> Result<WriteCheck> {
    next.validate()?;
    let content = |q: &crate::Question| {
        (
            q.id.clone(),
            q.product_id.clone(),
            q.author.clone(),
            q.text.clone(),
            q.asked_at,
        )
    };
    check_update(
        "question",
        content(stored) == content(next),
        stored.version,
        next.version,
        expected_version,
    )
}

/// Decides a moderation update of an answer, as [`check_question_update`] does a question's.
///
/// # Errors
/// As [`check_question_update`].
pub fn check_answer_update(
    stored: &crate::Answer,
    next: &crate::Answer,
    expected_version: u64,
) -> Result<WriteCheck> {
    next.validate()?;
    let content = |a: &crate::Answer| {
        (
            a.id.clone(),
            a.question_id.clone(),
            a.product_id.clone(),
            a.author.clone(),
            a.text.clone(),
            a.verified_purchase,
            a.answered_at,
        )
    };
    check_update(
        "answer",
        content(stored) == content(next),
        stored.version,
        next.version,
        expected_version,
    )
}

fn check_update(
    what: &'static str,
    same_content: bool,
    current: u64,
    next_version: u64,
    expected_version: u64,
) -> Result<WriteCheck> {
    if Some(next_version) != expected_version.checked_add(1) {
        return Err(Error::invalid(
            "version",
            format!("{what} version {next_version} does not follow {expected_version}"),
        ));
    }
    if !same_content {
        return Err(Error::invalid(
            what,
            "an update changes only the moderation fields",
        ));
    }
    if current != expected_version {
        return Ok(WriteCheck::Mismatch { current });
    }
    Ok(WriteCheck::Apply)
}
