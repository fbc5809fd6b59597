//! How the `Locks` actor reaches the coordinator and, as coordinator, the
//! other nodes: one trait, so that its tests can wire several actors together
//! in memory, and the real implementation over HTTP (`POST /lock/acquire`,
//! `/lock/release`, `/lock/holdings`) through the `PeerClient`.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;

use super::model::{AcquireAnswer, AcquireRequest, Holdings, HoldingsRequest, ReleaseAnswer, ReleaseRequest};
use crate::peer::{PeerClient, PeerError};

/// Each call gives up after `within`: an answer later than that is stale.
pub trait Transport {
    fn acquire(
        &self,
        to: &str,
        request: AcquireRequest,
        within: Duration,
    ) -> LocalBoxFuture<'static, Result<AcquireAnswer, PeerError>>;
    fn release(
        &self,
        to: &str,
        request: ReleaseRequest,
        within: Duration,
    ) -> LocalBoxFuture<'static, Result<ReleaseAnswer, PeerError>>;
    fn holdings(
        &self,
        to: &str,
        request: HoldingsRequest,
        within: Duration,
    ) -> LocalBoxFuture<'static, Result<Holdings, PeerError>>;
}

impl Transport for PeerClient {
    fn acquire(
        &self,
        to: &str,
        request: AcquireRequest,
        within: Duration,
    ) -> LocalBoxFuture<'static, Result<AcquireAnswer, PeerError>> {
        let (client, to) = (self.clone(), to.to_owned());
        async move { client.post_within(&to, "/lock/acquire", &request, Some(within)).await }.boxed_local()
    }

    fn release(
        &self,
        to: &str,
        request: ReleaseRequest,
        within: Duration,
    ) -> LocalBoxFuture<'static, Result<ReleaseAnswer, PeerError>> {
        let (client, to) = (self.clone(), to.to_owned());
        async move { client.post_within(&to, "/lock/release", &request, Some(within)).await }.boxed_local()
    }

    fn holdings(
        &self,
        to: &str,
        request: HoldingsRequest,
        within: Duration,
    ) -> LocalBoxFuture<'static, Result<Holdings, PeerError>> {
        let (client, to) = (self.clone(), to.to_owned());
        async move { client.post_within(&to, "/lock/holdings", &request, Some(within)).await }.boxed_local()
    }
}
