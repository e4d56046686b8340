//! Network vocabulary: the one outbound HTTP client builder (every request Vigil makes,
//! receivers and the anchor URL, goes through a client with a timeout, no redirects, so a
//! receiver cannot bounce a signed payload or a token elsewhere, and a `vigil/<version>` user
//! agent), and [`IpNet`], the IP networks (CIDR) the allowlist of decisions matches.

use std::time::Duration;

/// The HTTP client settings every outbound request uses: timeout, no redirects, a user agent.
pub fn http_client(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
}

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`; a single
/// address is a network of one, `/32` or `/128`). Parsed from text by [`IpNet::parse`], which
/// normalises it: host bits are cleared, IPv6 text is in canonical (lower-case, compressed)
/// form, and an IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4 one it names
/// (`10.0.0.0/8`), so every spelling of one network compares equal. The allowlist of
/// decisions matches addresses and ranges with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr` or `addr/prefix` (IPv4 or IPv6); the error says what is wrong.
    pub fn parse(text: &str) -> Result<IpNet, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let ip: std::net::IpAddr =
            addr.parse().map_err(|_| format!("`{text}` is not an IP address or a CIDR network (e.g. 10.0.0.0/8)"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be between 0 and {max}"))?,
            Some(_) => return Err(format!("`{text}`: the prefix length must be a number between 0 and {max}")),
        };
        Ok(Self::new(ip, prefix))
    }

    /// The network of `ip` with `prefix` bits (clamped to the family's width), normalised.
    pub fn new(ip: std::net::IpAddr, prefix: u8) -> IpNet {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        match ip {
            IpAddr::V4(v4) => {
                let prefix = prefix.min(32);
                let bits = u32::from(v4) & mask32(prefix);
                IpNet { addr: IpAddr::V4(Ipv4Addr::from(bits)), prefix }
            }
            IpAddr::V6(v6) => {
                let prefix = prefix.min(128);
                if prefix >= 96
                    && let Some(v4) = v6.to_ipv4_mapped()
                {
                    return Self::new(IpAddr::V4(v4), prefix - 96);
                }
                let bits = u128::from(v6) & mask128(prefix);
                IpNet { addr: IpAddr::V6(Ipv6Addr::from(bits)), prefix }
            }
        }
    }

    /// The first address.
    pub fn addr(&self) -> std::net::IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether it is a single address (`/32`, `/128`).
    pub fn is_host(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    /// The range as IPv6 bits (IPv4 as IPv4-mapped) and its prefix, so both families compare.
    fn as_v6(&self) -> (u128, u8) {
        match self.addr {
            std::net::IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), self.prefix + 96),
            std::net::IpAddr::V6(v6) => (u128::from(v6), self.prefix),
        }
    }

    /// Whether the address is in the network (an IPv4-mapped IPv6 address is its IPv4 one).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.overlaps(&IpNet::new(ip, 128))
    }

    /// Whether the two networks share an address (one holds the other).
    pub fn overlaps(&self, other: &IpNet) -> bool {
        let ((a, pa), (b, pb)) = (self.as_v6(), other.as_v6());
        let mask = mask128(pa.min(pb));
        a & mask == b & mask
    }
}

impl std::fmt::Display for IpNet {
    /// `10.0.0.0/8`; a single address without its prefix (`192.0.2.1`, `::1`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_host() { write!(f, "{}", self.addr) } else { write!(f, "{}/{}", self.addr, self.prefix) }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix.min(32))) }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix.min(128))) }
}

#[cfg(test)]
mod tests {
    use super::IpNet;

    fn net(text: &str) -> IpNet {
        IpNet::parse(text).unwrap()
    }

    #[test]
    fn networks_are_parsed_and_normalised() {
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8", "host bits are cleared");
        assert_eq!(net("192.0.2.1").to_string(), "192.0.2.1");
        assert_eq!(net("192.0.2.1/32").to_string(), "192.0.2.1");
        assert_eq!(net("2001:DB8:0:0::1").to_string(), "2001:db8::1", "IPv6 in canonical text");
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(net("::ffff:192.0.2.1").to_string(), "192.0.2.1", "IPv4-mapped is IPv4");
        assert_eq!(net("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert_eq!(net("0.0.0.0/0").to_string(), "0.0.0.0/0");
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0/8",
            "host",
            "1.2.3.4/8/8",
            "10.0.0.0/0008",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn membership_and_overlap_cross_families() {
        let lan = net("10.0.0.0/8");
        assert!(lan.contains("10.255.0.1".parse().unwrap()));
        assert!(!lan.contains("11.0.0.1".parse().unwrap()));
        assert!(lan.contains("::ffff:10.0.0.1".parse().unwrap()), "an IPv4-mapped address is its IPv4 one");
        assert!(net("::/0").contains("192.0.2.1".parse().unwrap()), "::/0 holds the IPv4-mapped space");
        assert!(!net("2001:db8::/32").contains("192.0.2.1".parse().unwrap()));
        assert!(net("::1").contains("::1".parse().unwrap()));
        assert!(lan.overlaps(&net("10.2.0.0/16")) && net("10.2.0.0/16").overlaps(&lan));
        assert!(net("0.0.0.0/0").overlaps(&net("127.0.0.1")));
        assert!(!lan.overlaps(&net("192.168.0.0/16")));
        assert!(net("2001:db8::/32").overlaps(&net("2001:db8:1::/48")));
    }
}
