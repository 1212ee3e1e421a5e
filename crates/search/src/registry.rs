//! The tenant registry: one index per tenant, created and found by id.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::config::{TenantConfig, TenantId};
use crate::index::{SearchIndex, Storage};
use crate::request::{SearchRequest, SearchResults};
use crate::{Error, Result};

/// Every tenant's index. A search names its tenant and only ever reads that tenant's index.
///
/// ```
/// use commerce_core::Currency;
/// use search::{SearchRegistry, SearchRequest, TenantConfig, TenantId};
/// let registry = SearchRegistry::in_ram();
/// let shop = TenantId::new("shop-de")?;
/// registry.create(shop.clone(), TenantConfig::new(&[Currency::EUR]))?;
/// assert_eq!(registry.search(&shop, &SearchRequest::new("mug", Currency::EUR))?.total, 0);
/// assert!(registry.search(&TenantId::new("other")?, &SearchRequest::new("mug", Currency::EUR)).is_err());
/// # Ok::<(), search::Error>(())
/// ```
#[derive(Debug)]
pub struct SearchRegistry {
    root: Option<PathBuf>,
    tenants: RwLock<BTreeMap<TenantId, Arc<SearchIndex>>>,
}

impl SearchRegistry {
    /// A registry whose indices live in memory.
    pub fn in_ram() -> SearchRegistry {
        SearchRegistry {
            root: None,
            tenants: RwLock::new(BTreeMap::new()),
        }
    }

    /// A registry keeping each tenant's index in `root/<tenant>`; creating a tenant whose
    /// directory holds an index reopens it.
    pub fn in_dir(root: impl Into<PathBuf>) -> SearchRegistry {
        SearchRegistry {
            root: Some(root.into()),
            tenants: RwLock::new(BTreeMap::new()),
        }
    }

    /// Creates (or reopens) a tenant's index.
    ///
    /// # Errors
    /// [`Error::TenantExists`]; otherwise as [`SearchIndex::create`].
    pub fn create(&self, tenant: TenantId, config: TenantConfig) -> Result<Arc<SearchIndex>> {
        let mut tenants = self
            .tenants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tenants.contains_key(&tenant) {
            return Err(Error::TenantExists(tenant.to_string()));
        }
        let storage = match &self.root {
            None => Storage::Ram,
            Some(root) => Storage::Dir(root.join(tenant.as_str())),
        };
        let index = Arc::new(SearchIndex::create(tenant.clone(), config, storage)?);
        tenants.insert(tenant, Arc::clone(&index));
        Ok(index)
    }

    /// A tenant's index.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`].
    pub fn get(&self, tenant: &TenantId) -> Result<Arc<SearchIndex>> {
        self.tenants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(tenant)
            .cloned()
            .ok_or_else(|| Error::UnknownTenant(tenant.to_string()))
    }

    /// Searches one tenant's index.
    ///
    /// # Errors
    /// [`Error::UnknownTenant`]; otherwise as [`SearchIndex::search`].
    pub fn search(&self, tenant: &TenantId, req: &SearchRequest) -> Result<SearchResults> {
        self.get(tenant)?.search(req)
    }

    /// Unregisters a tenant (its directory, if any, stays).
    pub fn remove(&self, tenant: &TenantId) -> Option<Arc<SearchIndex>> {
        self.tenants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(tenant)
    }

    /// The registered tenants.
    pub fn tenants(&self) -> Vec<TenantId> {
        self.tenants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }
}
