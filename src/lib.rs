pub mod api;
pub mod config;
pub mod evaluation;
pub mod executor;
pub mod node;
pub mod store;
