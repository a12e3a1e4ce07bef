//! The commit pipeline every money-moving write goes through (group commit into ledger
//! batches; the ledger's rules are in the `ledger` crate). Reads go straight to the store.

pub mod pipeline;

pub use pipeline::{CommitError, CommitPipeline, PipelineConfig};
