//! The routes each actor answers, as a `Router` of the simulated network:
//! the same route definitions as `api::peer`, handed to the actor directly.

use actix::prelude::*;

use super::Router;
use crate::coordination::{Coordination, ElectionAnswer, HandleCoordinator, HandleElection};
use crate::locks::{HandleAcquire, HandleHoldings, HandleRelease, Locks};
use crate::membership::{HandleJoin, HandlePing, HandlePingReq, Membership};
use crate::peer::routes::{self, CoordinatorAck, Joined};
use crate::peer::PeerError;
use crate::store::{ApplyReplica, ClaimTerm, GetSnapshot, GetSummary, Store};

/// An actor that did not answer: the node fails the call, as its server would.
fn lost(e: MailboxError) -> PeerError {
    PeerError::Status { url: String::new(), status: 500, body: e.to_string() }
}

/// Sends `msg` to `actor` and maps the answer.
fn ask<A, M, T>(
    actor: &Addr<A>,
    msg: M,
    map: impl FnOnce(M::Result) -> T + 'static,
) -> impl std::future::Future<Output = Result<T, PeerError>> + 'static
where
    A: Handler<M>,
    A::Context: actix::dev::ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    let sent = actor.send(msg);
    async move { sent.await.map(map).map_err(lost) }
}

pub fn membership(actor: Addr<Membership>) -> Router {
    let (a, b, c) = (actor.clone(), actor.clone(), actor);
    Router::default()
        .on::<routes::Join, _, _>(move |member| ask(&a, HandleJoin(member), |members| Joined { members }))
        .on::<routes::Mystats, _, _>(move |ping| ask(&b, HandlePing(ping), |ack| ack))
        .on::<routes::Probe, _, _>(move |req| ask(&c, HandlePingReq(req), |ack| ack))
}

pub fn coordination(actor: Addr<Coordination>) -> Router {
    let (a, b) = (actor.clone(), actor);
    Router::default()
        .on::<routes::Election, _, _>(move |m| ask(&a, HandleElection(m.from), |answer| ElectionAnswer { answer }))
        .on::<routes::Coordinator, _, _>(move |m| {
            let coordinator = m.from.clone();
            ask(&b, HandleCoordinator(m.from), |()| CoordinatorAck { coordinator })
        })
}

pub fn locks(actor: Addr<Locks>) -> Router {
    let (a, b, c) = (actor.clone(), actor.clone(), actor);
    Router::default()
        .on::<routes::LockAcquire, _, _>(move |r| ask(&a, HandleAcquire(r), |answer| answer))
        .on::<routes::LockRelease, _, _>(move |r| ask(&b, HandleRelease(r), |answer| answer))
        .on::<routes::LockHoldings, _, _>(move |r| ask(&c, HandleHoldings(r), |holdings| holdings))
}

/// A replica that only stores: `/replicate` applied as it comes, with no
/// blob to fetch; `/replica/{id}` and its snapshot read from the store;
/// `/term` promised by it.
pub fn store(store: Addr<Store>) -> Router {
    let failed =
        |e: crate::store::StoreError| PeerError::Status { url: String::new(), status: 500, body: e.to_string() };
    let missing = || PeerError::Status { url: String::new(), status: 404, body: "no evaluation".into() };
    let (a, b, c, d) = (store.clone(), store.clone(), store.clone(), store);
    Router::default()
        .on::<routes::Replicate, _, _>(move |body| {
            let sent = a.send(ApplyReplica(body));
            async move { sent.await.map_err(lost)?.map_err(failed) }
        })
        .on::<routes::Replica, _, _>(move |at| {
            let sent = b.send(GetSummary(at.id));
            async move { sent.await.map_err(lost)?.map_err(failed)?.ok_or_else(missing) }
        })
        .on::<routes::Snapshot, _, _>(move |at| {
            let sent = c.send(GetSnapshot(at.id));
            async move { sent.await.map_err(lost)?.map_err(failed)?.ok_or_else(missing) }
        })
        .on::<routes::Term, _, _>(move |claim| {
            let sent = d.send(ClaimTerm(claim));
            async move { sent.await.map_err(lost)?.map_err(failed) }
        })
}
