//! The relevance harness on the hand-labelled set shipped with the tests.

use search::{
    BusinessWeights, LabelledSet, Matching, SearchIndex, Storage, TenantConfig, TenantId,
};

fn labelled() -> LabelledSet {
    LabelledSet::from_json(include_str!("../data/labelled.json")).unwrap()
}

fn indexed(set: &LabelledSet, config: TenantConfig) -> SearchIndex {
    let index =
        SearchIndex::create(TenantId::new("labelled").unwrap(), config, Storage::Ram).unwrap();
    let mut w = index.writer();
    for p in set.projections().unwrap() {
        w.upsert(&p).unwrap();
    }
    w.commit(None).unwrap();
    index
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
