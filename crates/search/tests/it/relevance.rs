//! The relevance harness on the hand-labelled set shipped with the tests.

use search::{BusinessWeights, LabelledSet, Matching, TenantConfig};

fn labelled() -> LabelledSet {
    LabelledSet::from_json(include_str!("../data/labelled.json")).unwrap()
}

fn indexed(set: &LabelledSet, config: TenantConfig) -> search::SearchIndex {
    set.index(config).unwrap()
}

#[test]
fn the_labelled_set_scores_well() {
    let set = labelled();
    assert!(set.queries.len() >= 15);
    let report = set
        .evaluate(
            &indexed(&set, TenantConfig::new(&[set.currency])),
            Matching::All,
        )
        .unwrap();
    for q in &report.queries {
        // Each query finds its best product on the first page.
        assert!(q.reciprocal_rank > 0.0, "{} found nothing relevant", q.id);
    }
    assert!(report.ndcg_10 >= 0.85, "nDCG@10 {:.3}", report.ndcg_10);
    assert!(report.mrr >= 0.85, "MRR {:.3}", report.mrr);
    // Every word must match: partially relevant products (graded 1, often sharing one word)
    // are out by design.
    assert!(
        report.recall_100 >= 0.6,
        "recall@100 {:.3}",
        report.recall_100
    );

    // Any word, more words first: the partial matches come back below the full ones.
    let any = set
        .evaluate(
            &indexed(&set, TenantConfig::new(&[set.currency])),
            Matching::Any,
        )
        .unwrap();
    assert!(any.recall_100 >= 0.9, "recall@100 {:.3}", any.recall_100);
    assert!(any.ndcg_10 >= 0.85, "nDCG@10 {:.3}", any.ndcg_10);
}

#[test]
fn the_harness_tells_a_worse_ranker_from_a_better_one() {
    // A ranker that ignores the text and sorts by popularity alone must score far lower:
    // the harness measures the ranking, not just that something came back.
    let set = labelled();
    let good = set
        .evaluate(
            &indexed(&set, TenantConfig::new(&[set.currency])),
            Matching::All,
        )
        .unwrap();
    let mut popularity_only = set.clone();
    for q in &mut popularity_only.queries {
        q.text = String::new();
    }
    let bad = popularity_only
        .evaluate(
            &indexed(&set, {
                let mut c = TenantConfig::new(&[set.currency]);
                c.business = BusinessWeights::default();
                c
            }),
            Matching::All,
        )
        .unwrap();
    assert!(
        bad.ndcg_10 + 0.3 < good.ndcg_10,
        "{} vs {}",
        bad.ndcg_10,
        good.ndcg_10
    );
}

fn patterns() -> LabelledSet {
    LabelledSet::from_json(include_str!("../data/patterns.json")).unwrap()
}

#[test]
fn the_default_beats_plain_bm25_on_the_pattern_set() {
    // 120 products, 54 queries in seven patterns (product type last, a modifier some
    // relevant products lack, a short page of full matches, stem conflations, a rare decisive
    // word, typos, number-and-unit tokens), judged by hand; the baseline is computed here, on
    // the same set.
    let set = patterns();
    assert!(set.products.len() >= 120 && set.queries.len() >= 54);
    let index = indexed(&set, TenantConfig::new(&[set.currency]));
    let ours = set.evaluate(&index, Matching::default()).unwrap();
    let base = set.evaluate_bm25().unwrap();
    assert!(
        ours.ndcg_10 >= base.ndcg_10 + 0.05,
        "nDCG@10 {:.3} vs BM25 {:.3}",
        ours.ndcg_10,
        base.ndcg_10
    );
    assert!(ours.mrr >= base.mrr && ours.recall_100 >= base.recall_100);
    let ours = ours.by_pattern();
    let base = base.by_pattern();
    assert_eq!(ours.len(), 7);
    for (pattern, s) in &ours {
        let b = &base[pattern];
        assert!(s.mrr >= 0.9, "{pattern}: MRR {:.3}", s.mrr);
        assert!(s.ndcg_10 >= 0.9, "{pattern}: nDCG@10 {:.3}", s.ndcg_10);
        assert!(
            s.recall_100 >= 0.9,
            "{pattern}: recall@100 {:.3}",
            s.recall_100
        );
        assert!(
            s.ndcg_10 > b.ndcg_10 && s.mrr >= b.mrr && s.recall_100 >= b.recall_100,
            "{pattern}: nDCG@10 {:.3} vs BM25 {:.3}",
            s.ndcg_10,
            b.ndcg_10
        );
    }
}

#[test]
fn the_default_beats_plain_bm25_in_german() {
    // 24 German products, 8 queries: compounds (`schreibtisch` finds `Kinderschreibtisch`,
    // not `Schreibtischlampe`), plurals with umlauts (`stühle`), a unit; the baseline stems
    // German too.
    let set = LabelledSet::from_json(include_str!("../data/patterns-de.json")).unwrap();
    assert_eq!(set.language().unwrap(), search::Locale::German);
    let index = indexed(&set, set.config().unwrap());
    let ours = set.evaluate(&index, Matching::default()).unwrap();
    let base = set.evaluate_bm25().unwrap();
    assert!(ours.ndcg_10 >= 0.9, "nDCG@10 {:.3}", ours.ndcg_10);
    assert!(
        ours.ndcg_10 > base.ndcg_10 + 0.2 && ours.mrr >= base.mrr,
        "nDCG@10 {:.3} vs BM25 {:.3}",
        ours.ndcg_10,
        base.ndcg_10
    );
    assert!(ours.recall_100 > base.recall_100);
    // Every query finds a relevant product first.
    assert!(ours.queries.iter().all(|q| q.reciprocal_rank == 1.0));
}

#[test]
fn the_baseline_is_a_real_bm25() {
    // It finds by words (any of them) and ranks by their rarity: a query's rare word puts its
    // product first, and a word in no product finds nothing.
    let set = patterns();
    let report = set.evaluate_bm25().unwrap();
    let tardis = report.queries.iter().find(|q| q.id == "rw-tardis").unwrap();
    assert_eq!(tardis.reciprocal_rank, 1.0);
    let typo = report.queries.iter().find(|q| q.id == "ty-kettel").unwrap();
    assert_eq!(typo.recall_100, 0.0, "plain BM25 has no typo tolerance");
}
