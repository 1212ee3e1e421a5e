//! Identifiers of questions and answers: opaque text the caller chooses (randomness is an
//! input), validated like the ids of `commerce-core`. Reviews need no id of their own: a
//! customer has at most one review per product, so ([`crate::ReviewKey`]) names it.

use std::fmt;
use std::sync::Arc;

use commerce_core::limits::ID_LEN_MAX;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

fn check(field: &'static str, text: &str) -> Result<()> {
    let ok = !text.is_empty()
        && text.len() <= ID_LEN_MAX
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!("1 to {ID_LEN_MAX} bytes of [A-Za-z0-9._:-]"),
        ))
    }
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps `text`.
            ///
            /// # Errors
            /// [`Error::Invalid`] naming the field when the text is empty, longer than
            /// [`ID_LEN_MAX`] bytes, or has a character outside `[A-Za-z0-9._:-]`.
            pub fn new(text: impl AsRef<str>) -> Result<Self> {
                let text = text.as_ref();
                check($field, text)?;
                Ok($name(text.into()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }
    };
}

text_id!(
    /// A question about a product.
    QuestionId, "question_id"
);
text_id!(
    /// An answer to a question.
    AnswerId, "answer_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated_and_round_trip_through_serde() {
        assert_eq!(QuestionId::new("q-1:a.b_c").unwrap().as_str(), "q-1:a.b_c");
        for bad in ["", "has space", "é"] {
            assert_eq!(
                QuestionId::new(bad).unwrap_err().field(),
                Some("question_id")
            );
        }
        assert!(AnswerId::new("a".repeat(ID_LEN_MAX)).is_ok());
        assert!(AnswerId::new("a".repeat(ID_LEN_MAX + 1)).is_err());
        let id = AnswerId::new("a-1").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"a-1\"");
        assert_eq!(serde_json::from_str::<AnswerId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<AnswerId>("\"bad id\"").is_err());
    }
}
