//! TCP: one reader and one writer task per connection; connections are reused in
//! both directions (RFC 5923 spirit) and idle or stalled ones are closed.
//!
//! Hostile peers (issue 7): inbound connections are bounded per source IP and in
//! all (`[admission.tcp]`); one over either bound is closed as soon as it is
//! accepted. A message must arrive whole within `message_timeout` of its first
//! byte however its bytes trickle in (a deadline per message, not per read, so
//! slowloris trickling cannot hold a connection), and a connection with no
//! complete message or keep-alive for `idle_timeout` is closed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;

use super::{Inbound, Peer, Sender, Transport};
use crate::admission::AdmissionMetrics;
use crate::sip::{Frame, StreamFramer};

/// A place among the inbound connections, given back when the connection ends.
struct ConnSlot {
    sender: Sender,
    ip: IpAddr,
}

impl ConnSlot {
    /// Takes a place for a connection from `ip`, or says which bound is full.
    fn take(sender: &Sender, ip: IpAddr) -> Result<ConnSlot, &'static str> {
        let cfg = &sender.inner.tcp;
        let Ok(mut t) = sender.inner.conns.lock() else {
            return Err("connection table unavailable");
        };
        if t.inbound_total >= cfg.max_connections {
            return Err("total connection limit");
        }
        let n = t.inbound_by_ip.entry(ip).or_insert(0);
        if *n >= cfg.max_per_source {
            return Err("per-source connection limit");
        }
        *n += 1;
        t.inbound_total += 1;
        Ok(ConnSlot {
            sender: sender.clone(),
            ip,
        })
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.sender.inner.conns.lock() {
            t.inbound_total = t.inbound_total.saturating_sub(1);
            if let Some(n) = t.inbound_by_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    t.inbound_by_ip.remove(&self.ip);
                }
            }
        }
    }
}

pub(super) async fn accept_loop(sender: Sender, iface: usize, listener: TcpListener) {
    // One warning per second at most: a connection flood must not flood the log.
    let mut last_warn: Option<tokio::time::Instant> = None;
    let mut held = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => match ConnSlot::take(&sender, remote.ip()) {
                Ok(slot) => {
                    let _ = stream.set_nodelay(true);
                    start_conn(&sender, iface, stream, remote, slot);
                }
                Err(why) => {
                    drop(stream);
                    AdmissionMetrics::bump(&sender.inner.metrics.tcp_refused);
                    let now = tokio::time::Instant::now();
                    if last_warn.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                        tracing::warn!(%remote, reason = why, suppressed = held, "tcp connection refused");
                        last_warn = Some(now);
                        held = 0;
                    } else {
                        held += 1;
                    }
                }
            },
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

fn start_conn(
    sender: &Sender,
    iface: usize,
    stream: TcpStream,
    remote: SocketAddr,
    slot: ConnSlot,
) -> u64 {
    let (id, rx) = register(sender, iface, remote);
    let (rd, wr) = stream.into_split();
    tokio::spawn(writer(wr, rx));
    let s = sender.clone();
    tokio::spawn(async move {
        reader(&s, iface, id, rd, remote).await;
        unregister(&s, iface, remote, id);
        drop(slot);
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
    let (idle, per_message) = (
        sender.inner.tcp.idle_timeout,
        sender.inner.tcp.message_timeout,
    );
    let mut idle_deadline = tokio::time::Instant::now() + idle;
    // Set when a message's first byte arrives; reads do not move it.
    let mut message_deadline: Option<tokio::time::Instant> = None;
    loop {
        let deadline = if framer.buffered() > 0 {
            *message_deadline.get_or_insert_with(|| tokio::time::Instant::now() + per_message)
        } else {
            message_deadline = None;
            idle_deadline
        };
        let n = match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
            Err(_) => {
                if message_deadline.is_some() {
                    AdmissionMetrics::bump(&sender.inner.metrics.tcp_slow_closed);
                    tracing::debug!(%remote, "tcp message not complete in time; closing");
                } else {
                    tracing::debug!(%remote, "tcp connection idle; closing");
                }
                return;
            }
        };
        framer.push(buf.get(..n).unwrap_or(&[]));
        loop {
            match framer.next_frame() {
                Ok(None) => break,
                Ok(Some(frame)) => {
                    // A complete frame: the next message gets its own deadline.
                    message_deadline = None;
                    idle_deadline = tokio::time::Instant::now() + idle;
                    match frame {
                        Frame::Message(msg) => {
                            sender
                                .deliver(Inbound::Message {
                                    msg,
                                    peer: peer.clone(),
                                })
                                .await
                        }
                        Frame::Ping => sender.send(&peer, Bytes::from_static(b"\r\n")),
                        Frame::Pong => {}
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::TcpConfig;
    use crate::transport::ListenSpec;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    async fn listener(tcp: TcpConfig) -> (Sender, SocketAddr, mpsc::Receiver<Inbound>) {
        let (tx, rx) = mpsc::channel(64);
        let spec = ListenSpec {
            udp: None,
            tcp: "127.0.0.1:0".parse().ok(),
        };
        let metrics = Arc::new(AdmissionMetrics::default());
        let sender = Sender::start_with(&[spec], Default::default(), tcp, metrics, tx)
            .await
            .unwrap();
        let addr = sender.tcp_local(0).unwrap();
        (sender, addr, rx)
    }

    /// Whether the server closed `s` within `limit` (read returns 0 or fails).
    async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
        let mut b = [0u8; 64];
        matches!(
            tokio::time::timeout(limit, s.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn connections_beyond_the_per_source_bound_are_closed() {
        let cfg = TcpConfig {
            max_per_source: 2,
            ..TcpConfig::default()
        };
        let (sender, addr, _rx) = listener(cfg).await;
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut c, Duration::from_secs(2)).await);
        assert!(!closed_within(&mut a, Duration::from_millis(100)).await);
        assert!(!closed_within(&mut b, Duration::from_millis(100)).await);
        assert_eq!(sender.inner.metrics.snapshot().tcp_refused, 1);
        // A place frees up when a connection ends.
        drop(a);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut d = TcpStream::connect(addr).await.unwrap();
        assert!(!closed_within(&mut d, Duration::from_millis(200)).await);
    }

    #[tokio::test]
    async fn trickling_a_message_does_not_keep_the_connection() {
        let cfg = TcpConfig {
            message_timeout: Duration::from_secs(1),
            ..TcpConfig::default()
        };
        let (sender, addr, _rx) = listener(cfg).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let mut closed = false;
        // One byte every 100 ms: each read is quick, the message never completes.
        for b in b"OPTIONS sip:x@example.test SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\n"
            .iter()
            .cycle()
            .take(60)
        {
            if s.write_all(&[*b]).await.is_err() {
                closed = true;
                break;
            }
            if closed_within(&mut s, Duration::from_millis(100)).await {
                closed = true;
                break;
            }
        }
        assert!(closed, "connection outlived the message deadline");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(sender.inner.metrics.snapshot().tcp_slow_closed, 1);
    }
}
