//! The state of a conference: the bridge that mixes it, its host and its members
//! (plain data; `conference.rs` runs it).

use crate::ids::{LegId, UserId};
use crate::ports::{Bridge, PartyInfo};

/// The live conference of a call.
pub(super) struct Conference {
    pub(super) bridge: Box<dyn Bridge>,
    pub(super) host: UserId,
    pub(super) host_leg: LegId,
    pub(super) members: Vec<Member>,
}

pub(super) struct Member {
    pub(super) leg: LegId,
    pub(super) party: PartyInfo,
    pub(super) state: MemberState,
    pub(super) glare: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MemberState {
    /// Our re-INVITE with the bridge's offer waits for its answer.
    Offered,
    /// The member re-INVITEd without an offer; our 200 carried one and the answer comes
    /// in its ACK.
    AwaitingAck,
    /// Mixed.
    Joined,
}

impl Conference {
    pub(super) fn member(&mut self, leg: LegId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.leg == leg)
    }

    pub(super) fn is_member(&self, leg: LegId) -> bool {
        self.members.iter().any(|m| m.leg == leg)
    }

    pub(super) fn members(&self) -> impl Iterator<Item = LegId> + '_ {
        self.members.iter().map(|m| m.leg)
    }
}
