//! `Cluster`: stands in for membership and coordination of every node of a
//! test. The live members are the nodes of the network that are up; the
//! coordinator is whom the test names.

use std::cell::RefCell;
use std::rc::Rc;

use actix::prelude::*;

use super::SimNet;
use crate::coordination::GetCoordinator;
use crate::membership::model::{MemberView, Meta};
use crate::membership::{GetMembers, Status};

pub struct Cluster {
    net: Rc<SimNet>,
    coordinator: Rc<RefCell<Option<String>>>,
}

impl Cluster {
    /// Starts one for `net`; the test names the coordinator through the cell.
    pub fn start(net: &Rc<SimNet>) -> (Addr<Self>, Rc<RefCell<Option<String>>>) {
        let coordinator = Rc::new(RefCell::new(None));
        (Self { net: net.clone(), coordinator: coordinator.clone() }.start(), coordinator)
    }
}

impl Actor for Cluster {
    type Context = Context<Self>;
}

impl Handler<GetMembers> for Cluster {
    type Result = MessageResult<GetMembers>;
    fn handle(&mut self, _: GetMembers, _: &mut Context<Self>) -> Self::Result {
        let view = |address: String| MemberView {
            address,
            status: Status::Alive,
            incarnation: 1,
            last_seen_ms: 0,
            meta: Meta::default(),
        };
        MessageResult(self.net.up().into_iter().map(view).collect())
    }
}

impl Handler<GetCoordinator> for Cluster {
    type Result = Option<String>;
    fn handle(&mut self, _: GetCoordinator, _: &mut Context<Self>) -> Option<String> {
        self.coordinator.borrow().clone()
    }
}
