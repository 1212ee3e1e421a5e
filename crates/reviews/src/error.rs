//! The reviews engine's error type.

use commerce_core::{ErrorKind, PortError, ProductId};

use crate::{AnswerId, QuestionId, ReviewKey};

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the reviews engine can refuse. A refused operation changes nothing and commits
/// no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: stars outside 1 to 5, a text too long or blank, a bad id.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was refused.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The catalog has no such product.
    #[error("unknown product {0}")]
    UnknownProduct(ProductId),
    /// The product is retired: it takes no new reviews, questions or answers.
    #[error("product {0} is retired")]
    ProductRetired(ProductId),
    /// No review by this customer of this product.
    #[error("no review {0}")]
    UnknownReview(ReviewKey),
    /// No question with this id.
    #[error("no question {0}")]
    UnknownQuestion(QuestionId),
    /// No answer with this id.
    #[error("no answer {0}")]
    UnknownAnswer(AnswerId),
    /// The review or question is not published: nobody can vote on it or answer it.
    #[error("{what} is not published")]
    NotPublished {
        /// What was asked about (`review`, `question`).
        what: &'static str,
    },
    /// A customer voted on their own review.
    #[error("a customer cannot vote on their own review")]
    OwnReview,
    /// A question or answer id is taken by another question or answer.
    #[error("{what} id {id} is taken by another {what}")]
    IdTaken {
        /// `question` or `answer`.
        what: &'static str,
        /// The id.
        id: String,
    },
    /// The operation lost every compare-and-set race it tried (`attempts` of them): others
    /// keep changing the same review or product. Nothing was written.
    #[error("lost {attempts} compare-and-set races in a row")]
    Contended {
        /// Attempts made.
        attempts: usize,
    },
    /// A stored record breaks an invariant (a rating whose sums would go below zero).
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A commerce-core value was refused.
    #[error(transparent)]
    Core(#[from] commerce_core::Error),
    /// A port call (the store, the catalog, the event log) failed.
    #[error("port call failed: {0}")]
    Port(#[from] PortError),
}

impl Error {
    /// The kind of refusal: bad input is `Invalid`; an unknown product, review, question or
    /// answer `NotFound`; a retired product, an unpublished target or a vote on one's own
    /// review `Refused`; an id taken by something else or lost races `Conflict`; a corrupt
    /// store `Internal`; wrapped errors keep their own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::UnknownProduct(_)
            | Error::UnknownReview(_)
            | Error::UnknownQuestion(_)
            | Error::UnknownAnswer(_) => ErrorKind::NotFound,
            Error::ProductRetired(_) | Error::NotPublished { .. } | Error::OwnReview => {
                ErrorKind::Refused
            }
            Error::IdTaken { .. } | Error::Contended { .. } => ErrorKind::Conflict,
            Error::Corrupt(_) => ErrorKind::Internal,
            Error::Core(e) => e.kind(),
            Error::Port(e) => e.kind,
        }
    }

    /// The field the input was refused for, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            Error::Core(e) => e.field(),
            Error::Port(e) => e.field.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<Error> for PortError {
    /// A store refusing a record reports the record's own error, with its kind and field.
    fn from(e: Error) -> Self {
        let field = e.field().map(str::to_owned);
        PortError {
            field,
            ..PortError::caused_by(e.kind(), e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_fields() {
        let key = ReviewKey::new(
            ProductId::new("p-1").unwrap(),
            commerce_core::UserId::new("u-1").unwrap(),
        );
        assert_eq!(Error::invalid("stars", "0").kind(), ErrorKind::Invalid);
        assert_eq!(Error::invalid("stars", "0").field(), Some("stars"));
        assert_eq!(Error::UnknownReview(key).kind(), ErrorKind::NotFound);
        assert_eq!(Error::OwnReview.kind(), ErrorKind::Refused);
        assert_eq!(Error::Contended { attempts: 3 }.kind(), ErrorKind::Conflict);
        let port = PortError::from(Error::invalid("review.title", "too long"));
        assert_eq!(
            (port.kind, port.field.as_deref()),
            (ErrorKind::Invalid, Some("review.title"))
        );
        assert_eq!(
            Error::Port(PortError::new(ErrorKind::Indeterminate, "timeout")).kind(),
            ErrorKind::Indeterminate
        );
    }
}
