//! What happens when an actor panics: the whole node stops at once, with
//! exit status 70, as after a crash. An actor's state is bound up with its
//! peers' (a supervisor's plan with the executor's queue and the
//! replicator's journal, the lock table with the members' claims), so an
//! actor restarted alone would act on a world it no longer knows; and actix
//! does not restart an actor that panics — it just disappears, leaving a
//! node that answers some requests and not others. A node that stops is
//! what the cluster already handles: its peers declare it dead and take its
//! work back, a replica adopts its evaluations, and the service manager
//! (`restart: unless-stopped` in `docker/compose.yml`, the Kubernetes
//! StatefulSet) starts it again, when it rebuilds everything from its store.
//!
//! Panics in the blocking pool are not actors': they fail the task that
//! awaits them (see `install`).
//!
//! `POST /panic`, mounted with `POST /kill` only under `admin.enable_kill`,
//! makes the actor it names panic in one of its own handlers, so that the
//! policy is tested for each kind of actor.

use std::str::FromStr;

use actix::prelude::*;

/// The exit status of a node stopped by a panic (EX_SOFTWARE).
pub const PANIC_EXIT: i32 = 70;

/// Stops the process at the first panic of a thread that runs actors,
/// after logging it. A panic in the blocking pool (unpacking, hashing,
/// sizing what a submission holds) is left to the task that awaits it,
/// which reports it as that task's failure: a submission that made such
/// code panic must fail, not bring the node down again at each restart.
pub fn install() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        if runs_actors() {
            log::error!("{info}; stopping the node so that the cluster takes over its work (exit {PANIC_EXIT})");
            std::process::exit(PANIC_EXIT);
        }
    }));
}

/// Whether this thread runs actors: actix's arbiters and the server's
/// workers have a `System`; the blocking pool's threads do not.
fn runs_actors() -> bool {
    System::try_current().is_some()
}

/// The kinds of actor a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    Store,
    Executor,
    Worker,
    Balancer,
    Membership,
    Coordination,
    Locks,
    Registry,
    /// The supervisor of an evaluation this node supervises.
    Supervisor,
    /// The replicator of an evaluation this node supervises.
    Replicator,
}

impl FromStr for ActorKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Ok(match name {
            "store" => Self::Store,
            "executor" => Self::Executor,
            "worker" => Self::Worker,
            "balancer" => Self::Balancer,
            "membership" => Self::Membership,
            "coordination" => Self::Coordination,
            "locks" => Self::Locks,
            "registry" => Self::Registry,
            "supervisor" => Self::Supervisor,
            "replicator" => Self::Replicator,
            other => return Err(format!("no actor kind {other:?}")),
        })
    }
}

/// Makes the actor of kind `.0` panic: the one that receives it, or the
/// child it hands it to.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "bool")]
pub struct Panic(pub ActorKind);

/// Makes `$actor` panic when it receives a `Panic`.
#[macro_export]
macro_rules! panics_when_told {
    ($actor:ty) => {
        impl ::actix::Handler<$crate::node::fail_stop::Panic> for $actor {
            type Result = bool;

            fn handle(&mut self, msg: $crate::node::fail_stop::Panic, _: &mut Self::Context) -> bool {
                panic!("{:?} told to panic (POST /panic)", msg.0)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn actor_threads_stop_the_node_and_the_blocking_pool_does_not() {
        assert!(runs_actors());
        assert!(!actix_web::rt::task::spawn_blocking(runs_actors).await.unwrap());
        let panicked = actix_web::rt::task::spawn_blocking(|| panic!("a hostile archive")).await;
        assert!(panicked.unwrap_err().is_panic(), "the awaiting task sees the panic as its error");
    }
}
