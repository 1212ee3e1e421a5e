//! One index per tenant; a query never sees another tenant's products.

use commerce_core::Currency;
use search::{Error, SearchRegistry, SearchRequest, TenantConfig, TenantId};

use crate::fixtures::{product, temp_dir};

#[test]
fn a_tenant_never_sees_another_tenants_products() {
    let registry = SearchRegistry::in_ram();
    let (a, b) = (
        TenantId::new("shop-a").unwrap(),
        TenantId::new("shop-b").unwrap(),
    );
    for (tenant, title) in [(&a, "Red mug from A"), (&b, "Red mug from B")] {
        let index = registry
            .create(tenant.clone(), TenantConfig::new(&[Currency::EUR]))
            .unwrap();
        let mut w = index.writer();
        for i in 0..20 {
            w.upsert(&product(&format!("{tenant}-{i}"), title).0)
                .unwrap();
        }
        w.commit(None).unwrap();
    }
    let mut req = SearchRequest::new("red mug", Currency::EUR);
    req.limit = 100;
    for (tenant, other) in [(&a, "shop-b"), (&b, "shop-a")] {
        let r = registry.search(tenant, &req).unwrap();
        assert_eq!(r.total, 20);
        assert!(
            r.hits
                .iter()
                .all(|h| !h.product_id.as_str().starts_with(other))
        );
        // Even the other tenant's exact product id or SKU finds nothing.
        let sku = format!("SKU-{other}-1").to_uppercase();
        let r = registry
            .search(tenant, &SearchRequest::new(&sku, Currency::EUR))
            .unwrap();
        assert!(
            r.hits
                .iter()
                .all(|h| !h.product_id.as_str().starts_with(other))
        );
    }
    assert!(matches!(
        registry.search(&TenantId::new("shop-c").unwrap(), &req),
        Err(Error::UnknownTenant(_))
    ));
    assert!(matches!(
        registry.create(a.clone(), TenantConfig::new(&[Currency::EUR])),
        Err(Error::TenantExists(_))
    ));
}

#[test]
fn tenant_ids_that_could_escape_their_directory_are_refused() {
    for bad in ["", "../x", "A", "a/b", &"x".repeat(65)] {
        assert!(TenantId::new(bad).is_err(), "{bad:?}");
    }
}

/// A directory registry under `root` whose tenant `shop` holds one product titled `title`,
/// committed at `offset`, closed again.
fn one_product_on_disk(root: &std::path::Path, title: &str, offset: u64) -> TenantId {
    let t = TenantId::new("shop").unwrap();
    let registry = SearchRegistry::in_dir(root);
    let index = registry
        .create(t.clone(), TenantConfig::new(&[Currency::EUR]))
        .unwrap();
    let mut w = index.writer();
    w.upsert(&product("p1", title).0).unwrap();
    w.commit(Some(offset)).unwrap();
    t
}

#[test]
fn a_directory_registry_reopens_its_tenants() {
    let root = temp_dir("registry");
    let t = one_product_on_disk(&root, "Blue mug", 7);
    let registry = SearchRegistry::in_dir(&root);
    let index = registry
        .create(t.clone(), TenantConfig::new(&[Currency::EUR]))
        .unwrap();
    assert_eq!(index.num_docs().unwrap(), 1);
    assert_eq!(index.next_offset(), 7);
    drop(index);
    registry.remove(&t);
    // Reopening with other currencies than the index carries is refused.
    let err = registry
        .create(t, TenantConfig::new(&[Currency::USD]))
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn an_index_analyzed_by_another_version_is_refused_until_rebuilt() {
    let root = temp_dir("analysis");
    let t = one_product_on_disk(&root, "Shelf 6 inch", 3);
    // The commit records the analysis version; make it one from before versions were kept.
    let meta = root.join("shop").join("meta.json");
    let text = std::fs::read_to_string(&meta).unwrap();
    let marker = format!("\\\"analysis\\\":{}", search::ANALYSIS_VERSION);
    assert!(text.contains(&marker), "{text}");
    std::fs::write(&meta, text.replace(&marker, "\\\"analysis\\\":0")).unwrap();
    let err = SearchRegistry::in_dir(&root)
        .create(t.clone(), TenantConfig::new(&[Currency::EUR]))
        .unwrap_err();
    assert!(
        matches!(err, Error::AnalysisChanged { found: 0, expected } if expected == search::ANALYSIS_VERSION),
        "{err}"
    );
    assert_eq!(err.kind(), commerce_core::ErrorKind::Conflict);
    // Rebuilt (the directory removed), it opens and records the version again.
    std::fs::remove_dir_all(root.join("shop")).unwrap();
    let index = SearchRegistry::in_dir(&root)
        .create(t, TenantConfig::new(&[Currency::EUR]))
        .unwrap();
    assert_eq!(index.num_docs().unwrap(), 0);
    let _ = std::fs::remove_dir_all(root);
}
