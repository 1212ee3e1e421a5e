//! From what the shopper typed to a tantivy query.
//!
//! Each query word becomes a disjunction (max, not sum) of its ways to match, each worth a
//! number of tiers times the word's weight `w` (1 to [`WORD_WEIGHT_MAX`], by how rare the word
//! is, see [`word_weight`]):
//!
//! - **as typed**: for a word the stemmer changes (`marbles`, `terminator`, `lighting`), the
//!   word as typed, unstemmed, in title or keywords: 3 tiers, plus BM25F of its stem over title,
//!   keywords and description (title weighted 3, keywords 2);
//! - **exact**: the word's stem, or one of its synonyms, in any of them: 2 tiers plus BM25F
//!   (`marble` for `marbles`, `terminal` for `terminator` rank below the word as typed);
//! - **loose**: within the typo budget for its length (none under 5 letters, 1 from 5, 2 from 9;
//!   never for a word with a digit), or, for the last word while the shopper is still typing,
//!   as a prefix: 1 tier, in title and keywords only.
//!
//! A product's tier is the sum over the words it matches, so the words as typed outrank stems,
//! stems outrank typos, and a rare word outweighs common ones. The whole text also matches a
//! SKU exactly (case-insensitively), worth [`SKU`], which puts that product first.
//!
//! When too few products hold every word, [`build_cover`] asks for products holding some of them
//! (at least one of the rarer ones); the search puts those holding every word first, lifted by
//! [`COMPLETE`].
// Scores are floats by nature; nothing here touches money.
#![allow(clippy::float_arithmetic)]

use std::collections::HashMap;

use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, EnableScoring, Explanation,
    FuzzyTermQuery, Occur, Query, RegexQuery, Scorer, TermQuery, Weight,
};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocId, DocSet, Score, SegmentReader, Term};

use crate::QUERY_TOKENS_MAX;
use crate::schema::{Fields, sku_key};

/// One tier of text match; BM25 of a whole query stays well below it.
pub(crate) const TIER: f32 = 10_000.0;
/// Tiers of a word matched as typed, per unit of its weight.
const TYPED_TIERS: u32 = 3;
/// Tiers of a word matched through its stem or a synonym, per unit of its weight.
const EXACT_TIERS: u32 = 2;
/// Tiers of a word matched through a typo or as a prefix, per unit of its weight.
const LOOSE_TIERS: u32 = 1;
/// The weight of the rarest words; the most common weigh 1.
pub(crate) const WORD_WEIGHT_MAX: u32 = 4;
/// Tiers a partial match gains by holding a query word that names a product type (the head
/// noun of a category's name): a modifier, however rare, does not outrank the thing asked for
/// (`emerald velvet sofa` finds velvet sofas above an emerald velvet cushion). Counted once.
const TYPE_TIERS: u32 = TYPED_TIERS * WORD_WEIGHT_MAX + 1;
/// Tiers added to a product holding every word when partial matches fill the page: more than
/// any product missing a word can reach.
#[allow(clippy::cast_possible_truncation, reason = "a small constant")]
pub(crate) const COMPLETE_TIERS: u32 =
    TYPED_TIERS * (WORD_WEIGHT_MAX * QUERY_TOKENS_MAX as u32 + 1) + TYPE_TIERS + 1;
/// [`COMPLETE_TIERS`] as a score.
#[allow(clippy::cast_precision_loss, reason = "a small constant")]
pub(crate) const COMPLETE: f32 = COMPLETE_TIERS as f32 * TIER;
/// Score of an exact SKU match: above everything else.
#[allow(clippy::cast_precision_loss, reason = "a small constant")]
pub(crate) const SKU: f32 = 2.0 * COMPLETE_TIERS as f32 * TIER + TIER;

/// `tiers` tiers as a score.
#[allow(clippy::cast_precision_loss, reason = "small integers")]
fn tiers(tiers: u32) -> f32 {
    tiers as f32 * TIER
}

/// The weight of a word found in `df` of `docs` products: 1 for the most common words up to
/// [`WORD_WEIGHT_MAX`] for the rarest, growing with the cube of its BM25 idf relative to a word
/// found once, so that a few rare words dominate. A word found nowhere (matched by a typo or
/// as a prefix only, if at all) weighs as the rarest.
pub(crate) fn word_weight(df: u64, docs: u64) -> u32 {
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let (df, n) = (df.max(1) as f64, docs.max(1) as f64);
    let idf = |df: f64| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
    let top = idf(1.0);
    if top <= 0.0 {
        return 1;
    }
    let share = (idf(df) / top).clamp(0.0, 1.0);
    let w = (f64::from(WORD_WEIGHT_MAX) * share.powi(3)).round();
    // Within 1..=WORD_WEIGHT_MAX by the clamp; the cast cannot truncate.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let w = w as u32;
    w.clamp(1, WORD_WEIGHT_MAX)
}

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

/// One word (or one synonym sequence) matched through its stem: BM25F over title, keywords and
/// description (one combined field, see `schema`), plus `EXACT_TIERS × w` tiers on any match.
/// The tiers ride on the BM25 scorer itself ([`Offset`]).
fn exact(fields: &Fields, seq: &[String], w: u32) -> Box<dyn Query> {
    exact_tiers(fields, seq, w, EXACT_TIERS)
}

/// [`exact`] with `per_w` tiers per unit of weight.
fn exact_tiers(fields: &Fields, seq: &[String], w: u32, per_w: u32) -> Box<dyn Query> {
    if let [token] = seq {
        Box::new(Offset {
            inner: term_query(fields.text, token),
            offset: tiers(per_w * w),
        })
    } else {
        let all: Vec<(Occur, Box<dyn Query>)> = seq
            .iter()
            .map(|t| (Occur::Must, exact(fields, std::slice::from_ref(t), w)))
            .collect();
        let n = seq.len().max(1) as f32;
        Box::new(BoostQuery::new(Box::new(BooleanQuery::new(all)), 1.0 / n))
    }
}

/// What a word as typed (unstemmed) in the title or keywords adds to its [`exact`] match:
/// `(TYPED_TIERS − EXACT_TIERS) × w` tiers. A product holding the typed form holds its stem, so
/// the bonus is a clause of its own beside the word's (one term, no nesting).
fn as_typed(fields: &Fields, typed: &str, w: u32) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(
        Box::new(TermQuery::new(
            Term::from_field_text(fields.loose, typed),
            IndexRecordOption::Basic,
        )),
        tiers((TYPED_TIERS - EXACT_TIERS) * w),
    ))
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

/// Compounds ending with the word (`stuhl` finds `Bürostuhl`): the head of a German or Dutch
/// compound is its last part. Two ways, since a stemmer may cut a compound differently from
/// its head alone (`schreibtisch` stays whole, `kinderschreibtisch` loses its `isch`): stems
/// ending with `token` (any field), and words as written (title and keywords) ending with
/// `typed` and an inflection. None for a word shorter than 4 letters or with anything but
/// letters (it would end too many words, or is not a word).
fn compound_heads(fields: &Fields, token: &str, typed: &str) -> Vec<Box<dyn Query>> {
    let word = |w: &str| w.chars().count() >= 4 && w.chars().all(char::is_alphabetic);
    let mut out: Vec<Box<dyn Query>> = Vec::new();
    if word(token)
        && let Ok(q) = RegexQuery::from_pattern(&format!(".{{3,}}{token}"), fields.text)
    {
        out.push(Box::new(q));
    }
    if word(typed)
        && let Ok(q) = RegexQuery::from_pattern(
            &format!(".{{3,}}{typed}(e|en|er|ern|es|n|s|nen)?"),
            fields.loose,
        )
    {
        out.push(Box::new(q));
    }
    out
}

/// One word matched through a typo or as a prefix; `None` when it has neither.
fn loose(fields: &Fields, typed: &str, prefix: bool, w: u32) -> Option<Box<dyn Query>> {
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
        tiers(LOOSE_TIERS * w),
    )))
}

/// How to ask for a query's words.
pub(crate) struct Ask<'a> {
    pub(crate) fields: &'a Fields,
    pub(crate) synonyms: &'a AnalyzedSynonyms,
    /// The text as typed (for the SKU clause).
    pub(crate) raw_text: &'a str,
    pub(crate) words: &'a Words,
    /// Per word, whether it may also match through a typo or as a prefix.
    pub(crate) may_be_loose: &'a [bool],
    /// Per word, its weight ([`word_weight`]).
    pub(crate) weights: &'a [u32],
    /// Whether the whole text is an indexed SKU (only then is the SKU clause added).
    pub(crate) sku_exists: bool,
    /// Per word, whether it names a product type.
    pub(crate) types: &'a [bool],
    /// Per word found nowhere, the two words it splits into, if the catalog holds both
    /// (`deckerbattery` → `decker battery`).
    pub(crate) splits: &'a [Option<Vec<String>>],
    /// The language compounds: a word also matches the compounds it ends.
    pub(crate) compounds: bool,
}

impl Ask<'_> {
    /// Word `i`'s ways to match, as one query.
    fn word(&self, i: usize) -> Box<dyn Query> {
        let words = self.words;
        let token = &words.tokens[i];
        let typed = &words.typed[i];
        let w = self.weights.get(i).copied().unwrap_or(1);
        // A word the stemmer leaves as typed (`reel`) is matched as typed wherever it matches
        // at all: it gets the typed tiers on its match, as a changed word (`expandable`) gets
        // them through its typed bonus; otherwise stemming alone would favour the words it
        // changes. (Its own bonus clause would cost an eighth of the query time.)
        let per_w = if typed == token {
            TYPED_TIERS
        } else {
            EXACT_TIERS
        };
        let mut ways = vec![exact_tiers(
            self.fields,
            std::slice::from_ref(token),
            w,
            per_w,
        )];
        if let Some(alts) = self.synonyms.get(token) {
            ways.extend(alts.iter().map(|alt| exact(self.fields, alt, w)));
        }
        if let Some(Some(parts)) = self.splits.get(i) {
            ways.push(exact(self.fields, parts, w));
        }
        if self.compounds {
            for head in compound_heads(self.fields, token, typed) {
                ways.push(Box::new(ConstScoreQuery::new(head, tiers(EXACT_TIERS * w))));
            }
        }
        let last = words.tokens.len() - 1;
        if self.may_be_loose.get(i).copied().unwrap_or(false)
            && let Some(l) = loose(self.fields, typed, i == last && words.last_is_prefix, w)
        {
            ways.push(l);
        }
        if ways.len() == 1 {
            ways.remove(0)
        } else {
            Box::new(DisjunctionMaxQuery::new(ways))
        }
    }

    /// The typed-form bonus of every word the stemmer changes, one clause each. A word it
    /// leaves as typed (`lamp`) gets none: measured on the 1 M-product benchmark, a bonus for
    /// every word cost an eighth of the query time (mean 0.60 → 0.67 ms), for what is mostly a
    /// plural's (`lamps`).
    fn typed_bonuses(&self) -> impl Iterator<Item = Box<dyn Query>> + '_ {
        (0..self.words.tokens.len())
            .filter(|i| self.words.typed[*i] != self.words.tokens[*i])
            .map(|i| {
                let w = self.weights.get(i).copied().unwrap_or(1);
                as_typed(self.fields, &self.words.typed[i], w)
            })
    }

    /// The product-type bonus: one clause over the words that name a type.
    fn type_bonus(&self) -> Option<Box<dyn Query>> {
        let words: Vec<(Occur, Box<dyn Query>)> = (0..self.words.tokens.len())
            .filter(|i| self.types.get(*i).copied().unwrap_or(false))
            .map(|i| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.text, &self.words.tokens[i]),
                    IndexRecordOption::Basic,
                ));
                (Occur::Should, q)
            })
            .collect();
        if words.is_empty() {
            return None;
        }
        Some(Box::new(ConstScoreQuery::new(
            Box::new(BooleanQuery::new(words)),
            tiers(TYPE_TIERS),
        )))
    }

    /// `text`, or `text` or the SKU when the whole text is one.
    fn or_sku(&self, text: Box<dyn Query>) -> Box<dyn Query> {
        if !self.sku_exists {
            return text;
        }
        let sku = ConstScoreQuery::new(
            Box::new(TermQuery::new(
                Term::from_field_text(self.fields.sku_key, &sku_key(self.raw_text)),
                IndexRecordOption::Basic,
            )),
            SKU,
        );
        Box::new(BooleanQuery::new(vec![
            (Occur::Should, text),
            (Occur::Should, Box::new(sku)),
        ]))
    }
}

/// `required`, each of `optionals` adding its score where it matches too. Nested one level per
/// optional clause rather than one boolean query with them all: tantivy unions a boolean
/// query's optional clauses into one buffered scorer, whose every seek scores whole windows of
/// the union's postings (for a common word, most of its documents); one optional clause per
/// level is a skip-list seek per required document. Measured on the 1 M-product benchmark.
fn with_optionals(
    required: Box<dyn Query>,
    optionals: impl IntoIterator<Item = Box<dyn Query>>,
) -> Box<dyn Query> {
    optionals.into_iter().fold(required, |q, o| {
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, q),
            (Occur::Should, o),
        ]))
    })
}

/// The query for the words; `None` when there are none (browsing).
pub(crate) fn build(ask: &Ask<'_>, mode: Mode) -> Option<Box<dyn Query>> {
    let n = ask.words.tokens.len();
    if n == 0 {
        return None;
    }
    let occur = match mode {
        Mode::All => Occur::Must,
        Mode::Any => Occur::Should,
    };
    let words: Box<dyn Query> = if n == 1 {
        ask.word(0)
    } else {
        Box::new(BooleanQuery::new(
            (0..n).map(|i| (occur, ask.word(i))).collect(),
        ))
    };
    let mut optionals: Vec<Box<dyn Query>> = ask.typed_bonuses().collect();
    if mode == Mode::Any {
        // (Under `All` every match holds the type words: no bonus to tell them apart.)
        optionals.extend(ask.type_bonus());
    }
    Some(ask.or_sku(with_optionals(words, optionals)))
}

/// The query for products holding some of the words: at least one of the `gate` words, each
/// other word adding to the score of those only; `None` when no word is in the gate.
pub(crate) fn build_cover(ask: &Ask<'_>, gate: &[bool]) -> Option<Box<dyn Query>> {
    let n = ask.words.tokens.len();
    let in_gate = |i: usize| gate.get(i).copied().unwrap_or(false);
    let mut required: Vec<Box<dyn Query>> = (0..n)
        .filter(|i| in_gate(*i))
        .map(|i| ask.word(i))
        .collect();
    let required: Box<dyn Query> = match required.len() {
        0 => return None,
        1 => required.remove(0),
        _ => Box::new(BooleanQuery::new(
            required.into_iter().map(|q| (Occur::Should, q)).collect(),
        )),
    };
    let optionals: Vec<Box<dyn Query>> = (0..n)
        .filter(|i| !in_gate(*i))
        .map(|i| ask.word(i))
        .chain(ask.typed_bonuses())
        .chain(ask.type_bonus())
        .collect();
    Some(ask.or_sku(with_optionals(required, optionals)))
}

/// `score` lifted by [`COMPLETE`]: a product holding every word above every partial match.
pub(crate) fn lift(score: f32) -> f32 {
    score + COMPLETE
}

/// The tier and the relevance within it of a score.
pub(crate) fn split_score(score: f32) -> (u32, f32) {
    let tier = (score / TIER).floor().max(0.0);
    // A float-to-int cast saturates; tiers are small non-negative integers.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let t = tier as u32;
    (t, score - tier * TIER)
}
