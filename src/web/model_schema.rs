//! OpenAPI schemas of the actors crate's enums that the API reads or writes. That crate
//! knows no HTTP and derives no `ToSchema`; these mirrors exist only for the document,
//! so that the values are listed (an enum) rather than said to be any string. A test
//! below holds each mirror to what the real type serializes and accepts.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

/// The transport toward a carrier.
#[derive(Serialize, ToSchema)]
#[schema(as = Transport)]
#[serde(rename_all = "lowercase")]
pub enum TransportDoc {
    Udp,
    Tcp,
}

/// How a call entered: `internal` (device to device in one tenant), `inbound` (from a
/// trunk, by DID), `outbound` (to an outside number through the tenant's trunk).
#[derive(Serialize, ToSchema)]
#[schema(as = CallDirection)]
#[serde(rename_all = "snake_case")]
pub enum CallDirectionDoc {
    Internal,
    Inbound,
    Outbound,
}

/// How a call ended: `cancelled` (the caller hung up before answer), `unavailable`
/// (nobody to ring), ...
#[derive(Serialize, ToSchema)]
#[schema(as = CallOutcome)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcomeDoc {
    Answered,
    Busy,
    NoAnswer,
    Cancelled,
    Unavailable,
    Rejected,
    Failed,
}

/// A side of a call.
#[derive(Serialize, ToSchema)]
#[schema(as = Party)]
#[serde(rename_all = "snake_case")]
pub enum PartyDoc {
    Caller,
    Callee,
    System,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::Value;
    use tsps_actors::model::{CallDirection, CallOutcome, Party, TransportKind};
    use utoipa::PartialSchema;

    /// The mirror lists exactly the real type's values, and each parses as it.
    fn same<M: PartialSchema, T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
        real: &[T],
    ) {
        let schema = serde_json::to_value(M::schema()).unwrap();
        let mut listed: Vec<Value> = schema["enum"].as_array().expect("an enum").clone();
        let mut wire: Vec<Value> = real
            .iter()
            .map(|v| serde_json::to_value(v).unwrap())
            .collect();
        for v in &wire {
            let back: T = serde_json::from_value(v.clone()).unwrap();
            assert!(real.contains(&back));
        }
        listed.sort_by_key(|v| v.to_string());
        wire.sort_by_key(|v| v.to_string());
        assert_eq!(listed, wire);
    }

    #[test]
    fn the_mirrors_list_the_values_of_the_real_enums() {
        same::<TransportDoc, _>(&[TransportKind::Udp, TransportKind::Tcp]);
        same::<CallDirectionDoc, _>(&[
            CallDirection::Internal,
            CallDirection::Inbound,
            CallDirection::Outbound,
        ]);
        same::<CallOutcomeDoc, _>(&[
            CallOutcome::Answered,
            CallOutcome::Busy,
            CallOutcome::NoAnswer,
            CallOutcome::Cancelled,
            CallOutcome::Unavailable,
            CallOutcome::Rejected,
            CallOutcome::Failed,
        ]);
        same::<PartyDoc, _>(&[Party::Caller, Party::Callee, Party::System]);
    }
}
