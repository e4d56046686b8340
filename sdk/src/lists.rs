//! The native stand-in for the server's `[[lists]]` (what [`crate::testing::Harness::list`]
//! gives a rule to ask with [`crate::Context::in_list`]): the same file format (one entry
//! per line; `#` and `;` start a comment at the start of a line or after a space) and the
//! same matching (addresses in networks, IPv4-mapped IPv6 as IPv4; values exactly).

use std::net::IpAddr;

/// A list as the harness holds it.
#[derive(Debug, Clone)]
pub(crate) enum TestList {
    /// `ip` and `cidr` lists: (first, last) addresses as IPv6 bits.
    Networks(Vec<(u128, u128)>),
    /// `value` lists.
    Values(Vec<String>),
}

impl TestList {
    /// Parses `text` as the server would for a list of `kind`.
    pub(crate) fn parse(kind: &str, text: &str) -> Result<TestList, String> {
        let entries = text.lines().map(strip_comment).map(str::trim).filter(|e| !e.is_empty());
        match kind {
            "value" => Ok(TestList::Values(entries.map(str::to_owned).collect())),
            "ip" | "cidr" => entries
                .map(|e| {
                    let (addr, prefix) = e.split_once('/').map_or((e, None), |(a, p)| (a, Some(p)));
                    let ip: IpAddr = addr.parse().map_err(|_| format!("`{e}` is not an address"))?;
                    let width = if ip.is_ipv4() { 32 } else { 128 };
                    let prefix: u32 = match (kind, prefix) {
                        (_, None) => width,
                        ("cidr", Some(p)) => {
                            p.parse().ok().filter(|p| *p <= width).ok_or(format!("`{e}`: bad prefix"))?
                        }
                        _ => return Err(format!("`{e}`: a network in an ip list")),
                    };
                    let start = bits(ip) & !host_mask(width - prefix);
                    Ok((start, start | host_mask(width - prefix)))
                })
                .collect::<Result<_, String>>()
                .map(TestList::Networks),
            _ => Err(format!("unknown kind `{kind}` (ip, cidr or value)")),
        }
    }

    pub(crate) fn contains(&self, value: &str) -> bool {
        match self {
            TestList::Values(v) => v.iter().any(|e| e == value.trim()),
            TestList::Networks(n) => {
                value.trim().parse::<IpAddr>().is_ok_and(|ip| n.iter().any(|(s, e)| (*s..=*e).contains(&bits(ip))))
            }
        }
    }
}

fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    let cut = (0..b.len()).find(|&i| matches!(b[i], b'#' | b';') && (i == 0 || b[i - 1].is_ascii_whitespace()));
    &line[..cut.unwrap_or(line.len())]
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(u128::from(v6), |v4| u128::from(v4.to_ipv6_mapped())),
    }
}

fn host_mask(host_bits: u32) -> u128 {
    if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 }
}
