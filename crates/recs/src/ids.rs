//! Identifiers of experiments and their arms: opaque text the caller chooses, validated like
//! the ids of `commerce-core`.

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
    /// An A/B experiment (`recs-blend-2026-12`). Assignment hashes it with the user, so a
    /// new id reshuffles everyone.
    ExperimentId, "experiment_id"
);
text_id!(
    /// An arm of an experiment (`control`, `treatment`).
    ArmName, "arm"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated_and_round_trip_through_serde() {
        assert_eq!(ExperimentId::new("exp-1:a").unwrap().as_str(), "exp-1:a");
        for bad in ["", "has space", "é"] {
            assert_eq!(ArmName::new(bad).unwrap_err().field(), Some("arm"));
        }
        assert!(ExperimentId::new("a".repeat(ID_LEN_MAX)).is_ok());
        assert!(ExperimentId::new("a".repeat(ID_LEN_MAX + 1)).is_err());
        let id = ArmName::new("control").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ArmName>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ArmName>("\"no way\"").is_err());
    }
}
