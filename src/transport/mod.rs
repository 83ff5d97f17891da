//! Listeners and the outbound sender. UDP and TCP per interface; every message is
//! parsed here, off the core task, and handed over as an [`Inbound`] event. The
//! sender picks the socket of the egress interface so each side only ever sees
//! sipveil's address on that side.

mod tcp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::admission::{AdmissionMetrics, TcpConfig};
use crate::sip::{ErrorKind, Limits, ParseError, SipMessage};

pub use crate::transaction::{Peer, Transport};

/// What a listener delivers to the core.
#[derive(Debug)]
pub enum Inbound {
    /// A parsed message and where it came from.
    Message {
        /// The message.
        msg: SipMessage,
        /// Source address, transport, interface and connection.
        peer: Peer,
    },
    /// Bytes that did not parse; the core answers 400/413 when the partial message
    /// can be addressed, and drops them otherwise.
    Malformed {
        /// What was wrong.
        err: ParseError,
        /// Where it came from.
        peer: Peer,
    },
}

/// Sockets of one interface.
struct IfaceSockets {
    udp: Option<Arc<UdpSocket>>,
    tcp_local: Option<SocketAddr>,
}

/// Sends bytes out of the right interface; cheap to clone and shared by all tasks.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<SenderInner>,
}

struct SenderInner {
    ifaces: Vec<IfaceSockets>,
    conns: Mutex<ConnTable>,
    next_conn: AtomicU64,
    inbound: mpsc::Sender<Inbound>,
    limits: Limits,
    /// Bounds on inbound TCP connections and their timeouts (issue 7).
    tcp: TcpConfig,
    /// Where refused and slow connections are counted.
    metrics: Arc<AdmissionMetrics>,
}

/// Open TCP connections: by id, and by (interface, remote address) for reuse;
/// and how many inbound ones there are, per source IP and in all.
#[derive(Default)]
struct ConnTable {
    by_id: HashMap<u64, mpsc::UnboundedSender<Bytes>>,
    by_remote: HashMap<(usize, SocketAddr), u64>,
    inbound_by_ip: HashMap<std::net::IpAddr, usize>,
    inbound_total: usize,
}

/// Listen addresses of one interface, in config order.
#[derive(Clone, Debug)]
pub struct ListenSpec {
    /// UDP listen address.
    pub udp: Option<SocketAddr>,
    /// TCP listen address.
    pub tcp: Option<SocketAddr>,
}

impl Sender {
    /// Binds every listener and starts the receive tasks; parsed messages go to
    /// `inbound`.
    pub async fn start(
        specs: &[ListenSpec],
        limits: Limits,
        inbound: mpsc::Sender<Inbound>,
    ) -> std::io::Result<Sender> {
        let metrics = Arc::new(AdmissionMetrics::default());
        Self::start_with(specs, limits, TcpConfig::default(), metrics, inbound).await
    }

    /// [`Sender::start`] with explicit TCP bounds (`[admission.tcp]`), counting
    /// refused and slow connections in `metrics`.
    pub async fn start_with(
        specs: &[ListenSpec],
        limits: Limits,
        tcp: TcpConfig,
        metrics: Arc<AdmissionMetrics>,
        inbound: mpsc::Sender<Inbound>,
    ) -> std::io::Result<Sender> {
        let mut ifaces = Vec::with_capacity(specs.len());
        let mut tcp_listeners = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let udp = match spec.udp {
                Some(addr) => Some(Arc::new(bind_udp(addr)?)),
                None => None,
            };
            let tcp_local = match spec.tcp {
                Some(addr) => {
                    let l = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                        std::io::Error::new(e.kind(), format!("cannot listen on tcp {addr}: {e}"))
                    })?;
                    let local = l.local_addr()?;
                    tcp_listeners.push((i, l));
                    Some(local)
                }
                None => None,
            };
            ifaces.push(IfaceSockets { udp, tcp_local });
        }
        let sender = Sender {
            inner: Arc::new(SenderInner {
                ifaces,
                conns: Mutex::new(ConnTable::default()),
                next_conn: AtomicU64::new(1),
                inbound,
                limits,
                tcp,
                metrics,
            }),
        };
        for (i, iface) in sender.inner.ifaces.iter().enumerate() {
            if let Some(sock) = &iface.udp {
                tokio::spawn(udp_loop(sender.clone(), i, sock.clone()));
            }
        }
        for (i, l) in tcp_listeners {
            tokio::spawn(tcp::accept_loop(sender.clone(), i, l));
        }
        Ok(sender)
    }

    /// Sends `data` to `peer` from the socket of `peer.iface`. UDP sends never
    /// block; TCP reuses the connection the peer opened (or one we opened) and
    /// otherwise connects from the interface's address.
    pub fn send(&self, peer: &Peer, data: Bytes) {
        match peer.transport {
            Transport::Udp => {
                let Some(sock) = self
                    .inner
                    .ifaces
                    .get(peer.iface)
                    .and_then(|i| i.udp.as_ref())
                else {
                    tracing::warn!(
                        iface = peer.iface,
                        "no UDP socket on interface; message dropped"
                    );
                    return;
                };
                match sock.try_send_to(&data, peer.addr) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let sock = sock.clone();
                        let addr = peer.addr;
                        tokio::spawn(async move {
                            let _ = sock.send_to(&data, addr).await;
                        });
                    }
                    Err(e) => tracing::debug!(to = %peer.addr, "udp send failed: {e}"),
                }
            }
            Transport::Tcp => tcp::send(self, peer, data),
        }
    }

    /// The local TCP address of an interface (outbound connections bind its IP).
    fn tcp_local(&self, iface: usize) -> Option<SocketAddr> {
        self.inner.ifaces.get(iface).and_then(|i| i.tcp_local)
    }

    /// The local UDP address of an interface.
    pub fn udp_local(&self, iface: usize) -> Option<SocketAddr> {
        self.inner
            .ifaces
            .get(iface)
            .and_then(|i| i.udp.as_ref())
            .and_then(|s| s.local_addr().ok())
    }

    fn new_conn_id(&self) -> u64 {
        self.inner.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn limits(&self) -> Limits {
        self.inner.limits
    }

    async fn deliver(&self, ev: Inbound) {
        let _ = self.inner.inbound.send(ev).await;
    }
}

/// Socket buffers of the UDP listeners: a burst that arrives while the signaling
/// thread is busy waits in the kernel instead of being dropped (the kernel's
/// default of ~200 KiB holds well under a second of signaling at 5,000 calls/s).
const UDP_BUFFER: usize = 4 * 1024 * 1024;

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let named = |e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot listen on udp {addr}: {e}"))
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(named)?;
    // Best effort: the kernel caps them at net.core.rmem_max / wmem_max.
    let _ = sock.set_recv_buffer_size(UDP_BUFFER);
    let _ = sock.set_send_buffer_size(UDP_BUFFER);
    sock.bind(&addr.into()).map_err(named)?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock.into())
}

async fn udp_loop(sender: Sender, iface: usize, sock: Arc<UdpSocket>) {
    let limits = sender.limits();
    // One byte more than the limit so an oversize datagram is seen as oversize.
    let mut buf = vec![0u8; limits.max_message_size + 1];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!("udp recv error: {e}");
                continue;
            }
        };
        let data = buf.get(..n).unwrap_or(&[]);
        if data.iter().all(|c| matches!(c, b'\r' | b'\n' | b' ' | 0)) {
            continue; // keep-alive
        }
        let peer = Peer {
            addr: src,
            transport: Transport::Udp,
            iface,
            conn: None,
        };
        let parsed = SipMessage::parse_datagram(data, &limits);
        let ev = if n > limits.max_message_size {
            // The datagram filled the buffer, so it was cut: whatever the parser
            // found missing, the fault is its size (413), not its Content-Length.
            let partial = match parsed {
                Ok(msg) => Some(Box::new(msg)),
                Err(e) => e.partial,
            };
            let mut err = ParseError::new(ErrorKind::TooLarge, "message too large");
            err.partial = partial;
            Inbound::Malformed { err, peer }
        } else {
            match parsed {
                Ok(msg) => Inbound::Message { msg, peer },
                Err(err) => Inbound::Malformed { err, peer },
            }
        };
        sender.deliver(ev).await;
    }
}
