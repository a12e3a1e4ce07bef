//! The ledger area of the service: the commit pipeline every money-moving write goes
//! through. Reads go straight to the store.

pub mod pipeline;

pub use pipeline::{CommitError, CommitPipeline, PipelineConfig};
