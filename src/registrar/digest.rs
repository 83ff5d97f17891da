//! Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760),
//! sans-IO: the caller passes the time in and gets header values and verdicts out.
//!
//! Nonces are stateless: each carries its issue time and a random salt, sealed with
//! an HMAC-SHA256 under the node secret, so any nonce this node issued can be checked
//! (and its age read) without a table of outstanding nonces. What does need memory
//! is replay protection: a bounded map from nonce to the highest nonce-count seen,
//! so a captured request cannot be sent again.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::sip::Digest;
use crate::store::Store;

/// How long a nonce is accepted after it was issued, unless configured otherwise.
/// Long enough for a phone to answer a challenge and refresh a few times, short
/// enough that a captured nonce is soon useless.
pub const DEFAULT_NONCE_TTL: Duration = Duration::from_secs(300);

/// How many nonces the replay table remembers, unless configured otherwise: about
/// 8 MB at most, and at the default lifetime room for 300 fresh nonces a second.
pub const DEFAULT_NC_LIMIT: usize = 100_000;

/// The store key of the node secret that seals nonces.
pub const SECRET_KEY: &str = "node/secret";

/// Domain separation for the nonce MAC, so the node secret's MACs cannot be
/// confused with any other use of the same key.
const NONCE_LABEL: &[u8] = b"sipveil nonce v1\0";

/// Bytes of the nonce MAC kept: 128 bits is far beyond guessing within a lifetime.
const MAC_LEN: usize = 16;
/// Issue time (ms, big-endian u64) + salt (u64) + truncated MAC.
const NONCE_LEN: usize = 8 + 8 + MAC_LEN;

/// The hash a digest is computed with. Subscribers keep one HA1 per algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5 (RFC 2617): what every SIP phone speaks; offered second.
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760): offered first, used by newer clients.
    Sha256,
}

impl Algorithm {
    /// The token used in the `algorithm=` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses an `algorithm=` value; the second field says whether it is the `-sess`
    /// variant (HA1 mixed with the nonce and cnonce). Case-insensitive, as RFC 7616
    /// asks.
    pub fn parse(token: &str) -> Option<(Algorithm, bool)> {
        let t = token.trim();
        let (base, sess) = match t.len().checked_sub(5).and_then(|i| t.get(i..)) {
            Some(tail) if tail.eq_ignore_ascii_case("-sess") => {
                (t.get(..t.len() - 5).unwrap_or(""), true)
            }
            _ => (t, false),
        };
        if base.eq_ignore_ascii_case("MD5") {
            Some((Algorithm::Md5, sess))
        } else if base.eq_ignore_ascii_case("SHA-256") {
            Some((Algorithm::Sha256, sess))
        } else {
            None
        }
    }

    /// Lower-case hex of the hash of `data`, the form every digest value takes.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data)),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data)),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HA1 = H(username ":" realm ":" password): what a subscriber record keeps instead
/// of the password, enough to verify responses but not to recover the password.
pub fn ha1(alg: Algorithm, user: &str, realm: &str, password: &str) -> String {
    alg.hash_hex(format!("{user}:{realm}:{password}").as_bytes())
}

/// The `response=` value a client computes (RFC 2617 §3.2.2.1 with RFC 7616's
/// algorithms). `qop` is `Some((qop, nc, cnonce))` for `qop=auth`, `None` for the
/// RFC 2069 form without qop. `ha1` must already be the session HA1 for `-sess`.
pub fn response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = alg.hash_hex(format!("{method}:{uri}").as_bytes());
    let data = match qop {
        Some((qop, nc, cnonce)) => format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"),
        None => format!("{ha1}:{nonce}:{ha2}"),
    };
    alg.hash_hex(data.as_bytes())
}

/// The outcome of checking an `Authorization`/`Proxy-Authorization` header.
///
/// `UnknownUser` and `BadResponse` are kept apart for the log; a registrar should
/// answer both the same way on the wire so that user names cannot be probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthResult {
    /// The credentials are right and fresh: the request comes from `user`.
    Ok {
        /// The authenticated username.
        user: String,
    },
    /// The nonce is one of ours but too old (or forgotten): challenge again with
    /// `stale=true` so the client retries without asking its user for a password.
    Stale,
    /// The user exists but the response does not match: wrong password.
    BadResponse {
        /// The username the client claimed.
        user: String,
    },
    /// No credentials are on file for this username.
    UnknownUser {
        /// The username the client claimed.
        user: String,
    },
    /// A nonce-count already seen for this nonce: a replayed request.
    Replay,
    /// The header cannot be checked (missing parameter, other realm, unsupported
    /// algorithm or qop, a nonce this node did not issue); the reason is for logs.
    Malformed(&'static str),
}

/// Issues challenges and checks credentials for one node.
///
/// Holds the node secret, the nonce lifetime and the replay table; everything
/// else comes in as arguments, the time included, so tests need no clock.
pub struct DigestAuth {
    /// HMAC-SHA256 keyed with the node secret, cloned for each nonce (keying once).
    mac_key: Hmac<Sha256>,
    nonce_ttl: Duration,
    nc_seen: NonceCounts,
}

impl fmt::Debug for DigestAuth {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestAuth")
            .field("nonce_ttl", &self.nonce_ttl)
            .field("nonces_tracked", &self.nc_seen.map.len())
            .finish_non_exhaustive()
    }
}

impl DigestAuth {
    /// A verifier with the default nonce lifetime and replay-table size.
    pub fn new(secret: [u8; 32]) -> DigestAuth {
        // HMAC pads a key shorter than the hash's block to the block size with
        // zeros (RFC 2104 §2); padding here makes keying infallible.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&secret);
        DigestAuth {
            mac_key: <Hmac<Sha256> as KeyInit>::new(&block.into()),
            nonce_ttl: DEFAULT_NONCE_TTL,
            nc_seen: NonceCounts::new(DEFAULT_NC_LIMIT),
        }
    }

    /// Sets how long a nonce is accepted after it was issued.
    pub fn with_nonce_ttl(mut self, ttl: Duration) -> DigestAuth {
        self.nonce_ttl = ttl;
        self
    }

    /// Sets how many nonces the replay table remembers (at least one).
    pub fn with_nc_limit(mut self, limit: usize) -> DigestAuth {
        self.nc_seen = NonceCounts::new(limit.max(1));
        self
    }

    /// The nonce lifetime in force.
    pub fn nonce_ttl(&self) -> Duration {
        self.nonce_ttl
    }

    /// Header values for a 401 `WWW-Authenticate` or 407 `Proxy-Authenticate`:
    /// SHA-256 first and MD5 second (RFC 8760 §2.4: the client takes the first it
    /// supports), both with the same fresh nonce and `qop="auth"`. `stale` adds
    /// `stale=true`, telling the client its password was right but the nonce old.
    pub fn challenge(&self, realm: &str, stale: bool, now: SystemTime) -> Vec<String> {
        self.challenge_with(realm, stale, now, &[Algorithm::Sha256, Algorithm::Md5])
    }

    /// Like [`DigestAuth::challenge`], with one challenge per algorithm of `algs`
    /// in that order (the operator's choice: some clients give up on the whole
    /// response when any challenge names an algorithm they do not know).
    pub fn challenge_with(
        &self,
        realm: &str,
        stale: bool,
        now: SystemTime,
        algs: &[Algorithm],
    ) -> Vec<String> {
        let salt = getrandom::u64().unwrap_or_else(|_| fastrand::u64(..));
        let nonce = self.nonce_at(realm, unix_ms(now), salt);
        let realm = quote(realm);
        let stale = if stale { ", stale=true" } else { "" };
        algs.iter()
            .map(|alg| {
                format!(
                    "Digest realm={realm}, nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    alg.name()
                )
            })
            .collect()
    }

    /// Checks credentials sent for `method` against `expected_realm`.
    ///
    /// `ha1_lookup(user, algorithm)` gives the stored HA1 for that username in this
    /// realm, `None` when there is no such subscriber. The response is checked
    /// before the nonce's age, so `Stale` (and with it a silent retry) is only
    /// granted to a client that knows the password. The nonce-count is recorded
    /// only after the response proved right, so forged requests cannot burn counts.
    /// The `uri` parameter is taken as sent; a caller that wants it to match the
    /// Request-URI compares `creds.get("uri")` itself.
    pub fn verify(
        &mut self,
        creds: &Digest<'_>,
        method: &str,
        expected_realm: &str,
        ha1_lookup: impl Fn(&str, Algorithm) -> Option<String>,
        now: SystemTime,
    ) -> AuthResult {
        if !creds.scheme.eq_ignore_ascii_case("Digest") {
            return AuthResult::Malformed("authentication scheme is not Digest");
        }
        let Some(user) = creds.get("username") else {
            return AuthResult::Malformed("no username");
        };
        let Some(realm) = creds.get("realm") else {
            return AuthResult::Malformed("no realm");
        };
        if realm != expected_realm {
            return AuthResult::Malformed("credentials for another realm");
        }
        let Some(nonce) = creds.get("nonce") else {
            return AuthResult::Malformed("no nonce");
        };
        let Some(uri) = creds.get("uri") else {
            return AuthResult::Malformed("no uri");
        };
        let Some(client_response) = creds.get("response") else {
            return AuthResult::Malformed("no response");
        };
        let (alg, sess) = match creds.get("algorithm") {
            None => (Algorithm::Md5, false),
            Some(a) => match Algorithm::parse(&a) {
                Some(p) => p,
                None => return AuthResult::Malformed("unsupported algorithm"),
            },
        };
        let cnonce = creds.get("cnonce");
        let qop = match creds.get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let Some(nc) = creds.get("nc") else {
                    return AuthResult::Malformed("qop=auth without nc");
                };
                let Some(count) = parse_nc(&nc) else {
                    return AuthResult::Malformed("nc is not 8 hex digits");
                };
                let Some(cn) = cnonce.as_deref() else {
                    return AuthResult::Malformed("qop=auth without cnonce");
                };
                Some((q, nc, cn.to_owned(), count))
            }
            Some(_) => return AuthResult::Malformed("unsupported qop"),
        };
        let Some(stamp) = self.open_nonce(expected_realm, &nonce) else {
            return AuthResult::Malformed("nonce not issued by this node");
        };
        let Some(mut h1) = ha1_lookup(&user, alg) else {
            return AuthResult::UnknownUser {
                user: user.into_owned(),
            };
        };
        if sess {
            let Some(cn) = cnonce.as_deref() else {
                return AuthResult::Malformed("-sess algorithm without cnonce");
            };
            h1 = alg.hash_hex(format!("{h1}:{nonce}:{cn}").as_bytes());
        }
        let expected = response(
            alg,
            &h1,
            &nonce,
            qop.as_ref()
                .map(|(q, nc, cn, _)| (q.as_ref(), nc.as_ref(), cn.as_str())),
            method,
            &uri,
        );
        if !ct_eq(
            expected.as_bytes(),
            client_response.to_ascii_lowercase().as_bytes(),
        ) {
            return AuthResult::BadResponse {
                user: user.into_owned(),
            };
        }
        let now_ms = unix_ms(now);
        let ttl_ms = u64::try_from(self.nonce_ttl.as_millis()).unwrap_or(u64::MAX);
        // A nonce from the future beyond the lifetime means the clock jumped; it is
        // as untrustworthy as an old one.
        if now_ms.saturating_sub(stamp.issued_ms) > ttl_ms
            || stamp.issued_ms.saturating_sub(now_ms) > ttl_ms
        {
            return AuthResult::Stale;
        }
        // Without qop a nonce cannot be counted, so it is good for one request; a
        // second use asks the client for a fresh nonce rather than failing it.
        let count = qop.as_ref().map_or(1, |(.., c)| *c);
        match self
            .nc_seen
            .advance(stamp, count, now_ms.saturating_sub(ttl_ms))
        {
            NcVerdict::Fresh => AuthResult::Ok {
                user: user.into_owned(),
            },
            NcVerdict::Repeated if qop.is_none() => AuthResult::Stale,
            NcVerdict::Repeated => AuthResult::Replay,
            NcVerdict::Forgotten => AuthResult::Stale,
        }
    }

    /// Builds a nonce: hex of issue time, salt and the MAC over both and the realm.
    fn nonce_at(&self, realm: &str, issued_ms: u64, salt: u64) -> String {
        let mut raw = [0u8; NONCE_LEN];
        raw[..8].copy_from_slice(&issued_ms.to_be_bytes());
        raw[8..16].copy_from_slice(&salt.to_be_bytes());
        let tag = self.nonce_mac(realm, &raw[..16]).finalize().into_bytes();
        raw[16..].copy_from_slice(&tag[..MAC_LEN]);
        hex::encode(raw)
    }

    /// Checks a nonce's MAC; gives its issue time and salt when it is ours.
    fn open_nonce(&self, realm: &str, nonce: &str) -> Option<NonceStamp> {
        let mut raw = [0u8; NONCE_LEN];
        hex::decode_to_slice(nonce, &mut raw).ok()?;
        self.nonce_mac(realm, &raw[..16])
            .verify_truncated_left(&raw[16..])
            .ok()?;
        let issued_ms = u64::from_be_bytes(raw[..8].try_into().ok()?);
        let salt = u64::from_be_bytes(raw[8..16].try_into().ok()?);
        Some(NonceStamp { issued_ms, salt })
    }

    fn nonce_mac(&self, realm: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac_key.clone();
        mac.update(NONCE_LABEL);
        mac.update(realm.as_bytes());
        mac.update(b"\0");
        mac.update(body);
        mac
    }
}

/// Reads the node secret from the store, creating and flushing 32 fresh random bytes
/// on first start. It is persisted so nonces handed out before a restart still
/// verify after it.
pub fn load_or_create_secret(store: &dyn Store) -> anyhow::Result<[u8; 32]> {
    if let Some(v) = store.get(SECRET_KEY)? {
        if let Ok(secret) = <[u8; 32]>::try_from(v.as_slice()) {
            return Ok(secret);
        }
        // Only outstanding nonces depend on it, so replacing a damaged secret costs
        // at most one extra challenge per client.
        tracing::warn!(
            "node secret in the store has {} bytes, not 32; replacing it",
            v.len()
        );
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| anyhow::anyhow!("no randomness for the node secret: {e}"))?;
    store.put(SECRET_KEY, &secret)?;
    store.flush()?;
    Ok(secret)
}

/// What a nonce carries; together the two fields identify it in the replay table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NonceStamp {
    issued_ms: u64,
    salt: u64,
}

impl NonceStamp {
    fn key(self) -> u128 {
        (u128::from(self.issued_ms) << 64) | u128::from(self.salt)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum NcVerdict {
    /// Higher than any count seen for this nonce: recorded.
    Fresh,
    /// Not higher than a count already seen.
    Repeated,
    /// The nonce may have been pushed out of the full table, so its history is
    /// unknown: the client must take a fresh nonce.
    Forgotten,
}

/// Highest nonce-count seen per nonce, bounded: entries leave in the order they
/// came, expired ones first chance, live ones only when the table is full.
#[derive(Debug)]
struct NonceCounts {
    map: HashMap<u128, u32>,
    order: VecDeque<NonceStamp>,
    limit: usize,
    /// Latest issue time of a live nonce pushed out while full. A nonce issued no
    /// later than this that is missing from the table may have been used before.
    evicted_upto_ms: Option<u64>,
}

impl NonceCounts {
    fn new(limit: usize) -> NonceCounts {
        NonceCounts {
            map: HashMap::new(),
            order: VecDeque::new(),
            limit,
            evicted_upto_ms: None,
        }
    }

    /// Records `nc` for the nonce if it is higher than any seen. Nonces issued
    /// before `expired_before_ms` are dropped as they reach the front.
    fn advance(&mut self, stamp: NonceStamp, nc: u32, expired_before_ms: u64) -> NcVerdict {
        while let Some(front) = self.order.front().copied() {
            if front.issued_ms >= expired_before_ms {
                break;
            }
            self.order.pop_front();
            self.map.remove(&front.key());
        }
        if let Some(seen) = self.map.get_mut(&stamp.key()) {
            if nc <= *seen {
                return NcVerdict::Repeated;
            }
            *seen = nc;
            return NcVerdict::Fresh;
        }
        if self.evicted_upto_ms.is_some_and(|t| stamp.issued_ms <= t) {
            return NcVerdict::Forgotten;
        }
        if nc == 0 {
            return NcVerdict::Repeated;
        }
        while self.map.len() >= self.limit {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&old.key());
            self.evicted_upto_ms = Some(
                self.evicted_upto_ms
                    .map_or(old.issued_ms, |t| t.max(old.issued_ms)),
            );
        }
        self.map.insert(stamp.key(), nc);
        self.order.push_back(stamp);
        NcVerdict::Fresh
    }
}

/// `nc` is 8 hex digits (RFC 2617 §3.2.2); fewer are tolerated, more are not.
fn parse_nc(nc: &str) -> Option<u32> {
    if nc.is_empty() || nc.len() > 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(nc, 16).ok()
}

/// Milliseconds since the Unix epoch; a clock before 1970 counts as the epoch.
fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A quoted-string with `"` and `\` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Equality whose time does not depend on where the inputs differ, so response
/// checks leak nothing about how close a guess came.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALM: &str = "example.test";
    const T0: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn auth() -> DigestAuth {
        DigestAuth::new([7u8; 32])
    }

    /// The nonce offered in a challenge header value.
    fn nonce_of(header: &str) -> String {
        let d = Digest::parse(header).unwrap();
        d.get("nonce").unwrap().into_owned()
    }

    fn lookup(user: &str, alg: Algorithm) -> Option<String> {
        (user == "alice").then(|| ha1(alg, "alice", REALM, "s3cret"))
    }

    /// Builds an Authorization value the way a client would, with qop=auth.
    #[allow(clippy::too_many_arguments)]
    fn creds(
        alg: Algorithm,
        user: &str,
        password: &str,
        nonce: &str,
        nc: &str,
        cnonce: &str,
        method: &str,
        uri: &str,
    ) -> String {
        let h1 = ha1(alg, user, REALM, password);
        let r = response(alg, &h1, nonce, Some(("auth", nc, cnonce)), method, uri);
        format!(
            "Digest username=\"{user}\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             response=\"{r}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
            alg.name()
        )
    }

    fn check(a: &mut DigestAuth, header: &str, method: &str, now: u64) -> AuthResult {
        let d = Digest::parse(header).unwrap();
        a.verify(&d, method, REALM, lookup, at(now))
    }

    #[test]
    fn ha1_matches_coreutils() {
        assert_eq!(ha1(Algorithm::Md5, "alice", REALM, "s3cret"), MD5_ALICE);
        assert_eq!(
            ha1(Algorithm::Sha256, "alice", REALM, "s3cret"),
            SHA256_ALICE
        );
    }

    // Computed outside Rust:
    //   printf 'alice:example.test:s3cret' | md5sum
    //   printf 'alice:example.test:s3cret' | sha256sum
    const MD5_ALICE: &str = "d815d6ca18261dac9caedec28c6dc58a";
    const SHA256_ALICE: &str = "ad681484adb266c0aae2d2283e74f96e032f99b2642896690c964606529465ef";

    #[test]
    fn rfc2617_md5_vector() {
        // RFC 2617 §3.5: Mufasa / "Circle Of Life" at testrealm@host.com, with the
        // response the RFC prints, 6629fae49393a05397450978507c4ef1.
        let h1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert_eq!(h1, "939e7578ed9e3c518a452acee763bce9");
        let r = response(
            Algorithm::Md5,
            &h1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("auth", "00000001", "0a4f113b")),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc7616_sha256_vector() {
        // RFC 7616 §3.9.1, SHA-256 with the RFC's printed response.
        let h1 = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let r = response(
            Algorithm::Sha256,
            &h1,
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            Some((
                "auth",
                "00000001",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            )),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn sip_register_vector_by_hand() {
        // Worked out in a shell, independently of this module:
        //   HA1=$(printf 'bob:example.test:zanzibar' | md5sum | cut -d' ' -f1)
        //   HA2=$(printf 'REGISTER:sip:example.test' | md5sum | cut -d' ' -f1)
        //   printf "$HA1:abc123:00000001:xyz:auth:$HA2" | md5sum
        let h1 = ha1(Algorithm::Md5, "bob", REALM, "zanzibar");
        assert_eq!(h1, BOB_HA1);
        let r = response(
            Algorithm::Md5,
            &h1,
            "abc123",
            Some(("auth", "00000001", "xyz")),
            "REGISTER",
            "sip:example.test",
        );
        assert_eq!(r, BOB_RESPONSE);
        // RFC 2069 form (no qop): printf "$HA1:abc123:$HA2" | md5sum
        let r = response(
            Algorithm::Md5,
            &h1,
            "abc123",
            None,
            "REGISTER",
            "sip:example.test",
        );
        assert_eq!(r, BOB_RESPONSE_NOQOP);
    }

    const BOB_HA1: &str = "68d3e5b2f3809a589e32c3d33ac4be13";
    const BOB_RESPONSE: &str = "56a871fa48fb7c2cc6964529dc20bf5b";
    const BOB_RESPONSE_NOQOP: &str = "9d40f54a47d0a747ded1c2405271147f";

    #[test]
    fn challenge_offers_sha256_then_md5_with_one_nonce() {
        let a = auth();
        let c = a.challenge(REALM, false, at(T0));
        assert_eq!(c.len(), 2);
        let first = Digest::parse(&c[0]).unwrap();
        let second = Digest::parse(&c[1]).unwrap();
        assert_eq!(first.scheme, "Digest");
        assert_eq!(first.get("realm").unwrap(), REALM);
        assert_eq!(first.get("algorithm").unwrap(), "SHA-256");
        assert_eq!(second.get("algorithm").unwrap(), "MD5");
        assert_eq!(first.get("qop").unwrap(), "auth");
        assert_eq!(first.get("nonce"), second.get("nonce"));
        assert!(first.get("stale").is_none());
        let s = a.challenge(REALM, true, at(T0));
        assert!(s
            .iter()
            .all(|h| Digest::parse(h).unwrap().get("stale").unwrap() == "true"));
        // Two challenges never share a nonce.
        assert_ne!(nonce_of(&c[0]), nonce_of(&s[0]));
    }

    #[test]
    fn right_password_is_accepted_with_both_algorithms() {
        let mut a = auth();
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            let n = nonce_of(&a.challenge(REALM, false, at(T0))[0]);
            let h = creds(
                alg,
                "alice",
                "s3cret",
                &n,
                "00000001",
                "c1",
                "REGISTER",
                "sip:example.test",
            );
            assert_eq!(
                check(&mut a, &h, "REGISTER", T0 + 1),
                AuthResult::Ok {
                    user: "alice".into()
                },
                "{alg}"
            );
        }
    }

    #[test]
    fn wrong_password_unknown_user_and_wrong_method() {
        let mut a = auth();
        let n = nonce_of(&a.challenge(REALM, false, at(T0))[0]);
        let bad = creds(
            Algorithm::Md5,
            "alice",
            "guess",
            &n,
            "00000001",
            "c",
            "REGISTER",
            "sip:example.test",
        );
        assert_eq!(
            check(&mut a, &bad, "REGISTER", T0),
            AuthResult::BadResponse {
                user: "alice".into()
            }
        );
        let nobody = creds(
            Algorithm::Md5,
            "mallory",
            "x",
            &n,
            "00000001",
            "c",
            "REGISTER",
            "sip:example.test",
        );
        assert_eq!(
            check(&mut a, &nobody, "REGISTER", T0),
            AuthResult::UnknownUser {
                user: "mallory".into()
            }
        );
        // Credentials computed for REGISTER do not authorize an INVITE.
        let good = creds(
            Algorithm::Md5,
            "alice",
            "s3cret",
            &n,
            "00000001",
            "c",
            "REGISTER",
            "sip:example.test",
        );
        assert_eq!(
            check(&mut a, &good, "INVITE", T0),
            AuthResult::BadResponse {
                user: "alice".into()
            }
        );
        // The failed attempts did not burn the count: the real client still gets in.
        assert_eq!(
            check(&mut a, &good, "REGISTER", T0),
            AuthResult::Ok {
                user: "alice".into()
            }
        );
    }

    #[test]
    fn expired_nonce_is_stale_only_with_the_right_password() {
        let mut a = auth().with_nonce_ttl(Duration::from_secs(300));
        let n = nonce_of(&a.challenge(REALM, false, at(T0))[0]);
        let mk = |pw: &str| {
            creds(
                Algorithm::Sha256,
                "alice",
                pw,
                &n,
                "00000001",
                "c",
                "REGISTER",
                "sip:example.test",
            )
        };
        assert_eq!(
            check(&mut a, &mk("s3cret"), "REGISTER", T0 + 301),
            AuthResult::Stale
        );
        assert_eq!(
            check(&mut a, &mk("nope"), "REGISTER", T0 + 301),
            AuthResult::BadResponse {
                user: "alice".into()
            }
        );
        assert!(matches!(
            check(&mut a, &mk("s3cret"), "REGISTER", T0 + 299),
            AuthResult::Ok { .. }
        ));
    }

    #[test]
    fn nonce_count_must_increase() {
        let mut a = auth();
        let n = nonce_of(&a.challenge(REALM, false, at(T0))[0]);
        let mk = |nc: &str| {
            creds(
                Algorithm::Md5,
                "alice",
                "s3cret",
                &n,
                nc,
                "c",
                "REGISTER",
                "sip:example.test",
            )
        };
        assert!(matches!(
            check(&mut a, &mk("00000001"), "REGISTER", T0),
            AuthResult::Ok { .. }
        ));
        assert_eq!(
            check(&mut a, &mk("00000001"), "REGISTER", T0),
            AuthResult::Replay
        );
        assert!(matches!(
            check(&mut a, &mk("00000003"), "REGISTER", T0),
            AuthResult::Ok { .. }
        ));
        assert_eq!(
            check(&mut a, &mk("00000002"), "REGISTER", T0),
            AuthResult::Replay
        );
        assert_eq!(
            check(&mut a, &mk("00000000"), "REGISTER", T0),
            AuthResult::Replay
        );
    }

    #[test]
    fn no_qop_nonce_is_single_use() {
        let mut a = auth();
        let n = nonce_of(&a.challenge(REALM, false, at(T0))[1]);
        let h1 = ha1(Algorithm::Md5, "alice", REALM, "s3cret");
        let r = response(
            Algorithm::Md5,
            &h1,
            &n,
            None,
            "REGISTER",
            "sip:example.test",
        );
        let h = format!(
            "Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{n}\", \
             uri=\"sip:example.test\", response=\"{r}\""
        );
        assert!(matches!(
            check(&mut a, &h, "REGISTER", T0),
            AuthResult::Ok { .. }
        ));
        assert_eq!(check(&mut a, &h, "REGISTER", T0), AuthResult::Stale);
    }

    #[test]
    fn sess_variant_and_uppercase_response() {
        let mut a = auth();
        let n = nonce_of(&a.challenge(REALM, false, at(T0))[0]);
        let h1 = ha1(Algorithm::Sha256, "alice", REALM, "s3cret");
        let s1 = Algorithm::Sha256.hash_hex(format!("{h1}:{n}:cn").as_bytes());
        let r = response(
            Algorithm::Sha256,
            &s1,
            &n,
            Some(("auth", "00000001", "cn")),
            "INVITE",
            "sip:bob@example.test",
        )
        .to_ascii_uppercase();
        let h = format!(
            "Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{n}\", \
             uri=\"sip:bob@example.test\", response=\"{r}\", algorithm=sha-256-sess, \
             qop=auth, nc=00000001, cnonce=\"cn\""
        );
        assert!(matches!(
            check(&mut a, &h, "INVITE", T0),
            AuthResult::Ok { .. }
        ));
    }

    #[test]
    fn malformed_credentials_are_named() {
        let mut a = auth();
        let n = nonce_of(&a.challenge(REALM, false, at(T0))[0]);
        let good = creds(
            Algorithm::Md5,
            "alice",
            "s3cret",
            &n,
            "00000001",
            "c",
            "REGISTER",
            "sip:example.test",
        );
        let cases: Vec<(String, &str)> = vec![
            (good.replacen("Digest", "Basic", 1), "scheme"),
            (good.replace("username=\"alice\", ", ""), "username"),
            (good.replace(REALM, "other.test"), "realm"),
            (
                good.replace("algorithm=MD5", "algorithm=SHA-512"),
                "algorithm",
            ),
            (good.replace("qop=auth", "qop=auth-int"), "qop"),
            (good.replace("nc=00000001", "nc=1234567890"), "nc"),
            (good.replace(", cnonce=\"c\"", ""), "cnonce"),
            (
                good.replace(&n, &n.replace('a', "b").replace('1', "2")),
                "nonce",
            ),
            (good.replace(&n, "not-hex"), "nonce"),
        ];
        for (h, what) in cases {
            let d = Digest::parse(&h).unwrap();
            let r = a.verify(&d, "REGISTER", REALM, lookup, at(T0));
            assert!(
                matches!(r, AuthResult::Malformed(_)),
                "{what}: {r:?} for {h}"
            );
        }
    }

    #[test]
    fn padded_key_is_the_rfc2104_key() {
        let secret = [0x5au8; 32];
        let mut ours = DigestAuth::new(secret).mac_key;
        let mut plain = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret).unwrap();
        ours.update(b"x");
        plain.update(b"x");
        assert_eq!(ours.finalize().into_bytes(), plain.finalize().into_bytes());
    }

    #[test]
    fn nonce_from_another_secret_or_realm_is_rejected() {
        let other = DigestAuth::new([9u8; 32]);
        let n = nonce_of(&other.challenge(REALM, false, at(T0))[0]);
        let mut a = auth();
        let h = creds(
            Algorithm::Md5,
            "alice",
            "s3cret",
            &n,
            "00000001",
            "c",
            "REGISTER",
            "sip:example.test",
        );
        assert_eq!(
            check(&mut a, &h, "REGISTER", T0),
            AuthResult::Malformed("nonce not issued by this node")
        );
        // A nonce issued for another realm does not open under ours.
        let n = nonce_of(&a.challenge("elsewhere.test", false, at(T0))[0]);
        assert!(a.open_nonce(REALM, &n).is_none());
        assert!(a.open_nonce("elsewhere.test", &n).is_some());
    }

    #[test]
    fn replay_table_is_bounded_and_forgets_safely() {
        let mut a = auth().with_nc_limit(2);
        let nonces: Vec<String> = (0..3)
            .map(|i| a.nonce_at(REALM, T0 * 1000 + i, i))
            .collect();
        let mk = |n: &str| {
            creds(
                Algorithm::Md5,
                "alice",
                "s3cret",
                n,
                "00000001",
                "c",
                "REGISTER",
                "sip:example.test",
            )
        };
        for n in &nonces {
            assert!(matches!(
                check(&mut a, &mk(n), "REGISTER", T0),
                AuthResult::Ok { .. }
            ));
        }
        assert_eq!(a.nc_seen.map.len(), 2);
        // The first nonce was pushed out while still live: its replay is not
        // believed as new, the client is sent for a fresh nonce instead.
        assert_eq!(
            check(&mut a, &mk(&nonces[0]), "REGISTER", T0),
            AuthResult::Stale
        );
        assert_eq!(
            check(&mut a, &mk(&nonces[2]), "REGISTER", T0),
            AuthResult::Replay
        );
        // A nonce issued after the eviction is served normally.
        let fresh = nonce_of(&a.challenge(REALM, false, at(T0 + 1))[0]);
        assert!(matches!(
            check(&mut a, &mk(&fresh), "REGISTER", T0 + 1),
            AuthResult::Ok { .. }
        ));
    }

    #[test]
    fn expired_entries_leave_the_table() {
        let mut a = auth().with_nonce_ttl(Duration::from_secs(10));
        let n = nonce_of(&a.challenge(REALM, false, at(T0))[0]);
        let h = creds(
            Algorithm::Md5,
            "alice",
            "s3cret",
            &n,
            "00000001",
            "c",
            "REGISTER",
            "sip:example.test",
        );
        assert!(matches!(
            check(&mut a, &h, "REGISTER", T0),
            AuthResult::Ok { .. }
        ));
        assert_eq!(a.nc_seen.map.len(), 1);
        let n2 = nonce_of(&a.challenge(REALM, false, at(T0 + 20))[0]);
        let h2 = h.replace(&n, &n2).replace(
            &response(
                Algorithm::Md5,
                &ha1(Algorithm::Md5, "alice", REALM, "s3cret"),
                &n,
                Some(("auth", "00000001", "c")),
                "REGISTER",
                "sip:example.test",
            ),
            &response(
                Algorithm::Md5,
                &ha1(Algorithm::Md5, "alice", REALM, "s3cret"),
                &n2,
                Some(("auth", "00000001", "c")),
                "REGISTER",
                "sip:example.test",
            ),
        );
        assert!(matches!(
            check(&mut a, &h2, "REGISTER", T0 + 20),
            AuthResult::Ok { .. }
        ));
        assert_eq!(a.nc_seen.map.len(), 1, "the expired nonce was dropped");
    }

    #[test]
    fn algorithm_tokens() {
        assert_eq!(Algorithm::parse("md5"), Some((Algorithm::Md5, false)));
        assert_eq!(Algorithm::parse("MD5-sess"), Some((Algorithm::Md5, true)));
        assert_eq!(
            Algorithm::parse("SHA-256"),
            Some((Algorithm::Sha256, false))
        );
        assert_eq!(
            Algorithm::parse("sha-256-SESS"),
            Some((Algorithm::Sha256, true))
        );
        assert_eq!(Algorithm::parse("SHA-512-256"), None);
        assert_eq!(Algorithm::parse("-sess"), None);
        assert_eq!(Algorithm::parse(""), None);
    }

    #[test]
    fn secret_is_created_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("sipveil-secret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = {
            let s = crate::store::SledStore::open(&dir).unwrap();
            load_or_create_secret(&s).unwrap()
        };
        let s = crate::store::SledStore::open(&dir).unwrap();
        assert_eq!(load_or_create_secret(&s).unwrap(), first);
        assert_ne!(first, [0u8; 32]);
        s.put(SECRET_KEY, b"short").unwrap();
        let replaced = load_or_create_secret(&s).unwrap();
        assert_ne!(replaced, first);
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
