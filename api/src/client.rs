//! Who is calling, for the public rate limits: the real client's address, and a limiter keyed
//! on it.
//!
//! The client is the TCP peer, unless the peer is one of the configured trusted proxies
//! (`DEZKY_TRUSTED_PROXIES`, CIDRs): then `X-Forwarded-For` is read from the right, skipping
//! trusted hops, and the first untrusted hop is the client. Anything left of that hop was
//! written by the client itself and is never believed, so rotating the header multiplies
//! nothing. IPv6 clients are counted per /64, the block one subscriber usually holds.
//!
//! The limits are per process: they protect the service from abuse, they are not a quota
//! (several API instances each allow the full rate).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};
use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use ipnet::IpNet;

/// Most trusted-proxy ranges a configuration may list.
pub const MAX_TRUSTED_PROXIES: usize = 64;
/// Most `X-Forwarded-For` values and hops read, from the right (a proxy chain is a handful
/// of hops; a longer header is the client's own invention).
pub const MAX_FORWARDED_HOPS: usize = 16;
/// Clients a limiter remembers before it forgets those whose budget has refilled.
pub const MAX_TRACKED_CLIENTS: usize = 100_000;
/// Prefix length IPv6 clients are counted by.
const IPV6_CLIENT_PREFIX_BITS: u8 = 64;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// Why a trusted-proxy list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustedProxiesError {
    /// An entry is neither an address nor a CIDR range.
    #[error("{0:?} is not an IP address or CIDR range")]
    Invalid(String),
    /// More entries than [`MAX_TRUSTED_PROXIES`].
    #[error("at most {MAX_TRUSTED_PROXIES} trusted proxy ranges may be listed")]
    TooMany,
}

impl FromStr for TrustedProxies {
    type Err = TrustedProxiesError;

    /// A comma-separated list of addresses (`10.0.0.7`) and CIDR ranges (`10.0.0.0/8`,
    /// `fd00::/8`); blank means none.
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut ranges = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let range = IpNet::from_str(entry)
                .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                .map_err(|_| TrustedProxiesError::Invalid(entry.chars().take(64).collect()))?;
            ranges.push(range);
        }
        if ranges.len() > MAX_TRUSTED_PROXIES {
            return Err(TrustedProxiesError::TooMany);
        }
        Ok(Self(ranges))
    }
}

impl TrustedProxies {
    /// Whether `address` is a trusted proxy.
    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|range| range.contains(&address))
    }

    /// The real client behind a request from `peer` carrying `headers`: the peer itself unless
    /// it is trusted, else the right-most untrusted `X-Forwarded-For` hop. When every hop is
    /// trusted, or a hop cannot be read, the last trusted address read stands for the client
    /// (a trusted proxy does not write garbage, so whatever is left of it is the client's).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.client_of(peer, &forwarded_for(headers))
    }

    /// [`TrustedProxies::client`] over the `X-Forwarded-For` values already read.
    pub fn client_of(&self, peer: IpAddr, forwarded_for: &[String]) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let hops = forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in hops.iter().rev().take(MAX_FORWARDED_HOPS) {
            let Some(address) = parse_hop(hop) else {
                break;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// The `X-Forwarded-For` values of a request, at most [`MAX_FORWARDED_HOPS`] of them (the
/// right-most, which are the only ones ever read).
fn forwarded_for(headers: &HeaderMap) -> Vec<String> {
    let values: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect();
    let skip = values.len().saturating_sub(MAX_FORWARDED_HOPS);
    values.into_iter().skip(skip).collect()
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(address) = IpAddr::from_str(hop) {
        return Some(canonical(address));
    }
    SocketAddr::from_str(hop).ok().map(|s| canonical(s.ip()))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are the IPv4 client they map.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The bucket a client is counted in: its IPv4 address, or its IPv6 /64.
pub fn bucket(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX << (128 - u32::from(IPV6_CLIENT_PREFIX_BITS));
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// Where a request came from, as the HTTP layer saw it: the TCP peer (absent for a request
/// that did not arrive over a socket, as in an in-process test) and the `X-Forwarded-For`
/// values it carried. Which of them is the client is decided later, with the configured
/// [`TrustedProxies`] ([`RequestOrigin::client`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    /// The TCP peer.
    pub peer: Option<IpAddr>,
    /// The `X-Forwarded-For` values, the right-most [`MAX_FORWARDED_HOPS`].
    pub forwarded_for: Vec<String>,
}

impl RequestOrigin {
    /// The origin of a request with `extensions` (where the server put the peer address as
    /// axum's `ConnectInfo`) and `headers`.
    pub fn of(extensions: &Extensions, headers: &HeaderMap) -> Self {
        Self {
            peer: extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| peer.ip()),
            forwarded_for: forwarded_for(headers),
        }
    }

    /// The client, believing `X-Forwarded-For` only from `proxies`.
    pub fn client(&self, proxies: &TrustedProxies) -> ClientAddress {
        ClientAddress(
            self.peer
                .map(|peer| proxies.client_of(peer, &self.forwarded_for)),
        )
    }
}

/// The client a request came from: what the public booking calls are rate-limited by.
/// `None` when the server could not tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

/// A per-client limit of so many calls a minute, refilled continuously (GCRA), kept in
/// memory for at most [`MAX_TRACKED_CLIENTS`] clients.
pub struct ClientLimiter {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
}

impl ClientLimiter {
    /// A limiter allowing `per_minute` calls a minute per client, in bursts of up to as many.
    pub fn per_minute(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        }
    }

    /// Counts a call by `client`; false when it is over its limit. A caller whose address is
    /// unknown is counted in one shared bucket: only in-process callers lack one.
    pub fn allow(&self, client: ClientAddress) -> bool {
        let key = client.0.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), bucket);
        if self.limiter.len() >= MAX_TRACKED_CLIENTS {
            // Clients whose budget is full again hold no information; forget them.
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&key).is_ok()
    }
}

/// Public reads (free slots) one client may make per minute.
pub const PUBLIC_READS_PER_MINUTE: NonZeroU32 = NonZeroU32::new(120).expect("nonzero");
/// Public writes (book, confirm, the attendee's cancel and move) one client may make per
/// minute.
pub const PUBLIC_WRITES_PER_MINUTE: NonZeroU32 = NonZeroU32::new(20).expect("nonzero");

/// The limits of the unauthenticated calls, one budget per client for reads and one for
/// writes. One per server (the API context holds it), so limits are per process.
pub struct PublicLimits {
    /// Reads.
    pub reads: ClientLimiter,
    /// Writes.
    pub writes: ClientLimiter,
}

impl Default for PublicLimits {
    fn default() -> Self {
        Self {
            reads: ClientLimiter::per_minute(PUBLIC_READS_PER_MINUTE),
            writes: ClientLimiter::per_minute(PUBLIC_WRITES_PER_MINUTE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in forwarded {
            map.append("x-forwarded-for", value.parse().expect("header value"));
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::default();
        assert_eq!(
            proxies.client(ip("203.0.113.9"), &headers(&["198.51.100.1"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let proxies: TrustedProxies = "10.0.0.0/8, 192.0.2.7".parse().expect("list");
        // The client forged the first entry; the proxies appended the rest.
        let forwarded = headers(&["1.1.1.1, 198.51.100.23", "10.1.2.3"]);
        assert_eq!(
            proxies.client(ip("192.0.2.7"), &forwarded),
            ip("198.51.100.23")
        );
    }

    #[test]
    fn a_trusted_peer_without_the_header_is_itself_the_client() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().expect("list");
        assert_eq!(
            proxies.client(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_at_the_last_trusted_address() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().expect("list");
        let forwarded = headers(&["garbage, 10.9.9.9"]);
        assert_eq!(proxies.client(ip("10.0.0.1"), &forwarded), ip("10.9.9.9"));
    }

    #[test]
    fn hops_with_ports_and_mapped_addresses_are_read_as_their_address() {
        let proxies: TrustedProxies = "10.0.0.0/8".parse().expect("list");
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.1"), &headers(&["[2001:db8::5]:443"])),
            ip("2001:db8::5")
        );
        assert_eq!(
            proxies.client(ip("10.0.0.1"), &headers(&["198.51.100.4:5678"])),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn a_bad_proxy_list_is_refused() {
        assert!(matches!(
            "10.0.0.0/8, example.com".parse::<TrustedProxies>(),
            Err(TrustedProxiesError::Invalid(_))
        ));
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
    }

    #[test]
    fn a_request_without_a_socket_has_no_client_address() {
        let origin = RequestOrigin::of(&Extensions::new(), &headers(&["198.51.100.1"]));
        assert_eq!(
            origin.client(&TrustedProxies::default()),
            ClientAddress(None)
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("198.51.100.4")), ip("198.51.100.4"));
    }

    #[test]
    fn each_client_has_its_own_budget() {
        let limiter = ClientLimiter::per_minute(NonZeroU32::new(2).expect("nonzero"));
        let a = ClientAddress(Some(ip("198.51.100.1")));
        let b = ClientAddress(Some(ip("198.51.100.2")));
        assert!(limiter.allow(a) && limiter.allow(a));
        assert!(!limiter.allow(a));
        assert!(limiter.allow(b));
    }
}
