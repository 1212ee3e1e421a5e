//! The facet vocabularies of one searcher generation: every brand, category and attribute value
//! across segments, with a global id each, and each segment's ordinals mapped to them.
//!
//! Facet counting then works on dense global ids: a segment's collector adds into arrays, merging
//! segments is adding arrays, and strings are looked up only for the values a page shows. Built
//! once per reader generation (a commit), on the first query that needs it.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use tantivy::Searcher;

use crate::Result;
use crate::schema::col;

/// One string column's values across segments.
#[derive(Debug, Default)]
pub(crate) struct Dim {
    /// Every value, sorted; the index is the global id.
    pub(crate) values: Vec<String>,
    /// Per segment ordinal: local term ordinal → global id.
    pub(crate) seg: Vec<Arc<[u32]>>,
}

impl Dim {
    fn build(searcher: &Searcher, column: &str) -> Result<Dim> {
        let mut per_segment: Vec<Vec<String>> = Vec::new();
        for reader in searcher.segment_readers() {
            let mut terms = Vec::new();
            if let Some(c) = reader.fast_fields().str(column)? {
                let mut stream = c.dictionary().stream()?;
                while stream.advance() {
                    terms.push(String::from_utf8_lossy(stream.key()).into_owned());
                }
            }
            per_segment.push(terms);
        }
        let values: Vec<String> = per_segment
            .iter()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let seg = per_segment
            .iter()
            .map(|terms| {
                terms
                    .iter()
                    .map(|t| {
                        let i = values.binary_search(t).unwrap_or(0);
                        u32::try_from(i).unwrap_or(u32::MAX)
                    })
                    .collect::<Vec<u32>>()
                    .into()
            })
            .collect();
        Ok(Dim { values, seg })
    }

    /// The global id of a value.
    pub(crate) fn id(&self, value: &str) -> Option<usize> {
        self.values.binary_search_by(|v| v.as_str().cmp(value)).ok()
    }

    /// A segment's map from local ordinal to global id.
    pub(crate) fn segment_map(&self, segment: usize) -> Arc<[u32]> {
        self.seg
            .get(segment)
            .cloned()
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }
}

/// The vocabularies of one searcher generation.
#[derive(Debug, Default)]
pub(crate) struct Vocab {
    pub(crate) generation: u64,
    pub(crate) brand: Dim,
    /// Leaf category paths (what a product carries).
    pub(crate) category: Dim,
    /// Every path and every prefix of one, sorted.
    pub(crate) paths: Vec<String>,
    /// Per leaf global id: the ids (into `paths`) of the leaf and each of its ancestors.
    pub(crate) ancestors: Vec<Vec<u32>>,
    pub(crate) attrs: Dim,
    /// Product-type words: the analyzed head noun (last word) of each leaf category's name
    /// (`Desk Lamps` → `lamp`), filled in by the index, which owns the analyzer.
    pub(crate) type_words: HashSet<String>,
}

impl Vocab {
    pub(crate) fn build(searcher: &Searcher) -> Result<Vocab> {
        let category = Dim::build(searcher, col::CATEGORY)?;
        let mut paths = BTreeSet::new();
        for leaf in &category.values {
            let mut end = 0;
            for seg in leaf.split('/') {
                end += seg.len();
                paths.insert(leaf[..end].to_owned());
                end += 1;
            }
        }
        let paths: Vec<String> = paths.into_iter().collect();
        let ancestors = category
            .values
            .iter()
            .map(|leaf| {
                let mut ids = Vec::new();
                let mut end = 0;
                for seg in leaf.split('/') {
                    end += seg.len();
                    if let Ok(i) = paths.binary_search_by(|p| p.as_str().cmp(&leaf[..end])) {
                        ids.push(u32::try_from(i).unwrap_or(u32::MAX));
                    }
                    end += 1;
                }
                ids
            })
            .collect();
        Ok(Vocab {
            generation: searcher.generation().generation_id(),
            brand: Dim::build(searcher, col::BRAND)?,
            category,
            paths,
            ancestors,
            attrs: Dim::build(searcher, col::ATTRS)?,
            type_words: HashSet::new(),
        })
    }

    /// The id (into `paths`) of a category path.
    pub(crate) fn path_id(&self, path: &str) -> Option<usize> {
        self.paths.binary_search_by(|p| p.as_str().cmp(path)).ok()
    }
}
