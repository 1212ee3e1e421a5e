//! The crate's error type.

use commerce_core::ErrorKind;
use commerce_core::ports::PortError;

/// Everything that can go wrong in search. A refused request changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was malformed (an empty tenant id, a page past the cap, a bad filter).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// What was wrong.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No index is registered for this tenant.
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    /// The index holds no searchable product with this SKU.
    #[error("no searchable product with SKU {0:?}")]
    UnknownProduct(String),
    /// A tenant with this id is already registered.
    #[error("tenant {0:?} already exists")]
    TenantExists(String),
    /// The request names a currency the tenant's index does not carry.
    #[error("the index carries no prices in {0}")]
    CurrencyNotIndexed(String),
    /// A product could not be turned into a document.
    #[error("product {product}: {reason}")]
    Unindexable {
        /// The product id.
        product: String,
        /// Why.
        reason: String,
    },
    /// A ranking model could not be read or does not fit the features.
    #[error("ranking model: {0}")]
    Model(String),
    /// A labelled relevance set could not be read.
    #[error("labelled set: {0}")]
    Labels(String),
    /// The embedder could not turn text into vectors (its model is not loaded, its service is
    /// down).
    #[error("embedder: {0}")]
    Embedder(String),
    /// The catalog port failed.
    #[error("catalog: {0}")]
    Catalog(#[from] PortError),
    /// The event log the indexer reads failed.
    #[error("event log: {0}")]
    Source(PortError),
    /// The directory holds an index whose text was analyzed by another version of the
    /// analysis than this build's ([`crate::ANALYSIS_VERSION`]): its words would not meet the
    /// queries'. Rebuild it: remove the directory, then replay the log or `reconcile`.
    #[error(
        "the index's text was analyzed by analysis version {found}, this build uses {expected}: rebuild it"
    )]
    AnalysisChanged {
        /// The version the index was built with (0: before versions were recorded).
        found: u32,
        /// This build's.
        expected: u32,
    },
    /// The index's commit payload is not one this crate wrote.
    #[error("commit payload {0:?} is not an indexer offset")]
    Payload(String),
    /// tantivy failed (I/O, a corrupt index, a lock held by another writer).
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// A directory could not be created or read.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The kind of failure: a malformed request, product, model or label set is `Invalid`, an
    /// unknown tenant or product `NotFound`, a tenant registered twice or an index locked by another
    /// process `Conflict`, an embedder that cannot
    /// answer `Unavailable`, other tantivy and file-system failures `Internal`; port failures (the catalog, the event log) keep their own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. }
            | Error::CurrencyNotIndexed(_)
            | Error::Unindexable { .. }
            | Error::Model(_)
            | Error::Labels(_) => ErrorKind::Invalid,
            Error::UnknownTenant(_) | Error::UnknownProduct(_) => ErrorKind::NotFound,
            Error::Embedder(_) => ErrorKind::Unavailable,
            Error::TenantExists(_) | Error::AnalysisChanged { .. } => ErrorKind::Conflict,
            // Another process (a running server) holds the index's writer lock.
            Error::Index(tantivy::TantivyError::LockFailure(..)) => ErrorKind::Conflict,
            Error::Catalog(e) | Error::Source(e) => e.kind,
            Error::Payload(_) | Error::Index(_) | Error::Io(_) => ErrorKind::Internal,
        }
    }

    /// The field the input was refused for, where there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            Error::CurrencyNotIndexed(_) => Some("currency"),
            Error::UnknownTenant(_) | Error::TenantExists(_) => Some("tenant"),
            Error::UnknownProduct(_) => Some("sku"),
            Error::Catalog(e) | Error::Source(e) => e.field.as_deref(),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
