//! The model: configuration, decoder, custom ops, and checkpoints. Knows nothing of front ends.

pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod ops;

pub use cache::Cache;
pub use checkpoint::Checkpoint;
pub use config::{Config, FastOptimizer};
pub use decoder::{Ltm, Pass, Prefix};
