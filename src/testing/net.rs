//! `SimNet`: an in-memory network for the actors' tests and the
//! simulation. Each node serves a `Router` of the routes it answers, built
//! from the same definitions (`peer::routes`) and the same JSON as the HTTP
//! server, so a request that does not fit its route fails here as it would
//! there. The test decides what the network does: a node that is down,
//! a link cut one way, a node that never answers, delays; every call is
//! logged.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Path, ResourceDef, Url};
use actix_web::web::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;

use crate::peer::routes::{Method, Route};
use crate::peer::{Exchange, LamportClock, Network, PeerError, Peers};

type Handler = Rc<dyn Fn(Exchange) -> LocalBoxFuture<'static, Result<Bytes, PeerError>>>;

/// The routes one node answers.
#[derive(Default, Clone)]
pub struct Router {
    routes: Vec<(Method, ResourceDef, Handler)>,
}

impl Router {
    /// Serves route `R` with `handler`; a handler's error is the answer.
    pub fn on<R, F, Fut>(mut self, handler: F) -> Self
    where
        R: Route,
        F: Fn(R::Request) -> Fut + 'static,
        Fut: Future<Output = Result<R::Reply, PeerError>> + 'static,
    {
        let handler = Rc::new(handler);
        let def = ResourceDef::new(R::PATTERN);
        let served = def.clone();
        let serve: Handler = Rc::new(move |exchange: Exchange| {
            let url = format!("sim://{}", exchange.path);
            let refused = |reason: String| PeerError::Status { url: url.clone(), status: 400, body: reason };
            let request = match R::METHOD {
                Method::Post => {
                    serde_json::from_slice::<R::Request>(&exchange.body).map_err(|e| refused(e.to_string()))
                }
                Method::Get | Method::Head => path_request::<R::Request>(&served, &exchange.path).map_err(refused),
            };
            let handler = handler.clone();
            async move {
                let reply = handler(request?).await?;
                serde_json::to_vec(&reply)
                    .map(Bytes::from)
                    .map_err(|e| PeerError::Decode { url, reason: e.to_string() })
            }
            .boxed_local()
        });
        self.routes.push((R::METHOD, def, serve));
        self
    }

    /// This router's routes and `other`'s: the actors of one node.
    pub fn and(mut self, other: Router) -> Self {
        self.routes.extend(other.routes);
        self
    }

    fn find(&self, method: Method, path: &str) -> Option<Handler> {
        self.routes.iter().find(|(m, def, _)| *m == method && def.is_match(path)).map(|(_, _, h)| h.clone())
    }
}

/// Reads a route's request from the parts of its path.
fn path_request<T: serde::de::DeserializeOwned>(def: &ResourceDef, path: &str) -> Result<T, String> {
    let mut matched = Path::new(Url::new(path.parse().map_err(|e| format!("{e}"))?));
    if !def.capture_match_info(&mut matched) {
        return Err(format!("{path} does not match {}", def.pattern().unwrap_or_default()));
    }
    let fields: serde_json::Map<String, serde_json::Value> =
        matched.iter().map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned()))).collect();
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| e.to_string())
}

/// One call as the network saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub from: String,
    pub to: String,
    pub path: String,
    /// It reached its target's router.
    pub delivered: bool,
}

/// How long a call without a time-out of its own waits, as the node's
/// client does (`cluster.peer_timeout_ms`).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The network of a simulated cluster.
pub struct SimNet {
    routers: RefCell<HashMap<String, Router>>,
    /// Nodes whose process is gone: a call to them is refused at once.
    down: RefCell<BTreeSet<String>>,
    /// Nodes that take requests and never answer: a stalled process.
    mute: RefCell<BTreeSet<String>>,
    /// Links cut one way: (from, to).
    cut: RefCell<BTreeSet<(String, String)>>,
    /// How long every request takes to arrive, and every answer to return.
    latency: Cell<Duration>,
    log: RefCell<Vec<Sent>>,
}

impl SimNet {
    pub fn new() -> Rc<Self> {
        Rc::new(Self {
            routers: RefCell::default(),
            down: RefCell::default(),
            mute: RefCell::default(),
            cut: RefCell::default(),
            latency: Cell::new(Duration::ZERO),
            log: RefCell::default(),
        })
    }

    /// Serves `router` at `node`, replacing what served there.
    pub fn serve(&self, node: &str, router: Router) {
        self.routers.borrow_mut().insert(node.to_owned(), router);
    }

    /// The network as node `me` sees it, with `me`'s own clock.
    pub fn peers(self: &Rc<Self>, me: &str) -> Peers {
        Peers::new(Link { net: self.clone(), me: me.to_owned(), clock: Arc::new(LamportClock::default()) })
    }

    pub fn set_down(&self, node: &str, down: bool) {
        set(&self.down, node.to_owned(), down);
    }

    /// The nodes served and not down, in order.
    pub fn up(&self) -> Vec<String> {
        let mut up: Vec<String> = self.routers.borrow().keys().filter(|n| !self.is_down(n)).cloned().collect();
        up.sort();
        up
    }

    pub fn is_down(&self, node: &str) -> bool {
        self.down.borrow().contains(node)
    }

    pub fn set_mute(&self, node: &str, mute: bool) {
        set(&self.mute, node.to_owned(), mute);
    }

    /// Cuts (or heals) the link from `from` to `to`, one way.
    pub fn set_cut(&self, from: &str, to: &str, cut: bool) {
        set(&self.cut, (from.to_owned(), to.to_owned()), cut);
    }

    /// Cuts every link between `side` and the other nodes, both ways.
    pub fn partition(&self, side: &[&str], others: &[&str]) {
        for a in side {
            for b in others {
                self.set_cut(a, b, true);
                self.set_cut(b, a, true);
            }
        }
    }

    /// Heals every cut link.
    pub fn heal(&self) {
        self.cut.borrow_mut().clear();
    }

    /// No link is cut.
    pub fn is_whole(&self) -> bool {
        self.cut.borrow().is_empty()
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency.set(latency);
    }

    /// Every call so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.log.borrow().clone()
    }

    fn linked(&self, from: &str, to: &str) -> bool {
        !self.cut.borrow().contains(&(from.to_owned(), to.to_owned()))
    }
}

fn set<T: Ord>(of: &RefCell<BTreeSet<T>>, item: T, on: bool) {
    if on {
        of.borrow_mut().insert(item);
    } else {
        of.borrow_mut().remove(&item);
    }
}

/// A message on its way; without latency it arrives in the same turn.
async fn travel(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

/// One node's end of a `SimNet`.
struct Link {
    net: Rc<SimNet>,
    me: String,
    clock: Arc<LamportClock>,
}

impl Network for Link {
    fn node(&self) -> &str {
        &self.me
    }

    fn clock(&self) -> &Arc<LamportClock> {
        &self.clock
    }

    fn exchange(&self, to: &str, exchange: Exchange) -> LocalBoxFuture<'static, Result<Bytes, PeerError>> {
        let url = format!("sim://{to}{}", exchange.path);
        let net = self.net.clone();
        let handler = net.routers.borrow().get(to).and_then(|r| r.find(exchange.method, &exchange.path));
        let (from, to, latency) = (self.me.clone(), to.to_owned(), net.latency.get());
        let limit = exchange.within.unwrap_or(CLIENT_TIMEOUT);
        let late = PeerError::Read { url: url.clone(), reason: "timed out".into() };
        let call = async move {
            travel(latency).await;
            // What happens to a request is decided when it would arrive: a
            // partition that starts while it travels loses it.
            let down = net.is_down(&from) || net.is_down(&to);
            let arrives = !down && net.linked(&from, &to) && handler.is_some();
            net.log.borrow_mut().push(Sent {
                from: from.clone(),
                to: to.clone(),
                path: exchange.path.clone(),
                delivered: arrives,
            });
            let handler = match handler {
                Some(h) if arrives => h,
                Some(_) if !down => return std::future::pending().await,
                _ => return Err(PeerError::Send { url, reason: "connection refused".into() }),
            };
            if net.mute.borrow().contains(&to) {
                return std::future::pending().await;
            }
            let answer = handler(exchange).await;
            travel(latency).await;
            if net.is_down(&to) || !net.linked(&to, &from) {
                return std::future::pending().await;
            }
            answer
        };
        async move { tokio::time::timeout(limit, call).await.unwrap_or(Err(late)) }.boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::routes::{Coordinator, CoordinatorAck, EvaluationId, Replica};
    use crate::replication::model::ReplicaSummary;

    fn echo() -> Router {
        Router::default()
            .on::<Coordinator, _, _>(|m| async move { Ok(CoordinatorAck { coordinator: m.from }) })
            .on::<Replica, _, _>(|at: EvaluationId| async move {
                Ok(ReplicaSummary {
                    epoch: at.id.as_u128() as u64,
                    supervisor: "s".into(),
                    status: crate::evaluation::model::EvaluationStatus::Running,
                    finished: 0,
                    supervising: false,
                })
            })
    }

    #[actix::test]
    async fn calls_reach_the_route_they_name_and_the_network_fails_them_as_told() {
        tokio::time::pause();
        let net = SimNet::new();
        net.serve("b", echo());
        let a = net.peers("a");
        let hello = crate::coordination::ElectionMessage { from: "a".into() };
        assert_eq!(a.call::<Coordinator>("b", &hello).await.unwrap().coordinator, "a");
        let id = uuid::Uuid::from_u128(7);
        assert_eq!(a.call::<Replica>("b", &EvaluationId { id }).await.unwrap().epoch, 7, "the path carries the id");

        net.set_down("b", true);
        assert!(matches!(a.call::<Coordinator>("b", &hello).await, Err(PeerError::Send { .. })), "refused");
        net.set_down("b", false);
        net.set_cut("a", "b", true);
        let started = tokio::time::Instant::now();
        let lost = a.call_within::<Coordinator>("b", &hello, Duration::from_millis(300)).await;
        assert!(matches!(lost, Err(PeerError::Read { .. })), "{lost:?}");
        let waited = started.elapsed().as_millis();
        assert!((300..=301).contains(&waited), "a cut link answers nothing: the caller times out ({waited} ms)");
        net.heal();
        net.set_cut("b", "a", true);
        let lost = a.call_within::<Coordinator>("b", &hello, Duration::from_millis(300)).await;
        assert!(matches!(lost, Err(PeerError::Read { .. })), "the answer is lost on the way back: {lost:?}");
        let sent = net.sent();
        assert_eq!(sent.iter().filter(|s| s.delivered).count(), 3, "{sent:?}");
        assert_eq!(sent.len(), 5);
        assert!(matches!(a.call::<Coordinator>("nobody", &hello).await, Err(PeerError::Send { .. })));
    }
}
