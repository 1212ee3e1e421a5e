//! From what the shopper typed to a tantivy query.
//!
//! Each query word becomes a disjunction (max, not sum) of its ways to match:
//!
//! - **exact**: the word, or one of its synonyms, in title, keywords (brand, category, attribute
//!   values) or description: a constant [`EXACT`] plus BM25F (title weighted 3, keywords 2);
//! - **loose**: within the typo budget for its length (none under 5 letters, 1 from 5, 2 from 9;
//!   never for a word with a digit), or, for the last word while the shopper is still typing,
//!   as a prefix: a constant [`LOOSE`], in title and keywords only.
//!
//! The constants put every exact word a full tier above a loose one, so a product matching
//! the words as typed always ranks above one reached through a typo. The whole text also
//! matches a SKU exactly (case-insensitively), worth [`SKU`], which puts that product first.
// Scores are floats by nature; nothing here touches money.
#![allow(clippy::float_arithmetic)]

use std::collections::HashMap;

use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, EnableScoring, Explanation,
    FuzzyTermQuery, Occur, Query, Scorer, TermQuery, Weight,
};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocId, DocSet, Score, SegmentReader, Term};

use crate::QUERY_TOKENS_MAX;
use crate::schema::{Fields, sku_key};

/// One tier of text match; BM25 of a whole query stays well below it.
pub(crate) const TIER: f32 = 10_000.0;
/// Score of a word matched as typed (or through a synonym), before BM25.
pub(crate) const EXACT: f32 = 2.0 * TIER;
/// Score of a word matched through a typo or as a prefix.
pub(crate) const LOOSE: f32 = TIER;
/// Score of an exact SKU match.
pub(crate) const SKU: f32 = 100.0 * TIER;

/// Whether every word must match or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    All,
    Any,
}

/// Analyzed synonyms: word → alternatives, each a sequence of words.
pub(crate) type AnalyzedSynonyms = HashMap<String, Vec<Vec<String>>>;

/// Runs `text` through the analyzer.
pub(crate) fn analyze(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// The typo budget of a word.
pub(crate) fn typo_budget(token: &str) -> u8 {
    if token.chars().any(|c| c.is_ascii_digit()) {
        return 0;
    }
    match token.chars().count() {
        0..=4 => 0,
        5..=8 => 1,
        _ => 2,
    }
}

/// The analyzed words of a query, capped at [`QUERY_TOKENS_MAX`], and whether the last one is
/// still being typed (no trailing space) and may match as a prefix.
pub(crate) struct Words {
    pub(crate) tokens: Vec<String>,
    /// Each token before stemming: the typo budget follows what the shopper typed.
    pub(crate) typed: Vec<String>,
    pub(crate) last_is_prefix: bool,
}

impl Words {
    /// The first `n` words, all complete (the shopper typed past them).
    pub(crate) fn first(&self, n: usize) -> Words {
        Words {
            tokens: self.tokens.iter().take(n).cloned().collect(),
            typed: self.typed.iter().take(n).cloned().collect(),
            last_is_prefix: self.last_is_prefix && n >= self.tokens.len(),
        }
    }
}

pub(crate) fn words(analyzer: &mut TextAnalyzer, plain: &mut TextAnalyzer, text: &str) -> Words {
    let mut tokens = analyze(analyzer, text);
    tokens.truncate(QUERY_TOKENS_MAX);
    let mut typed = analyze(plain, text);
    typed.truncate(QUERY_TOKENS_MAX);
    if typed.len() != tokens.len() {
        typed.clone_from(&tokens);
    }
    let still_typing = !text.ends_with(char::is_whitespace);
    let last_is_prefix = still_typing && tokens.last().is_some_and(|t| t.chars().count() >= 2);
    Words {
        tokens,
        typed,
        last_is_prefix,
    }
}

fn term_query(field: tantivy::schema::Field, token: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, token),
        IndexRecordOption::WithFreqs,
    ))
}

/// One word (or one synonym sequence) matched as typed: BM25F over title, keywords and
/// description (one combined field, see `schema`), plus the [`EXACT`] tier on any match. The
/// tier rides on the BM25 scorer itself ([`Offset`]).
fn exact(fields: &Fields, seq: &[String]) -> Box<dyn Query> {
    if let [token] = seq {
        Box::new(Offset {
            inner: term_query(fields.text, token),
            offset: EXACT,
        })
    } else {
        let all: Vec<(Occur, Box<dyn Query>)> = seq
            .iter()
            .map(|t| (Occur::Must, exact(fields, std::slice::from_ref(t))))
            .collect();
        let n = seq.len().max(1) as f32;
        Box::new(BoostQuery::new(Box::new(BooleanQuery::new(all)), 1.0 / n))
    }
}

/// A query whose matches score `offset` more than its inner query's.
#[derive(Debug)]
struct Offset {
    inner: Box<dyn Query>,
    offset: Score,
}

impl Clone for Offset {
    fn clone(&self) -> Self {
        Offset {
            inner: self.inner.box_clone(),
            offset: self.offset,
        }
    }
}

impl Query for Offset {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(OffsetWeight {
            inner: self.inner.weight(scoring)?,
            offset: self.offset,
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        self.inner.query_terms(visitor);
    }
}

struct OffsetWeight {
    inner: Box<dyn Weight>,
    offset: Score,
}

impl Weight for OffsetWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(OffsetScorer {
            inner: self.inner.scorer(reader, boost)?,
            offset: self.offset * boost,
        }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let inner = self.inner.explain(reader, doc)?;
        let mut e = Explanation::new("offset", inner.value() + self.offset);
        e.add_detail(inner);
        Ok(e)
    }
}

struct OffsetScorer {
    inner: Box<dyn Scorer>,
    offset: Score,
}

impl DocSet for OffsetScorer {
    fn advance(&mut self) -> DocId {
        self.inner.advance()
    }
    fn seek(&mut self, target: DocId) -> DocId {
        self.inner.seek(target)
    }
    fn doc(&self) -> DocId {
        self.inner.doc()
    }
    fn size_hint(&self) -> u32 {
        self.inner.size_hint()
    }
    fn cost(&self) -> u64 {
        self.inner.cost()
    }
}

impl Scorer for OffsetScorer {
    fn score(&mut self) -> Score {
        self.inner.score() + self.offset
    }
}

/// One word matched through a typo or as a prefix; `None` when it has neither.
fn loose(fields: &Fields, typed: &str, prefix: bool) -> Option<Box<dyn Query>> {
    let budget = typo_budget(typed);
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    {
        let term = Term::from_field_text(fields.loose, typed);
        if budget > 0 {
            clauses.push((
                Occur::Should,
                Box::new(FuzzyTermQuery::new(term.clone(), budget, true)),
            ));
        }
        if prefix {
            clauses.push((
                Occur::Should,
                Box::new(FuzzyTermQuery::new_prefix(term, 0, true)),
            ));
        }
    }
    if clauses.is_empty() {
        return None;
    }
    Some(Box::new(ConstScoreQuery::new(
        Box::new(BooleanQuery::new(clauses)),
        LOOSE,
    )))
}

/// The query for `words`; `None` when there are none (browsing). `may_be_loose(i)` says whether
/// word `i` may also match through a typo or as a prefix; `sku_exists` whether the whole text is
/// an indexed SKU (only then is the SKU clause added).
pub(crate) fn build(
    fields: &Fields,
    synonyms: &AnalyzedSynonyms,
    raw_text: &str,
    words: &Words,
    mode: Mode,
    may_be_loose: &dyn Fn(usize) -> bool,
    sku_exists: bool,
) -> Option<Box<dyn Query>> {
    if words.tokens.is_empty() {
        return None;
    }
    let last = words.tokens.len() - 1;
    let occur = match mode {
        Mode::All => Occur::Must,
        Mode::Any => Occur::Should,
    };
    let per_word: Vec<(Occur, Box<dyn Query>)> = words
        .tokens
        .iter()
        .enumerate()
        .map(|(i, token)| {
            let mut ways = vec![exact(fields, std::slice::from_ref(token))];
            if let Some(alts) = synonyms.get(token) {
                ways.extend(alts.iter().map(|alt| exact(fields, alt)));
            }
            if may_be_loose(i)
                && let Some(l) = loose(fields, &words.typed[i], i == last && words.last_is_prefix)
            {
                ways.push(l);
            }
            let q: Box<dyn Query> = if ways.len() == 1 {
                ways.remove(0)
            } else {
                Box::new(DisjunctionMaxQuery::new(ways))
            };
            (occur, q)
        })
        .collect();
    // One word needs no conjunction around it (each wrapper costs per matching document).
    let text: Box<dyn Query> = if per_word.len() == 1 {
        per_word.into_iter().next().map(|(_, q)| q)?
    } else {
        Box::new(BooleanQuery::new(per_word))
    };
    if !sku_exists {
        return Some(text);
    }
    let sku = ConstScoreQuery::new(
        Box::new(TermQuery::new(
            Term::from_field_text(fields.sku_key, &sku_key(raw_text)),
            IndexRecordOption::Basic,
        )),
        SKU,
    );
    Some(Box::new(BooleanQuery::new(vec![
        (Occur::Should, text),
        (Occur::Should, Box::new(sku)),
    ])))
}

/// The tier and the relevance within it of a score.
pub(crate) fn split_score(score: f32) -> (u32, f32) {
    let tier = (score / TIER).floor().max(0.0);
    // A float-to-int cast saturates; tiers are small non-negative integers.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let t = tier as u32;
    (t, score - tier * TIER)
}
