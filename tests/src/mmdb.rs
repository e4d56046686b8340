//! A small MaxMind DB writer for tests: builds GeoIP/ASN databases in the layouts the
//! vendors ship (MaxMind, DB-IP, IPinfo) from JSON records, so enrichment tests need no
//! download. Format: the MaxMind DB File Format Specification 2.0 (an IPv6 search tree of
//! 24-bit records, IPv4 under `::/96`, a 16-byte separator, the data section, then the
//! metadata after `\xAB\xCD\xEFMaxMind.com`).

use std::net::IpAddr;

use serde_json::Value;

/// A database being built.
#[derive(Debug, Clone)]
pub struct MmdbWriter {
    database_type: String,
    networks: Vec<(u128, u8, Value)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Rec {
    Empty,
    Node(u32),
    Data(u32),
}

impl MmdbWriter {
    /// A database of `database_type` (`GeoLite2-City`, `GeoLite2-ASN`, `ipinfo_lite`...).
    pub fn new(database_type: &str) -> Self {
        Self { database_type: database_type.to_owned(), networks: Vec::new() }
    }

    /// Adds a network (`81.2.69.0/24`, `2a02:ff::/32` or an address) with its record.
    /// Networks must not overlap.
    pub fn insert(&mut self, network: &str, record: Value) -> &mut Self {
        let (addr, prefix) = network.split_once('/').map_or((network, None), |(a, p)| (a, Some(p)));
        let ip: IpAddr = addr.parse().expect("an address");
        let (bits, width) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u8),
            IpAddr::V6(v6) => (u128::from(v6), 128u8),
        };
        let prefix: u8 = prefix.map_or(width, |p| p.parse().expect("a prefix"));
        // IPv4 lives under ::/96.
        self.networks.push((bits, prefix + (128 - width), record));
        self
    }

    /// The database file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let mut data = Vec::new();
        let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty; 2]];
        for (bits, prefix, record) in &self.networks {
            let offset = data.len() as u32;
            encode(record, &mut data);
            let mut node = 0usize;
            for depth in 0..*prefix {
                let bit = ((bits >> (127 - u32::from(depth))) & 1) as usize;
                if depth + 1 == *prefix {
                    assert!(nodes[node][bit] == Rec::Empty, "overlapping networks");
                    nodes[node][bit] = Rec::Data(offset);
                } else {
                    node = match nodes[node][bit] {
                        Rec::Node(n) => n as usize,
                        Rec::Empty => {
                            nodes.push([Rec::Empty; 2]);
                            let n = nodes.len() - 1;
                            nodes[node][bit] = Rec::Node(n as u32);
                            n
                        }
                        Rec::Data(_) => panic!("overlapping networks"),
                    };
                }
            }
        }
        let count = nodes.len() as u32;
        let mut out = Vec::with_capacity(nodes.len() * 6 + 16 + data.len() + 256);
        for pair in &nodes {
            for rec in pair {
                let v = match *rec {
                    Rec::Empty => count,
                    Rec::Node(n) => n,
                    Rec::Data(off) => count + 16 + off,
                };
                out.extend_from_slice(&v.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let metadata = serde_json::json!({
            "binary_format_major_version": 2, "binary_format_minor_version": 0,
            "build_epoch": 1_765_000_000u64, "database_type": self.database_type,
            "description": {"en": "Vigil test database"}, "ip_version": 6,
            "languages": ["en"], "node_count": count, "record_size": 24,
        });
        encode_with(&metadata, &mut out, &METADATA_TYPES);
        out
    }
}

/// Metadata members the reader wants in a given unsigned type (5: uint16, 9: uint64).
const METADATA_TYPES: [(&str, u8); 5] = [
    ("binary_format_major_version", 5),
    ("binary_format_minor_version", 5),
    ("ip_version", 5),
    ("record_size", 5),
    ("build_epoch", 9),
];

/// Writes a value in the data-section encoding.
fn encode(v: &Value, out: &mut Vec<u8>) {
    encode_with(v, out, &[]);
}

/// `typed`: members written as the given unsigned type.
fn encode_with(v: &Value, out: &mut Vec<u8>, typed: &[(&str, u8)]) {
    match v {
        Value::String(s) => {
            control(2, s.len(), out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bool(b) => control(14, usize::from(*b), out),
        Value::Number(n) => match n.as_u64() {
            Some(u) if u <= u64::from(u32::MAX) => uint(6, u, out),
            Some(u) => uint(9, u, out),
            None => {
                control(3, 8, out);
                out.extend_from_slice(&n.as_f64().expect("a number").to_be_bytes());
            }
        },
        Value::Array(items) => {
            control(11, items.len(), out);
            for item in items {
                encode(item, out);
            }
        }
        Value::Object(map) => {
            control(7, map.len(), out);
            for (k, item) in map {
                encode(&Value::String(k.clone()), out);
                match (item.as_u64(), typed.iter().find(|(name, _)| name == k)) {
                    (Some(u), Some((_, kind))) => uint(*kind, u, out),
                    _ => encode_with(item, out, typed),
                }
            }
        }
        Value::Null => panic!("MaxMind DB has no null"),
    }
}

fn uint(kind: u8, v: u64, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

/// A control byte (and the extended type byte, then the size bytes).
fn control(kind: u8, size: usize, out: &mut Vec<u8>) {
    let (first_type, extended) = if kind > 7 { (0u8, Some(kind - 7)) } else { (kind, None) };
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    out.push((first_type << 5) | size_bits);
    if let Some(e) = extended {
        out.push(e);
    }
    out.extend_from_slice(&extra);
}
