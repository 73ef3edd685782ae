//! ltm — Latent Thought Models: a decoder that thinks (fits a posterior over latent thought
//! vectors to the prompt) before it writes.
//!
//! Data flows one way: `model` (checkpoint → decoder) → `think` (fast learning of the
//! posterior) → `generate` (writing with a KV cache) → `engine` (one thread owning the model,
//! speaking typed events) → front ends (CLI, TUI).

pub mod chart;
pub mod cli;
pub mod device;
pub mod dirs;
pub mod engine;
pub mod fsutil;
pub mod generate;
pub mod limits;
pub mod model;
pub mod noise;
pub mod progress;
pub mod runtime;
pub mod speed;
pub mod tasks;
pub mod text;
pub mod think;
pub mod threads;
pub mod train;
pub mod tui;
