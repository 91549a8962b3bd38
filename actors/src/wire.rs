//! Serde helpers for the documents the model types are read from (API bodies, stored
//! JSON).

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

/// Reads a struct from an object only: serde's derive also takes a sequence of the
/// fields in order, so `[]` would be an all-default struct and `[null, null]` one with
/// its first two options empty. For `#[serde(deserialize_with = "wire::object")]`.
pub fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Object<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }

    d.deserialize_map(Object(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(default)]
    struct Inner {
        a: Option<u32>,
        b: Vec<u32>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Outer {
        #[serde(deserialize_with = "object", default)]
        inner: Inner,
    }

    #[test]
    fn only_an_object_is_a_struct() {
        let ok: Outer = serde_json::from_str(r#"{"inner": {"a": 1}}"#).unwrap();
        assert_eq!(ok.inner.a, Some(1));
        let missing: Outer = serde_json::from_str("{}").unwrap();
        assert_eq!(missing.inner, Inner::default());
        for bad in [
            r#"{"inner": []}"#,
            r#"{"inner": [null, []]}"#,
            r#"{"inner": 3}"#,
        ] {
            let err = serde_json::from_str::<Outer>(bad).unwrap_err();
            assert!(
                err.to_string().contains("expected an object"),
                "{bad}: {err}"
            );
        }
    }
}
