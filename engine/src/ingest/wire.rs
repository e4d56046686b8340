//! One event's JSON read straight into its wire fields: the parser is told, member by
//! member, what to build (a string, a number, or a tree only for `geo` and `details`), so
//! no map of the whole event is ever built. A member named twice keeps its last value, as
//! a JSON object read into a map would.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use crate::event::STRING_FIELDS;

/// A top-level member's value, as far as validation needs it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Null,
    Str(String),
    Number(Number),
    /// A boolean, an array or an object (all refused where a scalar is expected).
    Other,
}

/// The wire fields of one event.
#[derive(Debug, Default)]
pub(super) struct Wire {
    pub event_id: Option<Scalar>,
    pub timestamp: Option<Scalar>,
    pub category: Option<Scalar>,
    pub action: Option<Scalar>,
    pub severity: Option<Scalar>,
    pub outcome: Option<Scalar>,
    pub ip: Option<Scalar>,
    pub strings: [Option<Scalar>; STRING_FIELDS.len()],
    pub geo: Option<Value>,
    pub details: Option<Value>,
    /// Names of members that are not wire fields, in the order sent.
    pub unknown: Vec<String>,
}

impl Wire {
    /// Reads one event from its JSON text. `Ok(None)`: valid JSON but not an object.
    pub fn parse(text: &str) -> Result<Option<Self>, serde_json::Error> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str::<Wire>(text).map(Some)
        } else {
            serde_json::from_str::<IgnoredAny>(text).map(|_| None)
        }
    }

    /// Reads one event from a parsed value. `None`: not an object.
    pub fn from_value(value: Value) -> Option<Self> {
        if !value.is_object() {
            return None;
        }
        serde_json::from_value::<Wire>(value).ok()
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                Scalar::deserialize(d)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_str<E>(self, s: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Scalar, E> {
                Ok(Scalar::Str(s))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Scalar, E> {
                Ok(Scalar::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Scalar, E> {
                Ok(Scalar::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Scalar, E> {
                Ok(Number::from_f64(n).map_or(Scalar::Other, Scalar::Number))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Wire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Wire;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Wire, A::Error> {
                let mut w = Wire::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let name: &str = &key.0;
                    let slot = match name {
                        "event_id" => &mut w.event_id,
                        "timestamp" => &mut w.timestamp,
                        "category" => &mut w.category,
                        "action" => &mut w.action,
                        "severity" => &mut w.severity,
                        "outcome" => &mut w.outcome,
                        "ip" => &mut w.ip,
                        "geo" => {
                            w.geo = Some(map.next_value::<Value>()?);
                            continue;
                        }
                        "details" => {
                            w.details = Some(map.next_value::<Value>()?);
                            continue;
                        }
                        other => match STRING_FIELDS.iter().position(|f| *f == other) {
                            Some(i) => &mut w.strings[i],
                            None => {
                                map.next_value::<IgnoredAny>()?;
                                if !w.unknown.iter().any(|u| u == other) {
                                    w.unknown.push(other.to_owned());
                                }
                                continue;
                            }
                        },
                    };
                    *slot = Some(map.next_value::<Scalar>()?);
                }
                Ok(w)
            }
        }
        d.deserialize_map(V)
    }
}

/// A member name, borrowed from the text when it has no escapes.
struct Key<'a>(std::borrow::Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(s.into()))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(s.to_owned().into()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(s.into()))
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_go_to_their_fields_and_the_last_of_a_repeated_name_wins() {
        let w = Wire::parse(
            r#"{"category":"a","category":"b","user_id":null,"details":{"k":[1]},"x\u0041":{"deep":[1,2]},
               "timestamp":1.5e3,"ip":true,"xA":1}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(w.category, Some(Scalar::Str("b".into())));
        assert_eq!(w.strings[crate::event::USER_ID], Some(Scalar::Null));
        assert_eq!(w.details, Some(serde_json::json!({"k": [1]})));
        assert_eq!(w.timestamp, Some(Scalar::Number(Number::from_f64(1500.0).unwrap())));
        assert_eq!(w.ip, Some(Scalar::Other));
        assert_eq!(w.unknown, ["xA"]);
        assert!(Wire::parse("[1]").unwrap().is_none());
        assert!(Wire::parse("\"s\"").unwrap().is_none());
        assert!(Wire::parse("{\"a\":").is_err());
        assert!(Wire::parse("{} x").is_err());
        assert!(Wire::from_value(serde_json::json!(3)).is_none());
        assert!(Wire::from_value(serde_json::json!({"action": "x"})).unwrap().action.is_some());
    }
}
