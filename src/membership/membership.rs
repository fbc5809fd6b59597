//! The `Membership` actor: this node's view of the cluster, a child of the
//! node root. A thin shell around the pure SWIM core (`swim.rs`): it feeds the
//! core its clock on every `Tick`, carries out the requests the core asks for
//! through its `Transport`, and answers the peer routes (`/join`, `/mystats`,
//! `/probe`).
//!
//! Sends the live members and their load to the load balancer (`SetMembers`)
//! and tells the registry `NodeLost` when a member dies, leaves or comes back
//! as a new incarnation, so that supervisors take back its tasks. If it dies,
//! this node stops answering probes and the others declare it dead; its view
//! is rebuilt from the seeds when it is restarted.

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;
use tokio::time::Instant;

use super::model::{
    Ack, EventKind, IndirectAck, MemberInfo, MemberView, Meta, Ping, PingReq, Status,
};
use super::swim::{Action, Swim};
use super::transport::Transport;
use crate::balance::{NodeLoad, SetMembers};
use crate::evaluation::supervisor::NodeLost;
use crate::executor::{GetLoad, Load};

/// Advances the protocol: probes, time-outs, suspicions, gossip to the balancer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// A peer's direct probe, `POST /mystats`.
#[derive(Message)]
#[rtype(result = "Ack")]
pub struct HandlePing(pub Ping);

/// A peer asks this node to probe another, `POST /probe`.
#[derive(Message)]
#[rtype(result = "IndirectAck")]
pub struct HandlePingReq(pub PingReq);

/// A node joins through this one, `POST /join`: answers the member list.
#[derive(Message)]
#[rtype(result = "Vec<MemberInfo>")]
pub struct HandleJoin(pub MemberInfo);

/// Every member this node knows, itself first.
#[derive(Message)]
#[rtype(result = "Vec<MemberView>")]
pub struct GetMembers;

/// Announces this node's departure; answers once the announcements are out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

/// This node's load, read from the executor on every tick.
#[derive(Message)]
#[rtype(result = "()")]
struct LoadRead(Load);

/// Timings of the shell around the core.
#[derive(Debug, Clone)]
pub struct MembershipSettings {
    pub seeds: Vec<String>,
    /// How often the core is ticked.
    pub tick: Duration,
    /// How often seeds are tried again until one answers.
    pub join_retry: Duration,
    /// Time-out of a direct probe, `POST /mystats`.
    pub probe_timeout: Duration,
    /// Time-out of an indirect probe, `POST /probe`.
    pub indirect_timeout: Duration,
}

pub struct Membership {
    swim: Swim,
    settings: MembershipSettings,
    transport: Rc<dyn Transport>,
    /// This node's executor, whose load rides on every probe.
    load: Recipient<GetLoad>,
    /// The load balancer, told the live members after every tick.
    balancer: Recipient<SetMembers>,
    /// The registry, told of members whose tasks are lost.
    on_lost: Recipient<NodeLost>,
    /// Origin of the core's milliseconds.
    clock: Instant,
    joined: bool,
    last_join_try: Option<Instant>,
}

/// The collaborators of the membership actor.
pub struct MembershipLinks {
    pub transport: Rc<dyn Transport>,
    pub load: Recipient<GetLoad>,
    pub balancer: Recipient<SetMembers>,
    pub on_lost: Recipient<NodeLost>,
}

impl Membership {
    pub fn new(swim: Swim, settings: MembershipSettings, links: MembershipLinks) -> Self {
        let joined = settings.seeds.is_empty();
        Self {
            swim,
            settings,
            transport: links.transport,
            load: links.load,
            balancer: links.balancer,
            on_lost: links.on_lost,
            clock: Instant::now(),
            joined,
            last_join_try: None,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn perform(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        let (probe_timeout, indirect_timeout) =
            (self.settings.probe_timeout, self.settings.indirect_timeout);
        for action in actions {
            match action {
                Action::Probe { id, target, ping } => {
                    let call = self.transport.ping(&target, ping, probe_timeout);
                    ctx.spawn(call.into_actor(self).map(move |answer, act, ctx| {
                        let now = act.now_ms();
                        match answer {
                            Ok(ack) => act.swim.on_ack(now, id, ack),
                            Err(e) => {
                                log::debug!("probe of {target} failed: {e}");
                                let more = act.swim.on_probe_failed(now, id);
                                act.perform(more, ctx);
                            }
                        }
                    }));
                }
                Action::ProbeRequest { id, via, req } => {
                    let call = self.transport.ping_req(&via, req, indirect_timeout);
                    ctx.spawn(call.into_actor(self).map(move |answer, act, _| {
                        let now = act.now_ms();
                        match answer {
                            Ok(reply) => act.swim.on_indirect_ack(now, id, reply),
                            Err(_) => act.swim.on_indirect_failed(now, id),
                        }
                    }));
                }
            }
        }
    }

    fn try_join(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if self.joined
            || self
                .last_join_try
                .is_some_and(|t| now - t < self.settings.join_retry)
        {
            return;
        }
        self.last_join_try = Some(now);
        let me = self.swim.info();
        let calls: Vec<_> = self
            .settings
            .seeds
            .iter()
            .map(|seed| self.transport.join(seed, me.clone()))
            .collect();
        ctx.spawn(join_all(calls).into_actor(self).map(|answers, act, _| {
            let now = act.now_ms();
            for answer in answers {
                match answer {
                    Ok(members) => {
                        act.swim.joined(now, members);
                        act.joined = true;
                    }
                    Err(e) => log::warn!("join: {e}"),
                }
            }
            if act.joined {
                log::info!(
                    "node {} joined: {} members alive",
                    act.swim.info().address,
                    act.swim.alive().len()
                );
            }
        }));
    }

    /// Hands the view to the balancer and the losses to the registry.
    fn publish(&mut self) {
        for event in self.swim.drain_events() {
            log::info!(
                "member {} (incarnation {}): {:?}",
                event.address,
                event.incarnation,
                event.kind
            );
            if matches!(
                event.kind,
                EventKind::Dead | EventKind::Left | EventKind::Rejoined
            ) {
                self.on_lost.do_send(NodeLost(event.address));
            }
        }
        let live: Vec<NodeLoad> = self
            .swim
            .members()
            .into_iter()
            .filter(|m| m.status == Status::Alive)
            .map(|m| NodeLoad {
                addr: m.address,
                slots: m.meta.slots,
                busy: m.meta.busy,
            })
            .collect();
        self.balancer.do_send(SetMembers(live));
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.settings.tick, |_, ctx| ctx.notify(Tick));
        ctx.notify(Tick);
    }
}

impl Handler<Tick> for Membership {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let load = self.load.send(GetLoad);
        ctx.spawn(load.into_actor(self).map(|load, _, ctx| {
            if let Ok(load) = load {
                ctx.notify(LoadRead(load));
            }
        }));
        self.try_join(ctx);
        let actions = self.swim.tick(self.now_ms());
        self.perform(actions, ctx);
        self.publish();
    }
}

impl Handler<LoadRead> for Membership {
    type Result = ();

    fn handle(&mut self, LoadRead(load): LoadRead, _: &mut Context<Self>) {
        let meta = Meta {
            slots: u32::try_from(load.slots).unwrap_or(u32::MAX),
            busy: u32::try_from(load.busy + load.queued).unwrap_or(u32::MAX),
            boot: self.swim.info().meta.boot,
        };
        self.swim.set_meta(meta);
    }
}

impl Handler<HandlePing> for Membership {
    type Result = MessageResult<HandlePing>;

    fn handle(&mut self, HandlePing(ping): HandlePing, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.swim.handle_ping(self.now_ms(), ping))
    }
}

impl Handler<HandlePingReq> for Membership {
    type Result = ResponseActFuture<Self, IndirectAck>;

    fn handle(&mut self, HandlePingReq(req): HandlePingReq, _: &mut Context<Self>) -> Self::Result {
        let ping = self.swim.handle_ping_req(self.now_ms(), &req);
        let timeout = self.settings.probe_timeout;
        let call = self.transport.ping(&req.target, ping, timeout);
        Box::pin(call.into_actor(self).map(move |answer, act, _| {
            let now = act.now_ms();
            act.swim.indirect_reply(now, &req, answer.ok())
        }))
    }
}

impl Handler<HandleJoin> for Membership {
    type Result = MessageResult<HandleJoin>;

    fn handle(&mut self, HandleJoin(joiner): HandleJoin, _: &mut Context<Self>) -> Self::Result {
        let members = self.swim.handle_join(self.now_ms(), joiner);
        self.publish();
        MessageResult(members)
    }
}

impl Handler<GetMembers> for Membership {
    type Result = MessageResult<GetMembers>;

    fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.swim.members())
    }
}

impl Handler<Leave> for Membership {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Leave, _: &mut Context<Self>) -> Self::Result {
        let timeout = self.settings.probe_timeout;
        let calls: Vec<_> = self
            .swim
            .leave()
            .into_iter()
            .filter_map(|action| match action {
                Action::Probe { target, ping, .. } => {
                    Some(self.transport.ping(&target, ping, timeout))
                }
                Action::ProbeRequest { .. } => None,
            })
            .collect();
        log::info!(
            "node {} leaving: telling {} members",
            self.swim.info().address,
            calls.len()
        );
        Box::pin(join_all(calls).into_actor(self).map(|_, _, _| ()))
    }
}
