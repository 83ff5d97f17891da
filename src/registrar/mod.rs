//! The registrar (RFC 3261 §10): digest authentication, the subscribers it checks
//! against, and the location service that REGISTER writes and routing reads.

pub mod digest;
pub mod location;
pub mod subscribers;

use crate::store::Store;

/// What authentication needs at run time, loaded once when the node starts: the
/// node secret that seals nonces and the in-memory subscriber table that the
/// admin endpoint keeps current.
#[derive(Clone)]
pub struct AuthContext {
    /// Key for nonce MACs (persisted under `node/secret`, created on first start).
    pub secret: [u8; 32],
    /// Subscribers, shared with the admin endpoint.
    pub subscribers: subscribers::SharedSubscribers,
}

impl std::fmt::Debug for AuthContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthContext").finish_non_exhaustive()
    }
}

impl AuthContext {
    /// Reads (or creates) the node secret and loads the subscribers.
    pub fn load(store: &dyn Store) -> anyhow::Result<AuthContext> {
        let secret = digest::load_or_create_secret(store)?;
        let subscribers = subscribers::SubscriberCache::load_shared(store)?;
        Ok(AuthContext {
            secret,
            subscribers,
        })
    }

    /// A verifier sealed with this node's secret.
    pub fn digest_auth(&self) -> digest::DigestAuth {
        digest::DigestAuth::new(self.secret)
    }
}
