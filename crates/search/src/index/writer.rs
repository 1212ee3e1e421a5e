//! The index's single writer: stages upserts, retirements and deletes, then commits them whole
//! with the change-log offset they reach, or rolls them back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::MutexGuard;

use commerce_core::{ProductId, ProductProjection, ProductStatus};
use tantivy::{IndexWriter, TantivyDocument, Term};

use super::{Embedded, Payload, SearchIndex, open_writer};
use crate::schema::RatingState;
use crate::{Error, Result, lock};

impl SearchIndex {
    /// The index's only writer. Changes are invisible until [`IndexWriterGuard::commit`];
    /// a guard dropped without committing rolls its changes back.
    pub fn writer(&self) -> IndexWriterGuard<'_> {
        IndexWriterGuard {
            index: self,
            writer: lock(&self.writer),
            staged: HashSet::new(),
            pending: Vec::new(),
            pending_at: HashMap::new(),
            unvectored: HashSet::new(),
            committed_empty: self.reader.searcher().segment_readers().is_empty(),
            committed: false,
        }
    }
}

/// The index's writer, held exclusively. Dropped without [`IndexWriterGuard::commit`], it rolls
/// back what it staged: a batch is committed whole or not at all.
pub struct IndexWriterGuard<'a> {
    index: &'a SearchIndex,
    writer: MutexGuard<'a, Option<IndexWriter>>,
    /// Products added in this batch (so a second upsert replaces the first).
    staged: HashSet<ProductId>,
    /// With an embedder: active products' documents waiting for their vectors, which are
    /// computed in batches at the commit (`None`: replaced or removed later in the batch).
    pending: Vec<Option<Pending>>,
    /// Where each product's pending document is in `pending`.
    pending_at: HashMap<ProductId, usize>,
    /// Products this batch retired, deleted or left without a vector.
    unvectored: HashSet<ProductId>,
    /// The committed index held no segment when the guard was taken (a bulk load): nothing to
    /// delete but what this batch added.
    committed_empty: bool,
    committed: bool,
}

/// An active product's document and the text its vector is made from.
struct Pending {
    id: ProductId,
    doc: TantivyDocument,
    text: String,
    /// `text`'s hash.
    hash: u64,
    /// The vector the product keeps (its text unchanged since it was embedded): `Some(None)`
    /// for a text with no direction; `None` to embed.
    reuse: Option<Option<Vec<f32>>>,
}

/// Texts embedded per call at a commit.
const EMBED_BATCH: usize = 64;

impl std::fmt::Debug for IndexWriterGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriterGuard")
            .field("tenant", &self.index.tenant)
            .finish_non_exhaustive()
    }
}

impl IndexWriterGuard<'_> {
    /// The tantivy writer, opened afresh if a rollback could not reopen it.
    fn w(&mut self) -> Result<&mut IndexWriter> {
        if self.writer.is_none() {
            let index = self.index.reader.searcher().index().clone();
            *self.writer = Some(open_writer(&index, &self.index.config)?);
        }
        self.writer
            .as_mut()
            .ok_or_else(|| Error::invalid("writer", "no writer"))
    }

    /// Stages a product: replaces any indexed copy; a retired product leaves a tombstone.
    ///
    /// This is a raw write (a bulk load, a test): the projection's rating is indexed as not
    /// coming from a rating event, so the next `ProductRatingChanged` the pipeline reads
    /// replaces it. The pipeline and [`crate::reconcile`] keep the rating they hold instead.
    ///
    /// # Errors
    /// [`Error::Unindexable`] for a product the schema cannot hold (nothing is staged).
    pub fn upsert(&mut self, p: &ProductProjection) -> Result<()> {
        self.upsert_rated(p, 0)
    }

    /// Stages a product whose rating signal came from the rating event numbered `rating_seq`.
    pub(crate) fn upsert_rated(&mut self, p: &ProductProjection, rating_seq: u64) -> Result<()> {
        if p.status == ProductStatus::Retired {
            let rating = RatingState {
                rating: p.signals.rating,
                review_count: p.signals.review_count,
                seq: rating_seq,
            };
            return self.retire_rated(&p.product_id, p.version, &rating);
        }
        let doc = self.index.fields.document(p, rating_seq)?;
        if self.index.config.embedder.is_some() {
            self.remove_staged(&p.product_id)?;
            self.pending_at
                .insert(p.product_id.clone(), self.pending.len());
            let text = crate::schema::embedding_text(p);
            let hash = super::text_hash(&text);
            let reuse = self
                .index
                .vectors()
                .and_then(|v| v.reusable(&p.product_id, hash));
            self.pending.push(Some(Pending {
                id: p.product_id.clone(),
                doc,
                text,
                hash,
                reuse,
            }));
            return Ok(());
        }
        self.replace_with(&p.product_id, doc)
    }

    /// Queues the removal of what the index (or this batch) holds of `id`, a pending document
    /// included.
    fn remove_staged(&mut self, id: &ProductId) -> Result<()> {
        if let Some(at) = self.pending_at.remove(id) {
            self.pending[at] = None;
        }
        let term = Term::from_field_text(self.index.fields.product_id, id.as_str());
        let staged_before = !self.staged.insert(id.clone());
        if staged_before
            || (!self.committed_empty && self.index.reader.searcher().doc_freq(&term)? > 0)
        {
            self.w()?.delete_term(term);
        }
        Ok(())
    }

    /// Removes what the index (or this batch) holds of `id`, then adds `doc`. A delete is only
    /// queued when there may be something to delete: tantivy keeps every queued delete until
    /// the commit, and for a bulk load of new products that was most of the memory.
    fn replace_with(&mut self, id: &ProductId, doc: TantivyDocument) -> Result<()> {
        self.remove_staged(id)?;
        if self.index.config.embedder.is_some() {
            self.unvectored.insert(id.clone());
        }
        self.w()?.add_document(doc)?;
        Ok(())
    }

    /// Stages the retirement of a product at `version`: it leaves search, and changes older
    /// than `version` will be skipped by the pipeline.
    ///
    /// # Errors
    /// [`Error::Index`] when the writer has failed.
    pub fn retire(&mut self, id: &ProductId, version: u64) -> Result<()> {
        self.retire_rated(id, version, &RatingState::default())
    }

    /// Stages the retirement of a product at `version`, its tombstone keeping `rating`.
    pub(crate) fn retire_rated(
        &mut self,
        id: &ProductId,
        version: u64,
        rating: &RatingState,
    ) -> Result<()> {
        let doc = self.index.fields.tombstone(id.as_str(), version, rating);
        self.replace_with(id, doc)
    }

    /// Stages a product known only by its rating, until its first upsert.
    pub(crate) fn await_product(&mut self, id: &ProductId, rating: &RatingState) -> Result<()> {
        let doc = self.index.fields.awaiting(id.as_str(), rating);
        self.replace_with(id, doc)
    }

    /// Stages the removal of every trace of a product, tombstone included.
    ///
    /// # Errors
    /// [`Error::Index`] when the writer has failed and cannot be reopened.
    pub fn delete(&mut self, id: &ProductId) -> Result<()> {
        if let Some(at) = self.pending_at.remove(id) {
            self.pending[at] = None;
        }
        if self.index.config.embedder.is_some() {
            self.unvectored.insert(id.clone());
        }
        let term = Term::from_field_text(self.index.fields.product_id, id.as_str());
        self.w()?.delete_term(term);
        Ok(())
    }

    /// Commits what was staged, records `next_offset` (or keeps the current one) in the commit,
    /// and makes it searchable before returning.
    ///
    /// # Errors
    /// [`Error::Index`] when the commit fails; nothing of the batch is then visible.
    pub fn commit(self, next_offset: Option<u64>) -> Result<()> {
        let mut position = self.index.position();
        if let Some(offset) = next_offset {
            position.next_offset = offset;
        }
        self.commit_position(position)
    }

    /// Commits what was staged with the offsets of a partitioned log: each listed partition's
    /// next offset is recorded (others keep theirs), atomically with the documents.
    ///
    /// # Errors
    /// [`Error::Index`] when the commit fails; nothing of the batch is then visible.
    pub fn commit_partitions(self, offsets: &BTreeMap<u32, u64>) -> Result<()> {
        let mut position = self.index.position();
        position
            .partitions
            .extend(offsets.iter().map(|(p, o)| (*p, *o)));
        self.commit_position(position)
    }

    /// Embeds the pending documents' texts in batches and adds the documents with their
    /// vectors; answers the vectors to hold once committed (`None`: the text has no
    /// direction, the product keeps no vector).
    fn add_pending(&mut self) -> Result<Vec<Embedded>> {
        let Some(embedder) = self.index.config.embedder.clone() else {
            return Ok(Vec::new());
        };
        let Some(field) = self.index.fields.embedding else {
            return Ok(Vec::new());
        };
        let (kept, pending): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .flatten()
            .partition(|p| p.reuse.is_some());
        self.pending_at.clear();
        let mut out = Vec::with_capacity(pending.len() + kept.len());
        for p in kept {
            let v = p.reuse.flatten();
            let mut doc = p.doc;
            doc.add_bytes(
                field,
                &crate::schema::vector_bytes(v.as_deref().unwrap_or(&[])),
            );
            self.w()?.add_document(doc)?;
            out.push((p.id, p.hash, v));
        }
        for chunk in pending.chunks(EMBED_BATCH) {
            let texts: Vec<&str> = chunk.iter().map(|p| p.text.as_str()).collect();
            let vectors = embedder.embed(&texts)?;
            if vectors.len() != texts.len() {
                return Err(Error::Embedder(format!(
                    "{} answered {} vectors for {} texts",
                    embedder.model(),
                    vectors.len(),
                    texts.len()
                )));
            }
            for (p, v) in chunk.iter().zip(vectors) {
                if v.len() != embedder.dims() || !v.iter().all(|x| x.is_finite()) {
                    return Err(Error::Embedder(format!(
                        "{} answered a vector of {} numbers (not all finite, or not {})",
                        embedder.model(),
                        v.len(),
                        embedder.dims()
                    )));
                }
                let mut doc = p.doc.clone();
                // A text with no direction stores an empty vector: embedded, nothing to hold.
                let directed = v.iter().any(|x| *x != 0.0);
                let stored = if directed { v.as_slice() } else { &[] };
                doc.add_bytes(field, &crate::schema::vector_bytes(stored));
                self.w()?.add_document(doc)?;
                out.push((p.id.clone(), p.hash, directed.then_some(v)));
            }
        }
        Ok(out)
    }

    fn commit_position(mut self, mut position: Payload) -> Result<()> {
        let vectors = self.add_pending()?;
        if let Some(e) = &self.index.config.embedder {
            e.model().clone_into(&mut position.embedding_model);
        }
        let payload =
            serde_json::to_string(&position).map_err(|e| Error::Payload(e.to_string()))?;
        let mut prepared = self.w()?.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.committed = true;
        *lock(&self.index.position) = position;
        self.index.reader.reload()?;
        if let Some(mut held) = self.index.vectors_mut() {
            for id in &self.unvectored {
                held.forget(id);
            }
            held.hold(vectors);
        }
        // Build the new generation's facet vocabularies now, not on the next query.
        self.index.vocab(&self.index.reader.searcher())?;
        Ok(())
    }
}

impl Drop for IndexWriterGuard<'_> {
    /// Rolls back what was staged. tantivy's own `rollback` leaves the old writer's merge
    /// threads running, and a merge that finishes after later commits can bring back documents
    /// those commits deleted (a product indexed twice). So the old writer is retired whole:
    /// its workers stop (their segments are never committed) and its merges are waited for;
    /// then a fresh writer takes over. If that fails, the next use of the guard reopens it.
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Some(old) = self.writer.take() {
            let _ = old.wait_merging_threads();
            let index = self.index.reader.searcher().index().clone();
            *self.writer = open_writer(&index, &self.index.config).ok();
        }
    }
}
