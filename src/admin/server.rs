//! The admin socket's server side: a Unix listener in the data_dir, mode 0600,
//! that answers JSON lines through an [`AdminHandler`].
//!
//! It is bounded like everything else (DESIGN.md invariant 5): a few connections
//! at a time, a maximum line length, and an idle timeout, so a stuck client cannot
//! pin resources of the signaling process.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{AdminHandler, Request, Response};

/// Longest request line accepted (a password and an address fit many times over).
pub const MAX_LINE: usize = 64 * 1024;
/// Connections served at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 16;
/// A connection that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound admin socket, not yet serving.
pub struct AdminServer {
    listener: UnixListener,
    path: PathBuf,
    owner_uid: u32,
}

impl AdminServer {
    /// Binds `path` (removing a socket left by a process that died; any other kind
    /// of file there is an error, not something to delete) and restricts it to its
    /// owner (0600). Callers hold the store's lock first, so a socket found here
    /// cannot belong to a live node. Must run inside a tokio runtime.
    pub fn bind(path: &Path) -> io::Result<AdminServer> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                    "{} exists and is not a socket; remove it to let sipveil bind its admin socket",
                    path.display()
                ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot bind admin socket {}: {e}", path.display()),
            )
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        // The socket file is ours, so its owner is who we run as: the only user
        // (besides root) allowed in, checked again per connection in case the
        // file mode is loosened by hand.
        let owner_uid = std::fs::metadata(path)?.uid();
        Ok(AdminServer {
            listener,
            path: path.to_path_buf(),
            owner_uid,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until the task is dropped, each served on its own task.
    pub async fn run<H: AdminHandler>(self, handler: Arc<H>) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let stream = match self.listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and the like pass; back off instead of spinning.
                    tracing::warn!("admin socket accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!("admin socket: too many connections, one refused");
                continue;
            };
            let handler = handler.clone();
            let owner = self.owner_uid;
            tokio::spawn(async move {
                if let Err(e) = connection(stream, handler, owner).await {
                    tracing::debug!("admin connection ended: {e}");
                }
                drop(permit);
            });
        }
    }
}

/// Binds `path` and serves it with `handler` until the future is dropped.
pub async fn serve_admin<H: AdminHandler>(path: &Path, handler: Arc<H>) -> io::Result<()> {
    AdminServer::bind(path)?.run(handler).await;
    Ok(())
}

/// The admin server running as a task; dropping it stops the server and removes
/// the socket file, so a CLI started afterwards goes to the store directly.
pub struct AdminTask {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl AdminTask {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminTask {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path` now (so a failure is reported at startup) and serves it on a task
/// of the current runtime.
pub fn spawn_admin<H: AdminHandler>(path: &Path, handler: Arc<H>) -> io::Result<AdminTask> {
    let server = AdminServer::bind(path)?;
    tracing::info!(path = %path.display(), "admin socket listening");
    Ok(AdminTask {
        path: path.to_path_buf(),
        task: tokio::spawn(server.run(handler)),
    })
}

async fn connection<H: AdminHandler>(
    stream: UnixStream,
    handler: Arc<H>,
    owner_uid: u32,
) -> io::Result<()> {
    let peer_uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    if peer_uid != owner_uid && peer_uid != 0 {
        tracing::warn!(
            peer_uid,
            "admin socket: connection from another user refused"
        );
        return reply(&mut write, &Response::error("permission denied")).await;
    }
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
        let mut limited = (&mut reader).take(limit);
        let read = limited.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(IDLE_TIMEOUT, read).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            return reply(&mut write, &Response::error("request line too long")).await;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let response = match serde_json::from_slice::<Request>(text) {
            Ok(req) => {
                tracing::debug!(?req, "admin request");
                let h = handler.clone();
                // The handler writes and flushes the store: keep that off the
                // signaling thread.
                tokio::task::spawn_blocking(move || h.handle(req))
                    .await
                    .unwrap_or_else(|_| Response::error("internal error"))
            }
            Err(e) => Response::error(format!("bad request: {e}")),
        };
        reply(&mut write, &response).await?;
    }
}

async fn reply(w: &mut tokio::net::unix::OwnedWriteHalf, r: &Response) -> io::Result<()> {
    let mut out = serde_json::to_vec(r).map_err(io::Error::other)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};

    fn dir(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sipveil-admin-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Runs a blocking client on a thread while the server runs on this runtime.
    fn with_server<T: Send + 'static>(
        path: &Path,
        client: impl FnOnce(PathBuf) -> T + Send + 'static,
    ) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = path.to_path_buf();
        rt.block_on(async move {
            let handler = Arc::new(|req: Request| match req {
                Request::SubscriberList => Response::subscribers(vec!["a@b.test".into()]),
                _ => Response::error("nope"),
            });
            let task = spawn_admin(&path, handler).unwrap();
            let p = path.clone();
            let out = tokio::task::spawn_blocking(move || client(p))
                .await
                .unwrap();
            drop(task);
            assert!(!path.exists(), "socket removed on drop");
            out
        })
    }

    #[test]
    fn answers_lines_and_is_private() {
        let d = dir("lines");
        let path = d.join("admin.sock");
        // A socket left by a dead process is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let lines = with_server(&path, |p| {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            s.write_all(b"{\"cmd\":\"subscriber_list\"}\n\n{\"cmd\":\"x\"}\nnot json\n")
                .unwrap();
            let mut r = std::io::BufReader::new(s);
            let mut out = Vec::new();
            for _ in 0..3 {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                out.push(l);
            }
            out
        });
        assert_eq!(lines[0], "{\"ok\":true,\"subscribers\":[\"a@b.test\"]}\n");
        assert!(lines[1].contains("bad request"), "{}", lines[1]);
        assert!(lines[2].contains("bad request"), "{}", lines[2]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn overlong_line_is_refused() {
        let d = dir("long");
        let path = d.join("admin.sock");
        let line = with_server(&path, |p| {
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            let big = vec![b'x'; MAX_LINE + 10];
            let _ = s.write_all(&big);
            let mut l = String::new();
            std::io::BufReader::new(s).read_line(&mut l).unwrap();
            l
        });
        assert!(line.contains("too long"), "{line}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn refuses_to_replace_a_regular_file() {
        let d = dir("file");
        let path = d.join("admin.sock");
        std::fs::write(&path, b"keep me").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(async { AdminServer::bind(&path).err().unwrap() });
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        let _ = std::fs::remove_dir_all(&d);
    }
}
