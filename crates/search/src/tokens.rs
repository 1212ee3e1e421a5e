//! The tokenizer for product text and queries: words as tantivy's `SimpleTokenizer` cuts them
//! (runs of letters and digits), except that the numbers shoppers and catalogs write with a unit
//! or as a dimension become one canonical token, so that every way of writing them meets:
//!
//! - a number and its unit, glued or apart, spelled out or abbreviated: `6in`, `6 in`, `6 inch`,
//!   `6-inch`, `6"` → `6in`; `8 ounce`, `8oz` → `8oz`; `200a`, `200 amps` → `200a`; `7qt`,
//!   `7 quart` → `7qt`; `36v`, `36 volt` → `36v`;
//! - fractions and decimals: `3/4` → `3/4`, `1.5` → `1.5` (the dot and slash no longer split
//!   them), with a unit as above: `3/4"` → `3/4in`;
//! - dimensions: `2x4`, `2 x 4`, `22" x 36"` → `2x4`, `22x36` (the units inside dropped).
//!
//! Anything else is left as `SimpleTokenizer` leaves it: model numbers (`rv345`, `4k`), a
//! number before an ordinary word (`5 drawer`), a lone letter after a number (`2 a day`: a
//! one-letter unit counts only glued, `200a`, except `m`, `l`, `v` and `w`, which nothing else
//! spells). A merged token spans the text it came from, so highlighting marks all of it.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Unit spellings (lowercase) and their canonical form.
const UNITS: &[(&str, &str)] = &[
    ("in", "in"),
    ("inch", "in"),
    ("inches", "in"),
    ("ft", "ft"),
    ("foot", "ft"),
    ("feet", "ft"),
    ("yd", "yd"),
    ("yard", "yd"),
    ("yards", "yd"),
    ("mm", "mm"),
    ("cm", "cm"),
    ("m", "m"),
    ("metre", "m"),
    ("metres", "m"),
    ("meter", "m"),
    ("meters", "m"),
    ("km", "km"),
    ("oz", "oz"),
    ("ounce", "oz"),
    ("ounces", "oz"),
    ("lb", "lb"),
    ("lbs", "lb"),
    ("pound", "lb"),
    ("pounds", "lb"),
    ("g", "g"),
    ("gram", "g"),
    ("grams", "g"),
    ("kg", "kg"),
    ("qt", "qt"),
    ("quart", "qt"),
    ("quarts", "qt"),
    ("pt", "pt"),
    ("pint", "pt"),
    ("pints", "pt"),
    ("gal", "gal"),
    ("gallon", "gal"),
    ("gallons", "gal"),
    ("l", "l"),
    ("litre", "l"),
    ("litres", "l"),
    ("liter", "l"),
    ("liters", "l"),
    ("ml", "ml"),
    ("cl", "cl"),
    ("v", "v"),
    ("volt", "v"),
    ("volts", "v"),
    ("a", "a"),
    ("amp", "a"),
    ("amps", "a"),
    ("w", "w"),
    ("watt", "w"),
    ("watts", "w"),
    ("kw", "kw"),
    ("mah", "mah"),
    ("ah", "ah"),
    ("gb", "gb"),
    ("tb", "tb"),
    ("mb", "mb"),
    ("hz", "hz"),
    ("khz", "khz"),
    ("ghz", "ghz"),
    ("tog", "tog"),
];

/// One-letter units that also count when written apart from their number.
const LONE_LETTER_UNITS: &[&str] = &["m", "l", "v", "w"];

/// The canonical form of a unit spelling, if it is one.
fn unit(word: &str) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    UNITS.iter().find(|(s, _)| *s == lower).map(|(_, c)| *c)
}

/// Whether `s` is a number: digits, or digits with one `.` or `/` between digits.
fn is_number(s: &str) -> bool {
    let mut seen_sep = false;
    let mut prev_digit = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            prev_digit = true;
        } else if (c == '.' || c == '/') && prev_digit && !seen_sep {
            seen_sep = true;
            prev_digit = false;
        } else {
            return false;
        }
    }
    prev_digit
}

/// A raw token: byte offsets into the text.
#[derive(Debug, Clone, Copy)]
struct Raw {
    from: usize,
    to: usize,
}

/// The tokenizer (see the module docs). Cheap to clone; keeps its buffers (tokens and their
/// strings) between texts, as indexing calls it for every field of every product.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShopTokenizer {
    out: Tokens,
    raw: Vec<Raw>,
}

/// Tokens whose first `len` are the current text's; the rest are buffers kept for reuse.
#[derive(Debug, Clone, Default)]
struct Tokens {
    tokens: Vec<Token>,
    len: usize,
}

impl Tokens {
    fn push(&mut self, from: usize, to: usize, text: &str) {
        let position = self.len;
        if let Some(t) = self.tokens.get_mut(position) {
            t.offset_from = from;
            t.offset_to = to;
            t.position = position;
            t.position_length = 1;
            t.text.clear();
            t.text.push_str(text);
        } else {
            self.tokens.push(Token {
                offset_from: from,
                offset_to: to,
                position,
                text: text.to_owned(),
                position_length: 1,
            });
        }
        self.len += 1;
    }
}

/// The tokens of one text.
pub(crate) struct ShopTokenStream<'a> {
    tokens: &'a mut [Token],
    next: usize,
}

impl TokenStream for ShopTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

impl Tokenizer for ShopTokenizer {
    type TokenStream<'a> = ShopTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ShopTokenStream<'a> {
        self.out.len = 0;
        raw_tokens(text, &mut self.raw);
        tokenize(text, &self.raw, &mut self.out);
        let len = self.out.len;
        ShopTokenStream {
            tokens: &mut self.out.tokens[..len],
            next: 0,
        }
    }
}

/// Runs of letters and digits, as `SimpleTokenizer` cuts them.
fn raw_tokens(text: &str, out: &mut Vec<Raw>) {
    out.clear();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(Raw { from: s, to: i });
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(Raw {
            from: s,
            to: text.len(),
        });
    }
}

fn tokenize(text: &str, raw: &[Raw], out: &mut Tokens) {
    let word = |r: &Raw| &text[r.from..r.to];
    let between = |a: &Raw, b: &Raw| &text[a.to..b.from];
    let mut i = 0;
    while i < raw.len() {
        let (from, mut to, mut canonical, next) = match number_at(text, raw, i) {
            Some(n) => n,
            None => {
                out.push(raw[i].from, raw[i].to, word(&raw[i]));
                i += 1;
                continue;
            }
        };
        let mut i_next = next;
        // A dimension: `N [unit] x M [unit]`, or glued `NxM`.
        if let Some(x) = raw.get(i_next)
            && word(x).eq_ignore_ascii_case("x")
            && text[to..x.from].trim().is_empty()
            && let Some((_, to2, second, after)) = number_at(text, raw, i_next + 1)
            && between(x, &raw[i_next + 1]).trim().is_empty()
        {
            let strip = |s: &str| {
                s.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .to_owned()
            };
            canonical = format!("{}x{}", strip(&canonical), strip(&second));
            to = to2;
            i_next = after;
        }
        out.push(from, to, &canonical);
        i = i_next;
    }
}

/// The number starting at raw token `i`, with its unit if it has one: `(from, to, canonical,
/// index of the next raw token)`; `None` when token `i` does not start a number.
fn number_at(text: &str, raw: &[Raw], i: usize) -> Option<(usize, usize, String, usize)> {
    let first = raw.get(i)?;
    let w = &text[first.from..first.to];
    if !w.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let digits_end = w.find(|c: char| !c.is_ascii_digit()).unwrap_or(w.len());
    let (digits, suffix) = w.split_at(digits_end);
    if !suffix.is_empty() {
        // Glued: `6in`, `200a`, `2x4`, `18x18x2`.
        let lower = suffix.to_ascii_lowercase();
        if let Some(u) = unit(&lower) {
            return Some((first.from, first.to, format!("{digits}{u}"), i + 1));
        }
        if lower.starts_with('x') && lower[1..].split('x').all(|p| !p.is_empty() && is_number(p)) {
            return Some((first.from, first.to, w.to_ascii_lowercase(), i + 1));
        }
        return None;
    }
    // Digits: maybe a fraction or a decimal with the next run of digits.
    let mut number = digits.to_owned();
    let mut to = first.to;
    let mut next = i + 1;
    if let Some(r) = raw.get(next) {
        let sep = &text[to..r.from];
        let w2 = &text[r.from..r.to];
        if (sep == "/" || sep == ".") && w2.chars().all(|c| c.is_ascii_digit()) {
            number = format!("{number}{sep}{w2}");
            to = r.to;
            next += 1;
        }
    }
    // The unit: a quote mark right after the number, or the next word.
    let rest = &text[to..];
    if rest.starts_with('"') || rest.starts_with('\u{201d}') || rest.starts_with("''") {
        let width = if rest.starts_with("''") {
            2
        } else {
            rest.chars().next().map_or(1, char::len_utf8)
        };
        return Some((first.from, to + width, format!("{number}in"), next));
    }
    if (rest.starts_with('\'') || rest.starts_with('\u{2019}'))
        && !rest.chars().nth(1).is_some_and(|c| c.is_alphanumeric())
    {
        let width = rest.chars().next().map_or(1, char::len_utf8);
        return Some((first.from, to + width, format!("{number}ft"), next));
    }
    if let Some(r) = raw.get(next) {
        let sep = &text[to..r.from];
        let w2 = &text[r.from..r.to];
        let apart = sep.chars().all(|c| c == ' ' || c == '-') && sep.len() <= 2;
        if apart && let Some(u) = unit(w2) {
            let one_letter = w2.chars().count() == 1;
            if !one_letter || LONE_LETTER_UNITS.contains(&u) {
                return Some((first.from, r.to, format!("{number}{u}"), next + 1));
            }
        }
    }
    Some((first.from, to, number, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut t = ShopTokenizer::default();
        let mut s = t.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            out.push(s.token().text.clone());
        }
        out
    }

    #[test]
    fn every_way_of_writing_a_size_meets() {
        for text in [
            "6in", "6 in", "6 inch", "6 inches", "6-inch", "6\"", "6''", "6 IN",
        ] {
            assert_eq!(tokens(text), ["6in"], "{text}");
        }
        assert_eq!(tokens("8 ounce mason jars"), ["8oz", "mason", "jars"]);
        assert_eq!(tokens("8oz"), ["8oz"]);
        assert_eq!(tokens("200a panel"), ["200a", "panel"]);
        assert_eq!(tokens("200 amps"), ["200a"]);
        assert_eq!(tokens("7qt slow cooker"), ["7qt", "slow", "cooker"]);
        assert_eq!(tokens("3/4\" pvc elbow"), ["3/4in", "pvc", "elbow"]);
        assert_eq!(tokens("3.5 litre"), ["3.5l"]);
        assert_eq!(tokens("30 m hose"), ["30m", "hose"]);
        assert_eq!(tokens("10 ft"), ["10ft"]);
        assert_eq!(tokens("10' ladder"), ["10ft", "ladder"]);
    }

    #[test]
    fn dimensions_are_one_token_whatever_their_units() {
        for text in ["2x4", "2 x 4", "2X4", "2\" x 4\"", "2 in x 4 in"] {
            assert_eq!(tokens(text), ["2x4"], "{text}");
        }
        assert_eq!(tokens("black frame 22 x 36"), ["black", "frame", "22x36"]);
        assert_eq!(tokens("18x18x2 cushion"), ["18x18x2", "cushion"]);
    }

    #[test]
    fn other_words_and_numbers_are_left_alone() {
        assert_eq!(
            tokens("black 5 drawer dresser"),
            ["black", "5", "drawer", "dresser"]
        );
        assert_eq!(tokens("rv345 4k tv"), ["rv345", "4k", "tv"]);
        assert_eq!(tokens("take 2 a day"), ["take", "2", "a", "day"]);
        assert_eq!(tokens("the 90's"), ["the", "90", "s"]);
        assert_eq!(tokens("x200 dualband"), ["x200", "dualband"]);
        assert_eq!(tokens("café crème"), ["café", "crème"]);
        assert_eq!(tokens("1/"), ["1"]);
        assert_eq!(tokens("a.b 3."), ["a", "b", "3"]);
    }

    #[test]
    fn a_merged_token_spans_its_text() {
        let mut t = ShopTokenizer::default();
        let text = "Shelf 6 inch deep";
        let mut s = t.token_stream(text);
        let mut spans = Vec::new();
        while s.advance() {
            let tok = s.token();
            spans.push((
                text[tok.offset_from..tok.offset_to].to_owned(),
                tok.position,
            ));
        }
        assert_eq!(
            spans,
            [
                ("Shelf".to_owned(), 0),
                ("6 inch".to_owned(), 1),
                ("deep".to_owned(), 2)
            ]
        );
    }
}
