//! Subscribers: the digest credentials the registrar checks, kept in the `Store`
//! under `sub/<user>@<domain>` as HA1 hashes only (MD5 and SHA-256, realm = the
//! domain), so a copy of the data_dir does not give away anyone's password.
//!
//! The functions here talk to the store directly (the CLI with sipveil stopped, and
//! the admin endpoint with it running); [`SubscriberCache`] is the in-memory copy
//! that the signaling loop reads, so that an authentication never waits on disk.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv6Addr;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::digest::{self, Algorithm};
use crate::store::Store;

/// Key prefix of subscriber records in the store.
pub const PREFIX: &str = "sub/";

/// One subscriber's stored credentials: the HA1 per algorithm and the realm they
/// were computed for. There is deliberately no password field.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    /// H(user:realm:password) with MD5.
    pub ha1_md5: String,
    /// H(user:realm:password) with SHA-256.
    pub ha1_sha256: String,
    /// The realm the hashes are bound to (the subscriber's domain).
    pub realm: String,
}

impl fmt::Debug for Subscriber {
    // HA1 is password-equivalent for digest: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Hashes `password` for `aor`; the plaintext is not kept.
    pub fn new(aor: &Aor, password: &str) -> Subscriber {
        Subscriber {
            ha1_md5: digest::ha1(Algorithm::Md5, &aor.user, &aor.domain, password),
            ha1_sha256: digest::ha1(Algorithm::Sha256, &aor.user, &aor.domain, password),
            realm: aor.domain.clone(),
        }
    }

    /// The HA1 to verify a response computed with `alg`.
    pub fn ha1(&self, alg: Algorithm) -> &str {
        match alg {
            Algorithm::Md5 => &self.ha1_md5,
            Algorithm::Sha256 => &self.ha1_sha256,
        }
    }
}

/// What can go wrong managing subscribers; the messages are written for operators.
#[derive(Debug, thiserror::Error)]
pub enum SubscriberError {
    /// The address is not USER@DOMAIN.
    #[error("`{aor}` is not USER@DOMAIN: {reason}")]
    InvalidAor {
        /// What was given.
        aor: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An empty password would let anyone in.
    #[error("the password must not be empty")]
    EmptyPassword,
    /// `remove` of an address that has no record.
    #[error("no subscriber {0}")]
    NotFound(String),
    /// The store failed or holds a record that cannot be read.
    #[error("store: {0:#}")]
    Store(anyhow::Error),
}

impl From<anyhow::Error> for SubscriberError {
    fn from(e: anyhow::Error) -> SubscriberError {
        SubscriberError::Store(e)
    }
}

/// An address of record, USER@DOMAIN, validated and with the domain in lower case
/// (host names compare case-insensitively; the user part does not).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor {
    /// The user part, as written (case-sensitive, escapes kept).
    pub user: String,
    /// The domain in lower case; also the digest realm.
    pub domain: String,
}

impl Aor {
    /// Parses and validates `USER@DOMAIN`: the user part takes the characters of
    /// RFC 3261's `user` rule (so `:` cannot blur the `user:realm:password` input of
    /// HA1), the domain is a host name, an IPv4 address or a bracketed IPv6 address.
    pub fn parse(s: &str) -> Result<Aor, SubscriberError> {
        let invalid = |reason| SubscriberError::InvalidAor {
            aor: s.to_string(),
            reason,
        };
        let s = s.trim();
        let s = s.strip_prefix("sip:").unwrap_or(s);
        let (user, domain) = s.rsplit_once('@').ok_or_else(|| invalid("no '@'"))?;
        if user.is_empty() {
            return Err(invalid("empty user part"));
        }
        if !valid_user(user) {
            return Err(invalid(
                "the user part has a character SIP does not allow there",
            ));
        }
        if !valid_host(domain) {
            return Err(invalid("the domain is not a host name or IP address"));
        }
        Ok(Aor {
            user: user.to_string(),
            domain: domain.to_ascii_lowercase(),
        })
    }

    /// The store key of this subscriber's record.
    pub fn key(&self) -> String {
        format!("{PREFIX}{self}")
    }
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

/// Adds a subscriber, or replaces its credentials if it exists, and flushes so the
/// change survives a crash. Gives the parsed address and the stored record.
pub fn add(
    store: &dyn Store,
    aor: &str,
    password: &str,
) -> Result<(Aor, Subscriber), SubscriberError> {
    let aor = Aor::parse(aor)?;
    if password.is_empty() {
        return Err(SubscriberError::EmptyPassword);
    }
    let sub = Subscriber::new(&aor, password);
    let json = serde_json::to_vec(&sub).map_err(|e| SubscriberError::Store(e.into()))?;
    store.put(&aor.key(), &json)?;
    store.flush()?;
    Ok((aor, sub))
}

/// Removes a subscriber; an address with no record is an error, so a typo does not
/// pass silently.
pub fn remove(store: &dyn Store, aor: &str) -> Result<Aor, SubscriberError> {
    let aor = Aor::parse(aor)?;
    let key = aor.key();
    if store.get(&key)?.is_none() {
        return Err(SubscriberError::NotFound(aor.to_string()));
    }
    store.delete(&key)?;
    store.flush()?;
    Ok(aor)
}

/// Every subscriber as USER@DOMAIN, sorted.
pub fn list(store: &dyn Store) -> Result<Vec<String>, SubscriberError> {
    let mut out: Vec<String> = store
        .scan(PREFIX)?
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix(PREFIX).map(str::to_string))
        .collect();
    out.sort();
    Ok(out)
}

/// One subscriber's record, if there is one.
pub fn get(store: &dyn Store, aor: &Aor) -> Result<Option<Subscriber>, SubscriberError> {
    match store.get(&aor.key())? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| {
            SubscriberError::Store(anyhow::anyhow!("record {} is unreadable: {e}", aor.key()))
        }),
    }
}

/// The stored HA1 of `user` at `domain` for `alg`, read from the store.
pub fn ha1(
    store: &dyn Store,
    user: &str,
    domain: &str,
    alg: Algorithm,
) -> Result<Option<String>, SubscriberError> {
    let aor = Aor {
        user: user.to_string(),
        domain: domain.to_ascii_lowercase(),
    };
    Ok(get(store, &aor)?.map(|s| s.ha1(alg).to_string()))
}

/// The subscribers held in memory, by domain then user, so the signaling loop can
/// look up an HA1 without touching the store or allocating.
#[derive(Clone, Debug, Default)]
pub struct SubscriberCache {
    by_domain: HashMap<String, HashMap<String, Subscriber>>,
}

/// The cache as shared between the signaling loop (reads) and the admin endpoint
/// (writes after each change to the store).
pub type SharedSubscribers = Arc<RwLock<SubscriberCache>>;

impl SubscriberCache {
    /// Loads every subscriber from the store; unreadable records are skipped with
    /// a warning rather than keeping the node from starting.
    pub fn load(store: &dyn Store) -> Result<SubscriberCache, SubscriberError> {
        let mut cache = SubscriberCache::default();
        for (key, value) in store.scan(PREFIX)? {
            let Some(aor) = key.strip_prefix(PREFIX).and_then(|a| Aor::parse(a).ok()) else {
                tracing::warn!(%key, "subscriber record with an invalid key skipped");
                continue;
            };
            match serde_json::from_slice::<Subscriber>(&value) {
                Ok(sub) => cache.set(&aor, sub),
                Err(e) => tracing::warn!(%key, "unreadable subscriber record skipped: {e}"),
            }
        }
        Ok(cache)
    }

    /// [`SubscriberCache::load`], wrapped for sharing.
    pub fn load_shared(store: &dyn Store) -> Result<SharedSubscribers, SubscriberError> {
        Ok(Arc::new(RwLock::new(SubscriberCache::load(store)?)))
    }

    /// The HA1 of `user` at `domain` for `alg`; the closure that
    /// [`DigestAuth::verify`](super::digest::DigestAuth::verify) wants is
    /// `|u, alg| cache.ha1(u, domain, alg).map(str::to_string)`.
    pub fn ha1(&self, user: &str, domain: &str, alg: Algorithm) -> Option<&str> {
        self.get(user, domain).map(|s| s.ha1(alg))
    }

    /// The record of `user` at `domain`.
    pub fn get(&self, user: &str, domain: &str) -> Option<&Subscriber> {
        self.by_domain.get(lower(domain).as_ref())?.get(user)
    }

    /// Whether `user` at `domain` is a subscriber (a local user: calls claiming it
    /// must authenticate, calls to it go to its bindings).
    pub fn contains(&self, user: &str, domain: &str) -> bool {
        self.get(user, domain).is_some()
    }

    /// Inserts or replaces a record (after the store took it).
    pub fn set(&mut self, aor: &Aor, sub: Subscriber) {
        self.by_domain
            .entry(aor.domain.clone())
            .or_default()
            .insert(aor.user.clone(), sub);
    }

    /// Drops a record (after the store dropped it); says whether there was one.
    pub fn remove(&mut self, aor: &Aor) -> bool {
        let Some(users) = self.by_domain.get_mut(&aor.domain) else {
            return false;
        };
        let had = users.remove(&aor.user).is_some();
        if users.is_empty() {
            self.by_domain.remove(&aor.domain);
        }
        had
    }

    /// Every subscriber as USER@DOMAIN, sorted.
    pub fn list(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .by_domain
            .iter()
            .flat_map(|(d, users)| users.keys().map(move |u| format!("{u}@{d}")))
            .collect();
        out.sort();
        out
    }

    /// How many subscribers there are.
    pub fn len(&self) -> usize {
        self.by_domain.values().map(HashMap::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }
}

fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// RFC 3261 `user = 1*( unreserved / escaped / user-unreserved )`.
fn valid_user(user: &str) -> bool {
    let b = user.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        let ok = c.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&c) || b"&=+$,;?/".contains(&c);
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// A host name (labels of letters, digits and `-`), an IPv4 address (which the
/// host-name rule covers) or `[IPv6]`.
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    fn store(test: &str) -> (SledStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sipveil-sub-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (SledStore::open(&dir).unwrap(), dir)
    }

    #[test]
    fn aor_validation() {
        let a = Aor::parse("alice@Example.TEST").unwrap();
        assert_eq!(a.user, "alice");
        assert_eq!(a.domain, "example.test");
        assert_eq!(a.to_string(), "alice@example.test");
        assert_eq!(a.key(), "sub/alice@example.test");
        assert_eq!(Aor::parse("sip:bob@10.0.0.1").unwrap().domain, "10.0.0.1");
        assert_eq!(
            Aor::parse("+4930123@[2001:db8::1]").unwrap().user,
            "+4930123"
        );
        assert_eq!(Aor::parse("a%40b@x.test").unwrap().user, "a%40b");
        for bad in [
            "alice",
            "@example.test",
            "alice@",
            "al ice@example.test",
            "al:ice@example.test",
            "alice@exa mple.test",
            "alice@example..test",
            "alice@-example.test",
            "alice@[not-v6]",
            "a%4@x.test",
        ] {
            assert!(Aor::parse(bad).is_err(), "{bad:?}");
        }
        // Surrounding whitespace is trimmed, inner control characters are not allowed.
        assert!(Aor::parse("ali\u{7f}ce@x.test").is_err());
    }

    #[test]
    fn add_list_remove_and_no_plaintext() {
        let (s, dir) = store("crud");
        let (aor, sub) = add(&s, "bob@example.test", "hunter2").unwrap();
        assert_eq!(aor.to_string(), "bob@example.test");
        assert_eq!(sub.realm, "example.test");
        add(&s, "alice@example.test", "pw").unwrap();
        assert_eq!(
            list(&s).unwrap(),
            ["alice@example.test", "bob@example.test"]
        );
        let raw = s.get("sub/bob@example.test").unwrap().unwrap();
        let text = String::from_utf8(raw).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["ha1_md5"],
            digest::ha1(Algorithm::Md5, "bob", "example.test", "hunter2")
        );
        assert_eq!(
            v["ha1_sha256"],
            digest::ha1(Algorithm::Sha256, "bob", "example.test", "hunter2")
        );
        assert_eq!(v["realm"], "example.test");
        // Re-adding replaces the credentials.
        add(&s, "bob@example.test", "new").unwrap();
        assert_eq!(
            ha1(&s, "bob", "EXAMPLE.test", Algorithm::Md5)
                .unwrap()
                .unwrap(),
            digest::ha1(Algorithm::Md5, "bob", "example.test", "new")
        );
        assert_eq!(list(&s).unwrap().len(), 2);
        remove(&s, "bob@example.test").unwrap();
        assert!(matches!(
            remove(&s, "bob@example.test"),
            Err(SubscriberError::NotFound(_))
        ));
        assert_eq!(list(&s).unwrap(), ["alice@example.test"]);
        assert!(ha1(&s, "bob", "example.test", Algorithm::Md5)
            .unwrap()
            .is_none());
        assert!(matches!(
            add(&s, "carol@example.test", ""),
            Err(SubscriberError::EmptyPassword)
        ));
        assert!(matches!(
            add(&s, "carol", "pw"),
            Err(SubscriberError::InvalidAor { .. })
        ));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cache_mirrors_the_store() {
        let (s, dir) = store("cache");
        add(&s, "alice@example.test", "pw").unwrap();
        add(&s, "bob@other.test", "pw2").unwrap();
        s.put("sub/broken@example.test", b"{not json").unwrap();
        let mut c = SubscriberCache::load(&s).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.list(), ["alice@example.test", "bob@other.test"]);
        assert!(c.contains("alice", "Example.Test"));
        assert!(!c.contains("alice", "other.test"));
        assert_eq!(
            c.ha1("bob", "other.test", Algorithm::Sha256).unwrap(),
            digest::ha1(Algorithm::Sha256, "bob", "other.test", "pw2")
        );
        let (aor, sub) = add(&s, "carol@example.test", "pw3").unwrap();
        c.set(&aor, sub);
        assert!(c.contains("carol", "example.test"));
        let gone = remove(&s, "bob@other.test").unwrap();
        assert!(c.remove(&gone));
        assert!(!c.remove(&gone));
        assert_eq!(c.list(), ["alice@example.test", "carol@example.test"]);
        assert!(!c.is_empty());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn debug_output_hides_hashes() {
        let aor = Aor::parse("a@b.test").unwrap();
        let sub = Subscriber::new(&aor, "pw");
        assert!(!format!("{sub:?}").contains(&sub.ha1_md5));
    }
}
