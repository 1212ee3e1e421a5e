//! The in-memory journal runs the journal conformance suite, as the Postgres journal will.

saga::saga_journal_conformance!(saga::InMemoryJournal::new());

mod admission {
    saga::admission_queue_conformance!(saga::InMemoryAdmissionQueue::new());
}
