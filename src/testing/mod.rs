//! What the actors' tests share: the in-memory network (`SimNet`), stand-ins
//! for the actors an actor under test asks (`Cluster`), and the helpers that
//! let a test's actors run under paused time.

mod cluster;
pub mod fixtures;
mod net;
pub mod serve;
mod sim;

pub use cluster::Cluster;
pub use net::{Router, Sent, SimNet};

/// Lets every actor and task that is ready run, without moving the clock.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}
