//! Recommendations: co-purchase, personalized (implicit matrix factorization) and real-time
//! signals, and their blending.
//!
//! **Status: skeleton.** This crate will be filled by a later issue; it builds on
//! [`commerce_core`] ids and events and does no I/O.
