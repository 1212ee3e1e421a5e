//! Facet counts for a search response: the collector's per-value counts, named through the
//! vocabularies and cut to the values the request asked for.

use std::collections::BTreeMap;

use crate::collect::Fruit;
use crate::request::{FacetCount, Facets, PriceBucket, RatingBucket, SearchRequest};
use crate::schema::ATTR_SEP;
use crate::vocab::Vocab;

/// The facets `req` asked for, from the counts in `fruit`.
pub(super) fn facets(vocab: &Vocab, req: &SearchRequest, fruit: &Fruit) -> Facets {
    let k = req.facets.top_k;
    Facets {
        brand: brand_facet(vocab, fruit, k),
        category: category_facet(vocab, req, fruit, k),
        attributes: attribute_facets(vocab, req, fruit, k),
        price: price_facet(req, fruit),
        rating: rating_facet(req, fruit),
    }
}

/// The `k` most frequent brands.
fn brand_facet(vocab: &Vocab, fruit: &Fruit, k: usize) -> Vec<FacetCount> {
    top_counts(
        nonzero(&fruit.brand)
            .into_iter()
            .filter_map(|(g, n)| Some((vocab.brand.values.get(g)?, n)))
            .collect(),
        k,
    )
}

/// The `k` most frequent children of the filtered category (top-level categories when none is
/// filtered), each counting the products anywhere in its subtree.
fn category_facet(vocab: &Vocab, req: &SearchRequest, fruit: &Fruit, k: usize) -> Vec<FacetCount> {
    let mut path_counts = vec![0u64; vocab.paths.len()];
    for (leaf, n) in nonzero(&fruit.category) {
        for p in vocab.ancestors.get(leaf).into_iter().flatten() {
            if let Some(slot) = path_counts.get_mut(*p as usize) {
                *slot += n;
            }
        }
    }
    let parent = req
        .filters
        .category
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    top_counts(
        nonzero(&path_counts)
            .into_iter()
            .filter_map(|(p, n)| {
                let path = vocab.paths.get(p)?;
                let child = if parent.is_empty() {
                    !path.contains('/')
                } else {
                    path.strip_prefix(&parent)
                        .and_then(|rest| rest.strip_prefix('/'))
                        .is_some_and(|rest| !rest.contains('/'))
                };
                child.then_some((path, n))
            })
            .collect(),
        k,
    )
}

/// For each attribute key the request counts, its `k` most frequent values.
fn attribute_facets(
    vocab: &Vocab,
    req: &SearchRequest,
    fruit: &Fruit,
    k: usize,
) -> BTreeMap<String, Vec<FacetCount>> {
    let mut attributes = BTreeMap::new();
    for key in &req.facets.attributes {
        let values: Vec<(&str, u64)> = nonzero(&fruit.attrs)
            .into_iter()
            .filter_map(|(g, n)| {
                let (k2, v) = vocab.attrs.values.get(g)?.split_once(ATTR_SEP)?;
                (k2 == key).then_some((v, n))
            })
            .collect();
        attributes.insert(key.clone(), top_counts(values, k));
    }
    attributes
}

/// The buckets the request's price bounds cut: below the first, between each pair, past the
/// last.
fn price_facet(req: &SearchRequest, fruit: &Fruit) -> Vec<PriceBucket> {
    let mut price = Vec::new();
    if let Some(bounds) = &req.facets.price_buckets {
        for i in 0..=bounds.len() {
            price.push(PriceBucket {
                min: i.checked_sub(1).and_then(|j| bounds.get(j)).copied(),
                max: bounds.get(i).copied(),
                count: fruit.price.get(i).copied().unwrap_or(0),
            });
        }
    }
    price
}

/// Products rated at least 4, 3, 2 and 1 stars, when the request asked.
fn rating_facet(req: &SearchRequest, fruit: &Fruit) -> Vec<RatingBucket> {
    if req.facets.rating {
        (1..=4u8)
            .rev()
            .map(|s| RatingBucket {
                at_least: s,
                count: fruit.rating[usize::from(s)],
            })
            .collect()
    } else {
        Vec::new()
    }
}

/// The values with a count, by position.
fn nonzero(counts: &[u64]) -> Vec<(usize, u64)> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(g, n)| (g, *n))
        .collect()
}

/// The `k` most frequent values (ties by value), naming only those.
fn top_counts<T: Ord + AsRef<str>>(mut values: Vec<(T, u64)>, k: usize) -> Vec<FacetCount> {
    top_k(&mut values, k);
    values
        .into_iter()
        .map(|(value, count)| FacetCount {
            value: value.as_ref().to_owned(),
            count,
        })
        .collect()
}

/// Keeps the `k` entries with the highest counts (ties by value), in that order.
fn top_k<T: Ord>(v: &mut Vec<(T, u64)>, k: usize) {
    let order = |a: &(T, u64), b: &(T, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if v.len() > k {
        v.select_nth_unstable_by(k, order);
        v.truncate(k);
    }
    v.sort_unstable_by(order);
}
