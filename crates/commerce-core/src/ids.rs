//! Identifiers: validated newtypes so an order id can never be passed where a SKU is expected.
//!
//! Ids are shared, immutable text (`Arc<str>`), so cloning one into a priced line, an event or
//! an index costs a reference count, not an allocation.
//!
//! Ids are opaque text chosen by the caller (a UUID, a ULID, a database key): the SDK generates
//! none itself, because randomness is an input. They are 1 to [`ID_LEN_MAX`] bytes (event ids
//! and idempotency keys, often derived from other ids, up to [`KEY_LEN_MAX`]) of ASCII
//! letters, digits and `-_.:`; customer ids, which may be e-mail addresses, and the keys
//! derived from them also take `@` and `+`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::limits::{ID_LEN_MAX, KEY_LEN_MAX, SKU_LEN_MAX};
use crate::{Error, Result};

fn check_id(field: &'static str, text: &str) -> Result<()> {
    check_text(field, text, ID_LEN_MAX)
}

/// Event ids and idempotency keys are derived from other ids (`{order}:{seq}`), so they may
/// be longer than the ids they come from.
fn check_key(field: &'static str, text: &str) -> Result<()> {
    check_chars(field, text, KEY_LEN_MAX, "@+")
}

/// Customer ids may be e-mail addresses (`ann.lee+shop@example.com`), so they also take `@`
/// and `+`; keys derived from them take the same.
fn check_user_id(field: &'static str, text: &str) -> Result<()> {
    check_chars(field, text, ID_LEN_MAX, "@+")
}

fn check_text(field: &'static str, text: &str, len_max: usize) -> Result<()> {
    check_chars(field, text, len_max, "")
}

fn check_chars(field: &'static str, text: &str, len_max: usize, extra: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::invalid(field, "empty"));
    }
    if text.len() > len_max {
        return Err(Error::invalid(
            field,
            format!("longer than {len_max} bytes"),
        ));
    }
    if let Some(bad) = text.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') || extra.contains(*c))
    }) {
        return Err(Error::invalid(
            field,
            format!("character {bad:?} not allowed"),
        ));
    }
    Ok(())
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// Validates and wraps `text`.
            ///
            /// # Errors
            /// [`Error::Invalid`] naming the field when the text is empty, too long, or has a
            /// character outside the allowed set.
            pub fn new(text: impl AsRef<str>) -> Result<Self> {
                let text = text.as_ref();
                $check($field, text)?;
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

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::new(&*text).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_id!(
    /// A product (the thing a catalog describes; its variants each have a [`Sku`]).
    ProductId, "product_id", check_id
);
text_id!(
    /// An order.
    OrderId, "order_id", check_id
);
text_id!(
    /// A registered customer: an opaque id or an e-mail address (`@` and `+` are allowed
    /// beside the usual characters). The SDK compares ids exactly; a caller that keys customers
    /// by e-mail lower-cases the address first.
    UserId, "user_id", check_user_id
);
text_id!(
    /// A cart, anonymous or a user's.
    CartId, "cart_id", check_id
);
text_id!(
    /// A shopper's browsing session (signed in or not), chosen by the storefront; the
    /// recommendations engine keys recently viewed products on it.
    SessionId, "session_id", check_id
);
text_id!(
    /// A domain event; consumers deduplicate on it. Up to [`KEY_LEN_MAX`] bytes.
    EventId, "event_id", check_key
);
text_id!(
    /// A stock location (warehouse, store, drop-shipper).
    LocationId, "location_id", check_id
);
text_id!(
    /// The key that makes a call to the outside world safe to repeat: the same key means the same
    /// request, and the receiver applies it at most once. Up to [`KEY_LEN_MAX`] bytes (Stripe's
    /// limit), so keys derived from ids fit.
    IdempotencyKey, "idempotency_key", check_key
);
text_id!(
    /// A payment provider's reference for an authorization or charge.
    PaymentRef, "payment_ref", check_id
);
text_id!(
    /// A stock-keeping unit: the sellable variant. 1 to 64 bytes of ASCII letters, digits and
    /// `-_.`; case is kept and significant (`ab-1` and `AB-1` are two SKUs).
    ///
    /// ```
    /// use commerce_core::Sku;
    /// assert!(Sku::new("TSHIRT-RED-M").is_ok());
    /// assert!(Sku::new("").is_err());
    /// assert!(Sku::new("has space").is_err());
    /// ```
    Sku, "sku", check_sku
);

fn check_sku(field: &'static str, text: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::invalid(field, "empty"));
    }
    if text.len() > SKU_LEN_MAX {
        return Err(Error::invalid(
            field,
            format!("longer than {SKU_LEN_MAX} bytes"),
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(Error::invalid(
            field,
            format!("character {bad:?} not allowed"),
        ));
    }
    Ok(())
}

impl IdempotencyKey {
    /// Derives a key for one call made on behalf of `scope` (an order id, a saga id), so retries of
    /// that call reuse it: `derive("order-42", "capture")` is `8:order-42:capture`. The scope's
    /// length leads, so two different (scope, purpose) pairs never give the same key even when
    /// ids contain `:` (`("o1:claim", "p")` and `("o1", "claim:p")` differ).
    ///
    /// # Errors
    /// [`Error::Invalid`] if the joined key is invalid (too long, bad characters).
    pub fn derive(scope: &str, purpose: &str) -> Result<IdempotencyKey> {
        IdempotencyKey::new(format!("{}:{scope}:{purpose}", scope.len()))
    }
}

impl EventId {
    /// Derives the id of an event a write causes from the write's own key (a movement key, a
    /// hold id) and what the event is, so a retried write names the same event and the outbox
    /// commits it once: `derive("po-7", "stock:0")` is `po-7:stock:0`. A joined id longer than
    /// [`KEY_LEN_MAX`] keeps its start and ends in a hash of the whole (FNV-1a, 64 bits), so
    /// long keys still give distinct, stable ids.
    ///
    /// ```
    /// use commerce_core::EventId;
    /// assert_eq!(EventId::derive("po-7", "stock:0")?.as_str(), "po-7:stock:0");
    /// let long = "k".repeat(300);
    /// let a = EventId::derive(&long, "stock:0")?;
    /// assert!(a.as_str().len() <= 255);
    /// assert_ne!(a, EventId::derive(&long, "stock:1")?);
    /// # Ok::<(), commerce_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Invalid`] if a part has a character ids do not allow.
    pub fn derive(scope: &str, purpose: &str) -> Result<EventId> {
        let joined = format!("{scope}:{purpose}");
        if joined.len() <= KEY_LEN_MAX {
            return EventId::new(joined);
        }
        // FNV-1a: stable across builds and platforms, unlike the standard library's hasher.
        let hash = joined.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let keep = KEY_LEN_MAX - 18;
        let start = joined.get(..keep).unwrap_or(&joined);
        EventId::new(format!("{start}:h{hash:016x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_validation_names_the_field_and_the_reason() {
        assert_eq!(Sku::new("A-1_b.2").unwrap().as_str(), "A-1_b.2");
        for (bad, reason) in [
            ("", "empty"),
            ("a b", "character ' ' not allowed"),
            ("a:b", "character ':' not allowed"),
            ("é", "character 'é' not allowed"),
        ] {
            assert_eq!(Sku::new(bad).unwrap_err(), Error::invalid("sku", reason));
        }
        assert!(Sku::new("x".repeat(SKU_LEN_MAX)).is_ok());
        assert!(matches!(
            Sku::new("x".repeat(SKU_LEN_MAX + 1)),
            Err(Error::Invalid { field: "sku", .. })
        ));
    }

    #[test]
    fn ids_refuse_bad_text_and_round_trip_through_serde() {
        assert!(OrderId::new("ord_01HZX:7").is_ok());
        assert!(matches!(
            OrderId::new(""),
            Err(Error::Invalid {
                field: "order_id",
                ..
            })
        ));
        assert!(matches!(
            UserId::new("x".repeat(ID_LEN_MAX + 1)),
            Err(Error::Invalid {
                field: "user_id",
                ..
            })
        ));
        // Customer ids may be e-mail addresses; other ids may not carry `@`.
        let ann = UserId::new("ann.lee+shop@example.com").unwrap();
        assert_eq!(ann.as_str(), "ann.lee+shop@example.com");
        assert!(IdempotencyKey::derive(ann.as_str(), "claim").is_ok());
        assert!(UserId::new("ann lee@example.com").is_err());
        assert!(OrderId::new("a@b").is_err());
        let id = CartId::new("cart-1").unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"cart-1\"");
        assert_eq!(serde_json::from_str::<CartId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<CartId>("\"bad id\"").is_err());
    }

    #[test]
    fn derived_keys_are_stable() {
        let a = IdempotencyKey::derive("order-42", "capture").unwrap();
        assert_eq!(a, IdempotencyKey::derive("order-42", "capture").unwrap());
        assert_eq!(a.as_str(), "8:order-42:capture");
        assert_ne!(
            IdempotencyKey::derive("o1:claim", "claim:p").unwrap(),
            IdempotencyKey::derive("o1", "claim:claim:p").unwrap()
        );
        assert!(IdempotencyKey::derive("order 42", "capture").is_err());
    }
}
