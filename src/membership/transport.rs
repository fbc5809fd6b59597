//! How the `Membership` actor reaches its peers: one trait, so that its tests
//! can wire several actors together in memory, and the real implementation
//! over HTTP (`POST /join`, `/mystats`, `/probe`) through the `PeerClient`.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::model::{Ack, IndirectAck, MemberInfo, Ping, PingReq};
use crate::peer::{PeerClient, PeerError};

pub trait Transport {
    fn join(&self, seed: &str, me: MemberInfo) -> LocalBoxFuture<'static, Result<Vec<MemberInfo>, PeerError>>;
    fn ping(&self, target: &str, ping: Ping, timeout: Duration) -> LocalBoxFuture<'static, Result<Ack, PeerError>>;
    fn ping_req(
        &self,
        via: &str,
        req: PingReq,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<IndirectAck, PeerError>>;
}

/// The answer of `POST /join`.
#[derive(Deserialize)]
struct Joined {
    members: Vec<MemberInfo>,
}

impl Transport for PeerClient {
    fn join(&self, seed: &str, me: MemberInfo) -> LocalBoxFuture<'static, Result<Vec<MemberInfo>, PeerError>> {
        let (client, seed) = (self.clone(), seed.to_owned());
        async move { client.post::<_, Joined>(&seed, "/join", &me).await.map(|j| j.members) }.boxed_local()
    }

    fn ping(&self, target: &str, ping: Ping, timeout: Duration) -> LocalBoxFuture<'static, Result<Ack, PeerError>> {
        let (client, target) = (self.clone(), target.to_owned());
        async move { client.post_within(&target, "/mystats", &ping, Some(timeout)).await }.boxed_local()
    }

    fn ping_req(
        &self,
        via: &str,
        req: PingReq,
        timeout: Duration,
    ) -> LocalBoxFuture<'static, Result<IndirectAck, PeerError>> {
        let (client, via) = (self.clone(), via.to_owned());
        async move { client.post_within(&via, "/probe", &req, Some(timeout)).await }.boxed_local()
    }
}
