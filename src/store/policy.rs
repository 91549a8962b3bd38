//! The tenant tier's word on each user: accept calls for the user (and let the user's
//! own feature server decide), reject them (a suspended user), or hand them to an
//! external feature server at a SIP URI.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Calls go on to the user's feature server in tsps.
    #[default]
    Accept,
    /// Calls are refused at the tenant tier.
    Reject,
    /// Calls go to `external_uri`; its redirects and rejections are honoured.
    External,
}

impl PolicyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::External => "external",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Accept, Self::Reject, Self::External]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Stored per user; a user with none stored has the default (accept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPolicy {
    pub mode: PolicyMode,
    /// The user's own feature server (`sip:alice@home.example.net`); set exactly when
    /// `mode` is `external`.
    #[serde(default)]
    #[schema(example = "sip:alice@127.0.0.1:5080")]
    pub external_uri: Option<String>,
}
