//! The port allocator: even/odd RTP/RTCP pairs out of `[media] port_range`, per
//! local IP, handed out in least-recently-used order and kept out of use for a
//! quarantine after release.
//!
//! Why this shape: an RTP port is conventionally even with RTCP on the next odd
//! port (RFC 3550 §11), so the unit of allocation is a pair. A pool is per local IP
//! because the same port number is free independently on each address. The free
//! list is a FIFO starting at a random offset: a released pair goes to the back,
//! so the pair handed out next is the one idle longest, and ports are not
//! predictable from one call to the next (which would help RTP injection). The
//! quarantine is a hard floor on top of that: when few pairs are free, a pair
//! released less than `quarantine` ago is still not reused, so late packets of an
//! ended call never reach the call that follows it on the same port. Everything is
//! bounded by the range: a pool never holds more than its pairs.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Most distinct local addresses the relay serves (one per interface in practice).
const MAX_ADDRESSES: usize = 64;

/// Hands out RTP port numbers (the even port of a pair) per local IP.
#[derive(Debug)]
pub struct PortAllocator {
    first: u16,
    pairs: u16,
    quarantine: Duration,
    pools: HashMap<IpAddr, Pool>,
}

#[derive(Debug)]
struct Pool {
    free: VecDeque<u16>,
    resting: VecDeque<(Instant, u16)>,
    busy: Vec<bool>,
}

impl PortAllocator {
    /// Pairs from `min..=max` (the first pair starts at the first even port).
    pub fn new(min: u16, max: u16, quarantine: Duration) -> PortAllocator {
        let first = min.saturating_add(min % 2);
        let pairs = if max > first {
            // u32: 65535 - first + 1 must not overflow.
            u16::try_from((u32::from(max) - u32::from(first)).div_ceil(2)).unwrap_or(0)
        } else {
            0
        };
        PortAllocator {
            first,
            pairs,
            quarantine,
            pools: HashMap::new(),
        }
    }

    /// How many pairs one address offers.
    pub fn capacity(&self) -> usize {
        usize::from(self.pairs)
    }

    /// Pairs of `ip` in use right now.
    pub fn in_use(&self, ip: IpAddr) -> usize {
        self.pools
            .get(&ip)
            .map_or(0, |p| p.busy.iter().filter(|b| **b).count())
    }

    /// The pool of `ip`, created on first use (bounded by `MAX_ADDRESSES`).
    fn pool(&mut self, ip: IpAddr) -> Option<&mut Pool> {
        if !self.pools.contains_key(&ip) {
            if self.pools.len() >= MAX_ADDRESSES || self.pairs == 0 {
                return None;
            }
            let mut free: VecDeque<u16> = (0..self.pairs).collect();
            free.rotate_left(usize::from(fastrand::u16(0..self.pairs)));
            self.pools.insert(
                ip,
                Pool {
                    free,
                    resting: VecDeque::new(),
                    busy: vec![false; usize::from(self.pairs)],
                },
            );
        }
        self.pools.get_mut(&ip)
    }

    /// The next RTP port on `ip`, or `None` when every pair is busy or resting.
    pub fn take(&mut self, ip: IpAddr, now: Instant) -> Option<u16> {
        let quarantine = self.quarantine;
        let first = self.first;
        let pool = self.pool(ip)?;
        while let Some(&(since, idx)) = pool.resting.front() {
            if now.saturating_duration_since(since) < quarantine {
                break;
            }
            pool.resting.pop_front();
            pool.free.push_back(idx);
        }
        let idx = pool.free.pop_front()?;
        if let Some(b) = pool.busy.get_mut(usize::from(idx)) {
            *b = true;
        }
        Some(first + 2 * idx)
    }

    /// Takes the pair of `rtp_port` on `ip` whatever its place in the free list
    /// (a call restored after a restart keeps the ports its peers were told).
    /// `false` when the port is outside the range, odd, or already busy.
    pub fn claim(&mut self, ip: IpAddr, rtp_port: u16) -> bool {
        let Some(off) = rtp_port.checked_sub(self.first) else {
            return false;
        };
        if off % 2 != 0 || off / 2 >= self.pairs {
            return false;
        }
        let idx = off / 2;
        let Some(pool) = self.pool(ip) else {
            return false;
        };
        match pool.busy.get_mut(usize::from(idx)) {
            Some(b) if !*b => *b = true,
            _ => return false,
        }
        pool.free.retain(|&i| i != idx);
        pool.resting.retain(|&(_, i)| i != idx);
        true
    }

    /// Returns a pair (by its RTP port); it rests for the quarantine before reuse.
    /// Ports not handed out (or already returned) are ignored.
    pub fn give_back(&mut self, ip: IpAddr, rtp_port: u16, now: Instant) {
        let Some(pool) = self.pools.get_mut(&ip) else {
            return;
        };
        let Some(off) = rtp_port.checked_sub(self.first) else {
            return;
        };
        if off % 2 != 0 {
            return;
        }
        let idx = off / 2;
        match pool.busy.get_mut(usize::from(idx)) {
            Some(b) if *b => *b = false,
            _ => return,
        }
        pool.resting.push_back((now, idx));
    }
}

/// A bound RTP/RTCP socket pair on one local address.
#[derive(Debug)]
pub struct BoundPair {
    /// RTP socket (even port).
    pub rtp: UdpSocket,
    /// RTCP socket (RTP port + 1).
    pub rtcp: UdpSocket,
    /// The RTP port.
    pub port: u16,
}

/// Binds the pair of `port` (RTP) and `port + 1` (RTCP) on `ip`, non-blocking.
fn bind_at(ip: IpAddr, port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let bind = |p: u16| {
        let s = UdpSocket::bind(SocketAddr::new(ip, p))?;
        s.set_nonblocking(true)?;
        Ok::<_, io::Error>(s)
    };
    let rtcp_port = port.checked_add(1).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "RTP port 65535 has no RTCP port",
        )
    })?;
    let rtp = bind(port)?;
    Ok((rtp, bind(rtcp_port)?))
}

/// Claims and binds exactly the pair of `port` on `ip` (restoring a call).
pub fn bind_exact(
    alloc: &mut PortAllocator,
    ip: IpAddr,
    port: u16,
    now: Instant,
) -> io::Result<BoundPair> {
    if !alloc.claim(ip, port) {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("media port {port} on {ip} is outside the range or taken"),
        ));
    }
    match bind_at(ip, port) {
        Ok((rtp, rtcp)) => Ok(BoundPair { rtp, rtcp, port }),
        Err(e) => {
            alloc.give_back(ip, port, now);
            Err(e)
        }
    }
}

/// Takes pairs from `alloc` until both ports of one bind on `ip`. A pair that
/// fails to bind (another program holds a port) rests like a released one.
pub fn bind_pair(alloc: &mut PortAllocator, ip: IpAddr, now: Instant) -> io::Result<BoundPair> {
    let tries = alloc.capacity().min(64);
    let mut last_err = None;
    for _ in 0..tries {
        let Some(port) = alloc.take(ip, now) else {
            break;
        };
        match bind_at(ip, port) {
            Ok((rtp, rtcp)) => return Ok(BoundPair { rtp, rtcp, port }),
            Err(e) => {
                alloc.give_back(ip, port, now);
                last_err = Some(e);
                // An address we do not own will never bind: stop at once.
                if last_err
                    .as_ref()
                    .is_some_and(|e| e.kind() == io::ErrorKind::AddrNotAvailable)
                {
                    break;
                }
            }
        }
    }
    Err(last_err.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("no free media port pair on {ip}"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn pairs_are_even_odd_and_inside_the_range() {
        let mut a = PortAllocator::new(30001, 30010, Duration::ZERO);
        // 30002/3, 30004/5, 30006/7, 30008/9
        assert_eq!(a.capacity(), 4);
        let now = Instant::now();
        let mut got: Vec<u16> = (0..4).map(|_| a.take(IP, now).unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![30002, 30004, 30006, 30008]);
        assert_eq!(a.take(IP, now), None, "bounded by the range");
        assert_eq!(a.in_use(IP), 4);
        let b = PortAllocator::new(30000, 30001, Duration::ZERO);
        assert_eq!(b.capacity(), 1);
        let c = PortAllocator::new(30000, 30000, Duration::ZERO);
        assert_eq!(c.capacity(), 0);
        let d = PortAllocator::new(65534, 65535, Duration::ZERO);
        assert_eq!(d.capacity(), 1);
    }

    #[test]
    fn a_claimed_pair_is_not_handed_out_again() {
        let mut a = PortAllocator::new(30000, 30003, Duration::ZERO);
        assert!(a.claim(IP, 30002));
        assert!(!a.claim(IP, 30002), "already busy");
        assert!(!a.claim(IP, 30003), "odd");
        assert!(!a.claim(IP, 30004), "outside");
        assert!(!a.claim(IP, 29998), "below");
        let now = Instant::now();
        assert_eq!(a.take(IP, now), Some(30000));
        assert_eq!(a.take(IP, now), None);
        a.give_back(IP, 30002, now);
        assert_eq!(a.take(IP, now), Some(30002));
    }

    #[test]
    fn addresses_have_their_own_pools() {
        let mut a = PortAllocator::new(30000, 30001, Duration::ZERO);
        let now = Instant::now();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert_eq!(a.take(IP, now), Some(30000));
        assert_eq!(a.take(other, now), Some(30000));
        assert_eq!(a.take(IP, now), None);
    }

    #[test]
    fn released_pairs_rest_for_the_quarantine() {
        let q = Duration::from_secs(5);
        let mut a = PortAllocator::new(30000, 30003, q);
        let t0 = Instant::now();
        let p1 = a.take(IP, t0).unwrap();
        let p2 = a.take(IP, t0).unwrap();
        a.give_back(IP, p1, t0);
        assert_eq!(a.take(IP, t0 + Duration::from_secs(4)), None);
        assert_eq!(a.take(IP, t0 + q), Some(p1));
        // Double release and foreign ports change nothing.
        a.give_back(IP, p2, t0);
        a.give_back(IP, p2, t0);
        a.give_back(IP, 1, t0);
        a.give_back(IP, p2 + 1, t0);
        assert_eq!(a.take(IP, t0 + q), Some(p2));
        assert_eq!(a.take(IP, t0 + q), None);
    }

    #[test]
    fn least_recently_used_first() {
        let mut a = PortAllocator::new(30000, 30009, Duration::ZERO);
        let t = Instant::now();
        let first = a.take(IP, t).unwrap();
        a.give_back(IP, first, t);
        // Every other pair comes before the one just released.
        for _ in 0..4 {
            assert_ne!(a.take(IP, t), Some(first));
        }
        assert_eq!(a.take(IP, t), Some(first));
    }

    #[test]
    fn bind_skips_ports_held_by_others() {
        let mut a = PortAllocator::new(30100, 30103, Duration::ZERO);
        let t = Instant::now();
        let p = a.take(IP, t).unwrap();
        a.give_back(IP, p, t);
        let q = if p == 30100 { 30102 } else { 30100 };
        // Someone else holds the RTCP port of the pair that comes next.
        let _hold = UdpSocket::bind((IP, q + 1)).unwrap();
        let got = bind_pair(&mut a, IP, t).unwrap();
        assert_eq!(got.port, p);
        assert_eq!(got.rtp.local_addr().unwrap().port(), p);
        assert_eq!(got.rtcp.local_addr().unwrap().port(), p + 1);
    }
}
