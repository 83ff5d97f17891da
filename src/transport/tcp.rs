//! TCP: one reader and one writer task per connection; connections are reused in
//! both directions (RFC 5923 spirit) and idle or stalled ones are closed.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::{Inbound, Peer, Sender, Transport};
use crate::sip::{Frame, StreamFramer};

/// A connection with no complete message for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// A message that started must complete within this long (slow senders).
const PARTIAL_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn accept_loop(sender: Sender, iface: usize, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                start_conn(&sender, iface, stream, remote);
            }
            Err(e) => {
                tracing::warn!("tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn register(
    sender: &Sender,
    iface: usize,
    remote: SocketAddr,
) -> (u64, mpsc::UnboundedReceiver<Bytes>) {
    let id = sender.new_conn_id();
    let (tx, rx) = mpsc::unbounded_channel();
    if let Ok(mut t) = sender.inner.conns.lock() {
        t.by_id.insert(id, tx);
        t.by_remote.insert((iface, remote), id);
    }
    (id, rx)
}

fn unregister(sender: &Sender, iface: usize, remote: SocketAddr, id: u64) {
    if let Ok(mut t) = sender.inner.conns.lock() {
        t.by_id.remove(&id);
        if t.by_remote.get(&(iface, remote)) == Some(&id) {
            t.by_remote.remove(&(iface, remote));
        }
    }
}

fn start_conn(sender: &Sender, iface: usize, stream: TcpStream, remote: SocketAddr) -> u64 {
    let (id, rx) = register(sender, iface, remote);
    let (rd, wr) = stream.into_split();
    tokio::spawn(writer(wr, rx));
    let s = sender.clone();
    tokio::spawn(async move {
        reader(&s, iface, id, rd, remote).await;
        unregister(&s, iface, remote, id);
    });
    id
}

async fn writer(mut wr: tokio::net::tcp::OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    while let Some(data) = rx.recv().await {
        if wr.write_all(&data).await.is_err() {
            break;
        }
    }
}

async fn reader(
    sender: &Sender,
    iface: usize,
    id: u64,
    mut rd: tokio::net::tcp::OwnedReadHalf,
    remote: SocketAddr,
) {
    let mut framer = StreamFramer::new(sender.limits());
    let mut buf = vec![0u8; 16 * 1024];
    let peer = Peer {
        addr: remote,
        transport: Transport::Tcp,
        iface,
        conn: Some(id),
    };
    loop {
        let wait = if framer.buffered() > 0 {
            PARTIAL_TIMEOUT
        } else {
            IDLE_TIMEOUT
        };
        let n = match tokio::time::timeout(wait, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
            Err(_) => {
                tracing::debug!(%remote, "tcp connection timed out; closing");
                return;
            }
        };
        framer.push(buf.get(..n).unwrap_or(&[]));
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Message(msg))) => {
                    sender
                        .deliver(Inbound::Message {
                            msg,
                            peer: peer.clone(),
                        })
                        .await
                }
                Ok(Some(Frame::Ping)) => sender.send(&peer, Bytes::from_static(b"\r\n")),
                Ok(Some(Frame::Pong)) => {}
                Err(err) => {
                    sender
                        .deliver(Inbound::Malformed {
                            err,
                            peer: peer.clone(),
                        })
                        .await;
                    // Give the writer a moment to send the answer, then close.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return;
                }
            }
        }
    }
}

/// Sends on an existing connection (by id, then by remote address) or opens one
/// from the interface's address.
pub(super) fn send(sender: &Sender, peer: &Peer, data: Bytes) {
    let existing = sender.inner.conns.lock().ok().and_then(|t| {
        peer.conn
            .and_then(|id| t.by_id.get(&id).cloned())
            .or_else(|| {
                t.by_remote
                    .get(&(peer.iface, peer.addr))
                    .and_then(|id| t.by_id.get(id).cloned())
            })
    });
    if let Some(tx) = existing {
        if tx.send(data.clone()).is_ok() {
            return;
        }
    }
    // Open a new connection; queue the message until it is up.
    let (id, rx) = register(sender, peer.iface, peer.addr);
    let tx = sender
        .inner
        .conns
        .lock()
        .ok()
        .and_then(|t| t.by_id.get(&id).cloned());
    if let Some(tx) = tx {
        let _ = tx.send(data);
    }
    let s = sender.clone();
    let iface = peer.iface;
    let remote = peer.addr;
    let local = sender.tcp_local(iface).or_else(|| sender.udp_local(iface));
    tokio::spawn(async move {
        let stream = match connect(local, remote).await {
            Ok(st) => st,
            Err(e) => {
                tracing::debug!(%remote, "tcp connect failed: {e}");
                unregister(&s, iface, remote, id);
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        tokio::spawn(writer(wr, rx));
        reader(&s, iface, id, rd, remote).await;
        unregister(&s, iface, remote, id);
    });
}

async fn connect(local: Option<SocketAddr>, remote: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = if remote.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(l) = local {
        if l.is_ipv4() == remote.is_ipv4() {
            sock.bind(SocketAddr::new(l.ip(), 0))?;
        }
    }
    tokio::time::timeout(Duration::from_secs(5), sock.connect(remote))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))?
}
