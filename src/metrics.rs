//! The node's metrics, served by `GET /metrics` in the OpenMetrics text
//! format that Prometheus scrapes (`prometheus-client`).
//!
//! What is counted as it happens lives here, one set per process (a node is
//! a process): modules run by outcome and their wall times (the executor),
//! membership changes (membership), requests to peers and their latency
//! (the peer client), adoptions. What is a state is read from the actors at
//! each scrape (`api::node::metrics`): evaluations by status, slots, slots
//! busy, queue depth, members by status.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// The route, its ids and hashes replaced by `{}`, so that its values stay few.
    pub route: String,
    /// `ok`, or `error` when the peer could not be reached or refused.
    pub result: String,
}

pub struct Metrics {
    pub evaluations: Family<StatusLabel, Gauge>,
    pub slots: Gauge,
    pub slots_busy: Gauge,
    pub queue_depth: Gauge,
    pub members: Family<StatusLabel, Gauge>,
    pub modules: Family<OutcomeLabel, Counter>,
    pub module_wall: Histogram,
    pub membership_changes: Family<KindLabel, Counter>,
    pub peer_requests: Family<PeerLabel, Counter>,
    pub peer_seconds: Family<PeerLabel, Histogram>,
    pub adoptions: Counter,
    registry: Registry,
}

/// This process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Self {
        let peer_seconds =
            Family::<PeerLabel, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 4.0, 9)));
        let m = Self {
            evaluations: Family::default(),
            slots: Gauge::default(),
            slots_busy: Gauge::default(),
            queue_depth: Gauge::default(),
            members: Family::default(),
            modules: Family::default(),
            // 10 ms to about 45 minutes.
            module_wall: Histogram::new(exponential_buckets(0.01, 3.0, 14)),
            membership_changes: Family::default(),
            peer_requests: Family::default(),
            peer_seconds,
            adoptions: Counter::default(),
            registry: Registry::with_prefix("evalmesh"),
        };
        let mut r = Registry::with_prefix("evalmesh");
        r.register("evaluations", "Evaluations this node holds, by status", m.evaluations.clone());
        r.register("slots", "Test runs this node runs at once", m.slots.clone());
        r.register("slots_busy", "Slots running a job now", m.slots_busy.clone());
        r.register("queue_depth", "Jobs waiting for a slot", m.queue_depth.clone());
        r.register("members", "Members this node knows, by status", m.members.clone());
        r.register("modules", "Modules this node ran, by outcome", m.modules.clone());
        r.register("module_wall_seconds", "Wall time of the modules this node ran", m.module_wall.clone());
        r.register("membership_changes", "Members that joined, died, left or came back", m.membership_changes.clone());
        r.register("peer_requests", "Requests to peers, by route and result", m.peer_requests.clone());
        r.register("peer_request_seconds", "Latency of requests to peers", m.peer_seconds.clone());
        r.register("adoptions", "Evaluations this node adopted from a dead supervisor", m.adoptions.clone());
        Self { registry: r, ..m }
    }

    /// Counts a request to a peer.
    pub fn peer_request(&self, path: &str, ok: bool, took: Duration) {
        let label = PeerLabel { route: route_of(path), result: if ok { "ok" } else { "error" }.to_owned() };
        self.peer_requests.get_or_create(&label).inc();
        self.peer_seconds.get_or_create(&label).observe(took.as_secs_f64());
    }

    /// The text a scrape answers.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String never fails");
        out
    }
}

/// `path` without its query, each id, hash or number replaced by `{}`.
fn route_of(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let generic = |s: &str| {
        uuid::Uuid::parse_str(s).is_ok()
            || (s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    };
    path.split('/').map(|s| if generic(s) { "{}" } else { s }).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_keep_their_shape_not_their_ids() {
        assert_eq!(route_of("/evaluation/0b9c5a1e-1c2d-4e5f-8a9b-0c1d2e3f4a5b?scope=local"), "/evaluation/{}");
        assert_eq!(route_of(&format!("/blob/{}", "ab".repeat(32))), "/blob/{}");
        assert_eq!(route_of("/replica/7/12"), "/replica/{}/{}");
        assert_eq!(route_of("/execute_module"), "/execute_module");
    }
}
