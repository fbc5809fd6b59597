//! What a hostile client or a hostile peer can send, generated (proptest):
//! none of it may crash a node, make it write outside its data folder, or
//! leave behind anything it refused.
//!
//! - `archives`: `intake::unpack` on generated hostile zips and on random
//!   bytes, in a scratch folder whose surroundings are checked after each.
//! - `uploads`: hostile zips posted to `POST /evaluation` of a real node.
//! - `wire`: the JSON of every peer route, deserialized from random bytes,
//!   random JSON and generated valid values.
//! - `peer_routes`: generated bodies and headers sent to every peer route of a
//!   real node.
//!
//! Every suite runs a bounded number of cases so that `cargo nextest run`
//! stays fast; `PROPTEST_CASES=N` runs N cases of each instead. A failing case
//! is saved in `tests/proptest-regressions/` and replayed first on later runs;
//! each real finding also has a named plain test next to the code it fixed.

#[path = "../common/mod.rs"]
mod common;

mod archives;
mod bodies;
mod peer_routes;
mod uploads;
mod wire;
mod zips;

use proptest::test_runner::Config as ProptestConfig;

/// A suite's bounds: `cases` unless `PROPTEST_CASES` says otherwise, each
/// case in a child process killed after `timeout_ms` (`0`: run in this
/// process, for suites that drive a node of their own), and shrinking
/// given up after 30 s so that a failure is reported within the CI budget.
pub fn config(cases: u32, timeout_ms: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, timeout: timeout_ms, max_shrink_time: 30_000, ..ProptestConfig::default() }
}
