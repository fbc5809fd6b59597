pub mod intake;
pub mod model;
pub mod plan;
pub mod registry;
pub mod report;
pub mod supervisor;
