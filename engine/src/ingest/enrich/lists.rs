//! Threat-intel and reference lists (`[[lists]]`): the text formats FireHOL netsets,
//! Spamhaus DROP and abuse.ch publish (one entry per line; `#` and `;` start a comment at
//! the start of a line or after a space, so `1.2.3.0/24 ; SBL123` is `1.2.3.0/24`), parsed
//! under bounds (file size, entries, entry length) into sorted address ranges or a set of
//! values. `super` (the enricher) loads and reloads them; rules ask them by name.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::config::ListKind;
use crate::net::IpNet;

/// Longest entry of a `value` list, bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// One loaded list.
#[derive(Debug)]
pub struct List {
    pub kind: ListKind,
    /// `ip` and `cidr`: merged, sorted, disjoint ranges of IPv6 bits (IPv4 as IPv4-mapped).
    ranges: Vec<(u128, u128)>,
    /// `value`: the entries.
    values: HashSet<Box<str>>,
}

impl List {
    /// Parses a list file's bytes; the error names the line and what is wrong with it.
    pub fn parse(bytes: &[u8], kind: ListKind, max_entries: usize) -> Result<List, String> {
        let text =
            std::str::from_utf8(bytes).map_err(|e| format!("the file is not UTF-8 text (byte {})", e.valid_up_to()))?;
        let mut list = List { kind, ranges: Vec::new(), values: HashSet::new() };
        let mut entries = 0usize;
        for (n, line) in text.lines().enumerate() {
            let entry = strip_comment(line).trim();
            if entry.is_empty() {
                continue;
            }
            entries += 1;
            if entries > max_entries {
                return Err(format!("more than {max_entries} entries (max_entries)"));
            }
            let at = |m: &str| format!("line {}: {m}", n + 1);
            match kind {
                ListKind::Value => {
                    if entry.len() > MAX_VALUE_BYTES {
                        return Err(at(&format!("an entry longer than {MAX_VALUE_BYTES} bytes")));
                    }
                    if entry.chars().any(char::is_control) {
                        return Err(at("an entry with control characters"));
                    }
                    list.values.insert(entry.into());
                }
                ListKind::Ip | ListKind::Cidr => {
                    if entry.split_whitespace().nth(1).is_some() {
                        return Err(at("more than one entry on the line (use `#` or `;` before a comment)"));
                    }
                    let net = if kind == ListKind::Ip {
                        entry
                            .parse::<IpAddr>()
                            .map(|ip| IpNet::new(ip, 128))
                            .map_err(|_| at("not an IP address (kind = \"ip\"; use kind = \"cidr\" for networks)"))?
                    } else {
                        IpNet::parse(entry).map_err(|_| at("not an IP address or CIDR network"))?
                    };
                    list.ranges.push(range_of(&net));
                }
            }
        }
        list.ranges.sort_unstable();
        list.ranges.dedup();
        list.ranges = merge(std::mem::take(&mut list.ranges));
        Ok(list)
    }

    /// Entries held (ranges after merging, for address lists).
    pub fn len(&self) -> usize {
        self.ranges.len() + self.values.len()
    }

    /// Whether the list holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `ip` is on an address list (always false for a value list).
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let x = bits(ip);
        // The last range starting at or before x.
        let i = self.ranges.partition_point(|(start, _)| *start <= x);
        i > 0 && self.ranges[i - 1].1 >= x
    }

    /// Whether `value` is on the list: an address for `ip`/`cidr` lists (text that is not
    /// one is not on it), the exact text for `value` lists.
    pub fn contains(&self, value: &str) -> bool {
        match self.kind {
            ListKind::Value => self.values.contains(value.trim()),
            ListKind::Ip | ListKind::Cidr => value.trim().parse::<IpAddr>().is_ok_and(|ip| self.contains_ip(ip)),
        }
    }
}

/// The entry part of a line: before a `#` or `;` at its start or after whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if matches!(b, b'#' | b';') && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// An address as IPv6 bits (IPv4 as IPv4-mapped).
fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(u128::from(v6), |v4| u128::from(v4.to_ipv6_mapped())),
    }
}

/// First and last address of a network, as IPv6 bits.
fn range_of(net: &IpNet) -> (u128, u128) {
    let start = bits(net.addr());
    let width = if net.addr().is_ipv4() { 32 } else { 128 };
    let host_bits = u32::from(width - net.prefix());
    let span = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
    (start, start | span)
}

/// Merges sorted ranges that overlap or touch.
fn merge(ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn firehol_spamhaus_and_abuse_ch_formats_parse() {
        let firehol = "#\n# firehol_level1\n#\n1.10.16.0/20\n1.19.0.0/16\n2.56.192.0/22\n";
        let l = List::parse(firehol.as_bytes(), ListKind::Cidr, 100).unwrap();
        assert!(l.contains_ip(ip("1.10.31.255")) && !l.contains_ip(ip("1.10.32.0")));
        let drop = "; Spamhaus DROP List 2026/12/06\n; Last-Modified: x\n1.10.16.0/20 ; SBL256894\n\
                    2.56.192.0/22 ; SBL459831\n";
        let l = List::parse(drop.as_bytes(), ListKind::Cidr, 100).unwrap();
        assert!(l.contains_ip(ip("2.56.193.7")) && !l.contains_ip(ip("2.56.196.0")));
        let feodo = "################\n# abuse.ch Feodo Tracker Botnet C2 IP Blocklist #\n\
                     ################\n103.109.247.10\n45.61.136.8 # a trailing comment\n";
        let l = List::parse(feodo.as_bytes(), ListKind::Ip, 100).unwrap();
        assert!(l.contains("45.61.136.8") && l.contains("::ffff:103.109.247.10") && !l.contains("45.61.136.9"));
        assert_eq!(l.len(), 2);
        let hashes = "# sha256\nd41d8cd98f00b204e9800998ecf8427e\nexample.com#frag\n";
        let l = List::parse(hashes.as_bytes(), ListKind::Value, 100).unwrap();
        assert!(l.contains("d41d8cd98f00b204e9800998ecf8427e") && l.contains("example.com#frag"));
        assert!(!l.contains("example.com") && !l.contains_ip(ip("1.2.3.4")));
    }

    #[test]
    fn cidr_matching_covers_v4_v6_and_merges() {
        let l = List::parse(b"10.0.0.0/8\n10.1.0.0/16\n2001:db8::/32\n::/0\n", ListKind::Cidr, 100).unwrap();
        assert!(l.contains_ip(ip("2001:db8:ffff::1")));
        let l = List::parse(b"10.0.0.0/9\n10.128.0.0/9\n2001:db8::/126\n", ListKind::Cidr, 100).unwrap();
        assert_eq!(l.len(), 2, "touching networks merge");
        assert!(l.contains_ip(ip("10.255.255.255")) && !l.contains_ip(ip("11.0.0.0")));
        assert!(l.contains_ip(ip("2001:db8::3")) && !l.contains_ip(ip("2001:db8::4")));
        assert!(!l.contains_ip(ip("9.255.255.255")) && !l.contains_ip(ip("::1")));
        let all = List::parse(b"0.0.0.0/0\n", ListKind::Cidr, 10).unwrap();
        assert!(all.contains_ip(ip("255.255.255.255")) && !all.contains_ip(ip("2001:db8::1")));
    }

    #[test]
    fn hostile_or_wrong_files_are_refused_with_the_line() {
        for (text, kind, why) in [
            (&b"1.2.3.4\n1.2.3.0/24\n"[..], ListKind::Ip, "line 2"),
            (b"1.2.3.4 5.6.7.8\n", ListKind::Cidr, "more than one entry"),
            (b"1.2.3.4/33\n", ListKind::Cidr, "line 1"),
            (b"\xff\xfe1.2.3.4\n", ListKind::Cidr, "not UTF-8"),
            (b"a\nb\nc\nd\n", ListKind::Value, "more than 3 entries"),
            (b"a\x1b[31m\n", ListKind::Value, "control characters"),
        ] {
            let err = List::parse(text, kind, 3).unwrap_err();
            assert!(err.contains(why), "{err} (wanted {why})");
        }
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(List::parse(long.as_bytes(), ListKind::Value, 3).unwrap_err().contains("longer than"));
        assert!(List::parse(b"# only comments\n\n; here\n", ListKind::Cidr, 3).unwrap().is_empty());
    }
}
