//! One MaxMind DB record read into what enrichment needs, whatever the vendor's layout:
//! MaxMind GeoIP2/GeoLite2 and DB-IP (`country.iso_code`, `city.names.en`,
//! `location.latitude`/`longitude`, `autonomous_system_number`/`_organization`) and IPinfo
//! (flat `country` or `country_code`, `city`, `lat`, `lng`, `asn` = "AS15169", `as_name` or
//! `name`). Only the members named are decoded; everything else is skipped without being
//! built, so a lookup allocates the few strings it keeps. `super` (the enricher) calls it.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Longest city or AS organisation name kept (longer: dropped).
const MAX_NAME_BYTES: usize = 512;

/// What one record says about an address (every member optional).
#[derive(Debug, Default, PartialEq)]
pub struct Record {
    /// ISO 3166 alpha-2, uppercase.
    pub country: Option<String>,
    /// English city name.
    pub city: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// Autonomous system number.
    pub asn: Option<u32>,
    /// Autonomous system organisation.
    pub as_org: Option<String>,
}

/// The member names looked at, at any depth.
enum Key {
    Country,
    CountryCode,
    City,
    Location,
    Lat,
    Lon,
    Latitude,
    Longitude,
    IsoCode,
    Names,
    En,
    AsnNumber,
    Asn,
    AsOrg,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "country" => Key::Country,
                    "country_code" => Key::CountryCode,
                    "city" => Key::City,
                    "location" => Key::Location,
                    "lat" => Key::Lat,
                    "lng" | "lon" => Key::Lon,
                    "latitude" => Key::Latitude,
                    "longitude" => Key::Longitude,
                    "iso_code" => Key::IsoCode,
                    "names" => Key::Names,
                    "en" => Key::En,
                    "autonomous_system_number" => Key::AsnNumber,
                    "asn" => Key::Asn,
                    "autonomous_system_organization" | "as_name" | "name" | "as_org" => Key::AsOrg,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A scalar as text or number (IPinfo writes some numbers as strings), or a map with the
/// one member wanted (`iso_code`, `names.en`): the visitor is told which map member.
#[derive(Default)]
struct Loose {
    text: Option<String>,
    number: Option<f64>,
}

struct LooseVisitor {
    /// Inside a map, the member that holds the value (`IsoCode` for `country`, `Names` then
    /// `En` for `city`).
    wanted: &'static [fn(&Key) -> bool],
}

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, a number or a map")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose { text: (v.len() <= MAX_NAME_BYTES).then(|| v.to_owned()), number: None })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose { text: None, number: Some(v) })
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Loose, E> {
        self.visit_f64(f64::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose, E> {
        self.visit_f64(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Loose, E> {
        self.visit_f64(v as f64)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose, E> {
        Ok(Loose::default())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        let mut found = Loose::default();
        while let Some(key) = map.next_key::<Key>()? {
            match self.wanted.split_first() {
                Some((is_wanted, rest)) if is_wanted(&key) => {
                    found = map.next_value_seed(LooseSeed(LooseVisitor { wanted: rest }))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

struct LooseSeed(LooseVisitor);

impl<'de> de::DeserializeSeed<'de> for LooseSeed {
    type Value = Loose;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        d.deserialize_any(self.0)
    }
}

fn loose<'de, A: MapAccess<'de>>(map: &mut A, wanted: &'static [fn(&Key) -> bool]) -> Result<Loose, A::Error> {
    map.next_value_seed(LooseSeed(LooseVisitor { wanted }))
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a MaxMind DB record (a map)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        let mut r = Record::default();
        let (mut lat, mut lon) = (None, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Country | Key::CountryCode if r.country.is_none() => {
                    r.country = loose(&mut map, &[|k| matches!(k, Key::IsoCode)])?.text.and_then(iso_country);
                }
                Key::City => r.city = loose(&mut map, &[|k| matches!(k, Key::Names), |k| matches!(k, Key::En)])?.text,
                Key::Location => {
                    let mut seen = map.next_value::<Location>()?;
                    lat = lat.or(seen.lat.take());
                    lon = lon.or(seen.lon.take());
                }
                Key::Lat | Key::Latitude => lat = number(loose(&mut map, &[])?),
                Key::Lon | Key::Longitude => lon = number(loose(&mut map, &[])?),
                Key::AsnNumber | Key::Asn => {
                    let v = loose(&mut map, &[])?;
                    r.asn = v
                        .number
                        .filter(|n| n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n))
                        .map(|n| n as u32)
                        .or_else(|| v.text.as_deref().and_then(|t| t.strip_prefix("AS").unwrap_or(t).parse().ok()));
                }
                Key::AsOrg => r.as_org = loose(&mut map, &[])?.text,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        r.lat = lat.filter(|v| v.is_finite() && (-90.0..=90.0).contains(v));
        r.lon = lon.filter(|v| v.is_finite() && (-180.0..=180.0).contains(v));
        r.city = r.city.filter(|c| !c.is_empty() && !c.contains('\0'));
        r.as_org = r.as_org.filter(|c| !c.is_empty() && !c.contains('\0'));
        Ok(r)
    }
}

/// `location` of the MaxMind layout.
#[derive(Default)]
struct Location {
    lat: Option<f64>,
    lon: Option<f64>,
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LocationVisitor;
        impl<'de> Visitor<'de> for LocationVisitor {
            type Value = Location;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a location map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Location, A::Error> {
                let mut l = Location::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Latitude | Key::Lat => l.lat = number(loose(&mut map, &[])?),
                        Key::Longitude | Key::Lon => l.lon = number(loose(&mut map, &[])?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(l)
            }
        }
        d.deserialize_map(LocationVisitor)
    }
}

fn number(v: Loose) -> Option<f64> {
    v.number.or_else(|| v.text.and_then(|t| t.trim().parse().ok()))
}

/// An ISO 3166 alpha-2 code, uppercase; anything else is dropped.
fn iso_country(code: String) -> Option<String> {
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())).then(|| code.to_ascii_uppercase())
}
