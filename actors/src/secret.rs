//! A credential in memory: a password, an API token, a Redis URL with its password.
//! It never shows in logs or `Debug` output, so structs that hold one derive `Debug`
//! instead of writing a redacting one by hand. A leaf: it knows nothing of tsps.

use serde::{Deserialize, Serializer};
use std::fmt;

#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it (hashing, a digest, the wire).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// For `#[serde(serialize_with = "Secret::serialize_exposed")]`: an answer that
    /// must carry the value (an API token, shown once when it is made).
    pub fn serialize_exposed<S: Serializer>(s: &Secret, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&s.0)
    }
}

/// For `#[serde(with = "crate::secret::exposed_opt")]` on an `Option<Secret>` that
/// must cross a wire within tsps (a trunk's password in the directory snapshot that
/// nodes share): written as the plain value, read back into a `Secret`.
pub mod exposed_opt {
    use super::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &Option<Secret>, ser: S) -> Result<S::Ok, S::Error> {
        match s {
            Some(v) => ser.serialize_some(v.expose()),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Secret>, D::Error> {
        Ok(Option::<String>::deserialize(de)?.map(Secret))
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Login {
        name: String,
        password: Secret,
        token: Option<Secret>,
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let l = Login {
            name: "alice".into(),
            password: Secret::new("hunter22"),
            token: Some(Secret::new("tsps_abc")),
        };
        let shown = format!("{l:?} {l:#?}");
        assert!(
            shown.contains("alice") && shown.contains("[redacted]"),
            "{shown}"
        );
        assert!(
            !shown.contains("hunter22") && !shown.contains("tsps_abc"),
            "{shown}"
        );
    }
}
