//! The operator's way into a running node. sled lets one process open a store, so
//! while sipveil runs, `sipveil subscriber ...` cannot open the data_dir itself; it
//! talks to the running process over a Unix socket at `<data_dir>/admin.sock`
//! instead, and the process applies the change to its store and to the subscriber
//! cache the signaling loop reads, so the change takes effect at once.
//!
//! The protocol is one JSON object per line each way:
//! `{"cmd":"subscriber_add","aor":"alice@example.test","password":"..."}` →
//! `{"ok":true}` or `{"ok":false,"error":"..."}`; `subscriber_list` answers
//! `{"ok":true,"subscribers":["alice@example.test"]}`.

pub mod client;
pub mod server;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::registrar::subscribers::{self, SharedSubscribers};
use crate::store::Store;

pub use client::{execute, ClientError};
pub use server::{serve_admin, spawn_admin, AdminServer, AdminTask};

/// File name of the admin socket inside the data_dir.
pub const SOCKET_NAME: &str = "admin.sock";

/// Where the admin socket of the node using `data_dir` lives: next to the store it
/// guards, so finding the store finds the socket.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// One request line.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Add a subscriber or change its password.
    SubscriberAdd {
        /// USER@DOMAIN.
        aor: String,
        /// Plaintext; hashed by the receiving process and never stored.
        password: String,
    },
    /// Remove a subscriber.
    SubscriberRemove {
        /// USER@DOMAIN.
        aor: String,
    },
    /// List the subscribers.
    SubscriberList,
}

impl fmt::Debug for Request {
    // Requests are logged; passwords must not be.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::SubscriberAdd { aor, .. } => f
                .debug_struct("SubscriberAdd")
                .field("aor", aor)
                .finish_non_exhaustive(),
            Request::SubscriberRemove { aor } => f
                .debug_struct("SubscriberRemove")
                .field("aor", aor)
                .finish(),
            Request::SubscriberList => f.write_str("SubscriberList"),
        }
    }
}

/// One response line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer to `subscriber_list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribers: Option<Vec<String>>,
}

impl Response {
    /// Done, nothing to report.
    pub fn ok() -> Response {
        Response {
            ok: true,
            ..Response::default()
        }
    }

    /// Not done, and why.
    pub fn error(msg: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(msg.into()),
            subscribers: None,
        }
    }

    /// The subscriber list.
    pub fn subscribers(list: Vec<String>) -> Response {
        Response {
            ok: true,
            error: None,
            subscribers: Some(list),
        }
    }
}

/// Carries out admin requests. Called on a blocking-pool thread (store writes
/// flush to disk), so implementations must be `Send + Sync`.
pub trait AdminHandler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: Request) -> Response;
}

impl<F> AdminHandler for F
where
    F: Fn(Request) -> Response + Send + Sync + 'static,
{
    fn handle(&self, req: Request) -> Response {
        self(req)
    }
}

/// The handler both paths share: the running node (store plus the cache its
/// signaling loop reads) and the CLI with the node stopped (store only).
pub struct StoreHandler {
    store: Arc<dyn Store>,
    cache: Option<SharedSubscribers>,
}

impl StoreHandler {
    /// Applies requests to `store`, then to `cache` when there is one. The store
    /// goes first: if it fails, the running node keeps seeing what is on disk.
    pub fn new(store: Arc<dyn Store>, cache: Option<SharedSubscribers>) -> StoreHandler {
        StoreHandler { store, cache }
    }
}

impl AdminHandler for StoreHandler {
    fn handle(&self, req: Request) -> Response {
        let store = self.store.as_ref();
        let result = match req {
            Request::SubscriberAdd { aor, password } => {
                subscribers::add(store, &aor, &password).map(|(aor, sub)| {
                    if let Some(c) = &self.cache {
                        // A poisoned lock only means a reader panicked mid-read;
                        // the map itself is consistent.
                        c.write().unwrap_or_else(|p| p.into_inner()).set(&aor, sub);
                    }
                    tracing::info!(%aor, "subscriber added");
                    Response::ok()
                })
            }
            Request::SubscriberRemove { aor } => subscribers::remove(store, &aor).map(|aor| {
                if let Some(c) = &self.cache {
                    c.write().unwrap_or_else(|p| p.into_inner()).remove(&aor);
                }
                tracing::info!(%aor, "subscriber removed");
                Response::ok()
            }),
            Request::SubscriberList => match &self.cache {
                Some(c) => Ok(Response::subscribers(
                    c.read().unwrap_or_else(|p| p.into_inner()).list(),
                )),
                None => subscribers::list(store).map(Response::subscribers),
            },
        };
        result.unwrap_or_else(|e| Response::error(e.to_string()))
    }
}

/// Starts the admin socket of a running node on the current tokio runtime, with
/// the [`StoreHandler`] over its store and subscriber cache. The socket file is
/// removed when the returned task is dropped.
pub fn start(
    data_dir: &Path,
    store: Arc<dyn Store>,
    cache: SharedSubscribers,
) -> std::io::Result<AdminTask> {
    spawn_admin(
        &socket_path(data_dir),
        Arc::new(StoreHandler::new(store, Some(cache))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::subscribers::SubscriberCache;
    use crate::store::SledStore;

    #[test]
    fn wire_format() {
        let r: Request =
            serde_json::from_str(r#"{"cmd":"subscriber_add","aor":"a@b.test","password":"pw"}"#)
                .unwrap();
        assert_eq!(
            r,
            Request::SubscriberAdd {
                aor: "a@b.test".into(),
                password: "pw".into()
            }
        );
        assert!(!format!("{r:?}").contains("pw\""));
        let r: Request = serde_json::from_str(r#"{"cmd":"subscriber_list"}"#).unwrap();
        assert_eq!(r, Request::SubscriberList);
        assert_eq!(
            serde_json::to_string(&Response::ok()).unwrap(),
            r#"{"ok":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Response::error("no")).unwrap(),
            r#"{"ok":false,"error":"no"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"reboot"}"#).is_err());
    }

    #[test]
    fn store_handler_updates_store_and_cache() {
        let dir = std::env::temp_dir().join(format!("sipveil-admin-h-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&dir).unwrap());
        let cache = SubscriberCache::load_shared(store.as_ref()).unwrap();
        let h = StoreHandler::new(store.clone(), Some(cache.clone()));
        let add = Request::SubscriberAdd {
            aor: "alice@example.test".into(),
            password: "pw".into(),
        };
        assert_eq!(h.handle(add), Response::ok());
        assert!(cache.read().unwrap().contains("alice", "example.test"));
        assert_eq!(
            subscribers::list(store.as_ref()).unwrap(),
            ["alice@example.test"]
        );
        assert_eq!(
            h.handle(Request::SubscriberList).subscribers.unwrap(),
            ["alice@example.test"]
        );
        let rm = Request::SubscriberRemove {
            aor: "alice@example.test".into(),
        };
        assert_eq!(h.handle(rm.clone()), Response::ok());
        assert!(!cache.read().unwrap().contains("alice", "example.test"));
        let again = h.handle(rm);
        assert!(!again.ok);
        assert!(again.error.unwrap().contains("no subscriber"));
        let bad = h.handle(Request::SubscriberAdd {
            aor: "nodomain".into(),
            password: "pw".into(),
        });
        assert!(bad.error.unwrap().contains("USER@DOMAIN"));
        // Without a cache, the list comes from the store.
        let direct = StoreHandler::new(store.clone(), None);
        assert_eq!(
            direct.handle(Request::SubscriberList).subscribers.unwrap(),
            Vec::<String>::new()
        );
        drop((h, direct, store));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
