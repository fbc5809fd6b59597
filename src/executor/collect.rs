//! What collecting a project found: the modules the run plan is made of,
//! and the collectors that failed. The launcher reports it (`launcher.py`,
//! `collect` mode) and [`super::results`] reads it.

use std::collections::BTreeMap;

/// What collection found.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Collected {
    /// Module path (relative to the rootdir, '/' separators) → its number of
    /// test items. A module whose import failed is absent.
    pub modules: BTreeMap<String, u32>,
    /// Nodeid of each collector that failed → pytest's text for it, capped.
    /// Mostly a module path ("tests/test_x.py"), but it can be a class
    /// ("tests/test_x.py::TestY", whose module may still be in `modules`), a
    /// folder whose `conftest.py` failed ("tests/sub"), or "" when pytest 7
    /// charges a conftest failure to the whole session.
    pub errors: BTreeMap<String, String>,
    /// The tag of the environment the project runs in ([`super::envs::tag`]),
    /// so that the supervisor can send its modules where it is built; none
    /// from a worker that does not tell it.
    #[serde(default)]
    pub env: Option<String>,
}
