//! The admin socket's client side, for the CLI: send one request to a running
//! node, or, when no node runs on the data_dir, open the store and carry out the
//! same request in-process.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{socket_path, AdminHandler, Request, Response, StoreHandler};
use crate::store::SledStore;

/// How long the CLI waits for the running node to answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request could not be carried out at all (as opposed to a `Response` with
/// `ok: false`, which the node or the store gave).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket is there and something listens, but the exchange failed.
    #[error("admin socket {path}: {source}")]
    Socket {
        /// The socket path.
        path: String,
        /// What failed.
        source: io::Error,
    },
    /// The store is held by another process that does not answer on the socket.
    #[error(
        "the store in {dir} is in use by another process (is sipveil running, starting \
         or stopping?), but no admin socket answers at {sock}; retry in a moment, or \
         stop that process"
    )]
    Locked {
        /// The data_dir.
        dir: String,
        /// The socket path.
        sock: String,
    },
    /// The store could not be opened for another reason.
    #[error("{0:#}")]
    Store(anyhow::Error),
}

/// Carries out `req` against the node using `data_dir`: through its admin socket
/// when a node runs there (it answers a connection), else on the store directly.
pub fn execute(data_dir: &Path, req: &Request) -> Result<Response, ClientError> {
    let sock = socket_path(data_dir);
    match UnixStream::connect(&sock) {
        Ok(stream) => {
            return exchange(stream, req).map_err(|source| ClientError::Socket {
                path: sock.display().to_string(),
                source,
            })
        }
        // Nothing there, or a socket left behind by a process that died: the store
        // decides (its lock is released with the process).
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) => {}
        Err(source) => {
            return Err(ClientError::Socket {
                path: sock.display().to_string(),
                source,
            })
        }
    }
    let store = SledStore::open(data_dir).map_err(|e| {
        if is_lock_error(&e) {
            ClientError::Locked {
                dir: data_dir.display().to_string(),
                sock: sock.display().to_string(),
            }
        } else {
            ClientError::Store(e)
        }
    })?;
    Ok(StoreHandler::new(Arc::new(store), None).handle(req.clone()))
}

/// Sends one request line on `stream` and reads the answer line.
pub fn exchange(stream: UnixStream, req: &Request) -> io::Result<Response> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut reader = BufReader::new(&stream);
    let mut answer = String::new();
    if reader.read_line(&mut answer)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the node closed the connection without answering",
        ));
    }
    serde_json::from_str(answer.trim_end()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unreadable answer: {e}"),
        )
    })
}

/// sled reports a store held by another process as an I/O error about its lock.
fn is_lock_error(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("lock") || text.contains("WouldBlock") || text.contains("temporarily unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::StoreHandler;

    fn dir(test: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("sipveil-client-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn stopped_node_goes_to_the_store() {
        let d = dir("direct");
        let add = Request::SubscriberAdd {
            aor: "alice@example.test".into(),
            password: "pw".into(),
        };
        assert_eq!(execute(&d, &add).unwrap(), Response::ok());
        let list = execute(&d, &Request::SubscriberList).unwrap();
        assert_eq!(list.subscribers.unwrap(), ["alice@example.test"]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn stale_socket_is_ignored_but_a_held_store_is_named() {
        let d = dir("stale");
        std::fs::create_dir_all(&d).unwrap();
        // A socket file nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(socket_path(&d)).unwrap());
        assert!(execute(&d, &Request::SubscriberList).unwrap().ok);
        // The store held (as by a running node) and no socket: a clear error.
        std::fs::remove_file(socket_path(&d)).unwrap();
        let held = SledStore::open(&d).unwrap();
        let err = execute(&d, &Request::SubscriberList).unwrap_err();
        assert!(matches!(err, ClientError::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        drop(held);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn running_node_is_reached_through_the_socket() {
        let d = dir("socket");
        std::fs::create_dir_all(&d).unwrap();
        let store = Arc::new(SledStore::open(&d).unwrap());
        let cache =
            crate::registrar::subscribers::SubscriberCache::load_shared(store.as_ref()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let d2 = d.clone();
        let c2 = cache.clone();
        rt.block_on(async move {
            let _task = crate::admin::start(&d2, store.clone(), c2).unwrap();
            let d3 = d2.clone();
            let out = tokio::task::spawn_blocking(move || {
                let add = Request::SubscriberAdd {
                    aor: "bob@example.test".into(),
                    password: "pw".into(),
                };
                let a = execute(&d3, &add).unwrap();
                let l = execute(&d3, &Request::SubscriberList).unwrap();
                (a, l)
            })
            .await
            .unwrap();
            assert_eq!(out.0, Response::ok());
            assert_eq!(out.1.subscribers.unwrap(), ["bob@example.test"]);
            // Same handler semantics as the direct path.
            let h = StoreHandler::new(store.clone(), None);
            assert!(h.handle(Request::SubscriberList).ok);
        });
        assert!(cache.read().unwrap().contains("bob", "example.test"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
