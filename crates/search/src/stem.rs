//! Stemming with a per-analyzer cache.
//!
//! A catalog repeats a small vocabulary across millions of products, and the Snowball stemmer
//! was a sixth of the indexing time; remembering each word's stem removes nearly all of it. The
//! stems are tantivy's own (`Stemmer::new(Language::English)`), so results are unchanged.

use std::collections::HashMap;

use tantivy::tokenizer::{
    Language, RawTokenizer, Stemmer, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};

/// Words remembered per analyzer before the cache starts over (bounds memory on catalogs
/// with an open vocabulary).
const CACHE_WORDS_MAX: usize = 200_000;

/// A token filter stemming words of its language, remembering each stem.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CachedStemmer(pub(crate) Language);

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerTokenizer<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> CachedStemmerTokenizer<T> {
        CachedStemmerTokenizer {
            inner,
            cache: HashMap::new(),
            stemmer: TextAnalyzer::builder(RawTokenizer::default())
                .filter(Stemmer::new(self.0))
                .build(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct CachedStemmerTokenizer<T> {
    inner: T,
    cache: HashMap<String, String>,
    stemmer: TextAnalyzer,
}

impl<T: Tokenizer> Tokenizer for CachedStemmerTokenizer<T> {
    type TokenStream<'a> = CachedStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            cache: &mut self.cache,
            stemmer: &mut self.stemmer,
        }
    }
}

pub(crate) struct CachedStemmerStream<'a, S> {
    tail: S,
    cache: &'a mut HashMap<String, String>,
    stemmer: &'a mut TextAnalyzer,
}

impl<S: TokenStream> TokenStream for CachedStemmerStream<'_, S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        if let Some(stem) = self.cache.get(&token.text) {
            token.text.clone_from(stem);
            return true;
        }
        let stem = {
            let mut stream = self.stemmer.token_stream(&token.text);
            if stream.advance() {
                stream.token().text.clone()
            } else {
                token.text.clone()
            }
        };
        if self.cache.len() >= CACHE_WORDS_MAX {
            self.cache.clear();
        }
        self.cache
            .insert(std::mem::replace(&mut token.text, stem.clone()), stem);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::tokenizer::{LowerCaser, SimpleTokenizer};

    fn run(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut s = analyzer.token_stream(text);
        while s.advance() {
            out.push(s.token().text.clone());
        }
        out
    }

    #[test]
    fn the_cached_stems_are_tantivys() {
        let texts = [
            (
                Language::English,
                "Running chairs and tables, running chairs again; generously running",
                "run",
            ),
            (
                Language::German,
                "Stühle und Tische, Stühle wieder",
                "stuhl",
            ),
        ];
        for (language, text, first) in texts {
            let mut cached = TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(LowerCaser)
                .filter(CachedStemmer(language))
                .build();
            let mut plain = TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(LowerCaser)
                .filter(Stemmer::new(language))
                .build();
            let expected = run(&mut plain, text);
            assert_eq!(run(&mut cached, text), expected);
            // Again, now from the cache.
            assert_eq!(run(&mut cached, text), expected);
            assert_eq!(expected[0], first);
        }
    }
}
