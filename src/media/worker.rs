//! A forwarding thread: one `mio` poll over the sockets of its streams, a tight
//! recv/send loop, commands from the control handle through a channel and a waker.
//!
//! Why mio on a plain OS thread: media must never wait behind signaling (nor the
//! reverse), and a relay's work per packet is two syscalls; an async runtime
//! would add a task wakeup per packet for nothing. mio is already in the tree
//! (tokio stands on it) and wraps epoll without unsafe code of ours. recvmmsg and
//! sendmmsg were considered and left out: they batch per socket, and an RTP
//! socket carries one stream at 50 packets/s, so a batch is nearly always one
//! packet, while they would need raw libc FFI here.
//!
//! Hot path: one receive buffer per worker, reused; stream state in slab vectors
//! indexed by the poll token; counters are relaxed atomics. No allocation per
//! packet. Fairness: a socket is drained at most `BURST` datagrams per turn and
//! then queued behind the other ready sockets, so one flooded port cannot starve
//! the rest.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::latch::{looks_like_rtcp, Remote};
use super::stats::Counters;
use super::Side;

/// The token of the control waker.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Datagrams taken from one socket before the others get a turn.
const BURST: usize = 32;
/// Largest UDP payload; a datagram is never truncated.
const BUF: usize = 65_536;

/// What the control handle asks of a worker.
pub(crate) enum Command {
    /// Start forwarding a stream: sockets in the order A RTP, A RTCP, B RTP, B RTCP.
    Add {
        id: u64,
        sockets: [std::net::UdpSocket; 4],
        counters: Arc<Counters>,
    },
    /// New signaled far end for one side.
    SetRemote {
        id: u64,
        side: Side,
        rtp: Option<SocketAddr>,
        rtcp: Option<SocketAddr>,
        mux: bool,
    },
    /// Stop forwarding and close the stream's sockets.
    Remove { id: u64 },
    /// End the thread.
    Shutdown,
}

struct SockSlot {
    sock: UdpSocket,
    stream: usize,
    side: Side,
    rtcp: bool,
}

struct StreamSlot {
    id: u64,
    /// Socket slots: A RTP, A RTCP, B RTP, B RTCP.
    socks: [usize; 4],
    remotes: [Remote; 2],
    counters: Arc<Counters>,
}

/// The thread's state.
pub(crate) struct Worker {
    poll: Poll,
    rx: Receiver<Command>,
    epoch: Instant,
    relatch_ms: u64,
    socks: Vec<Option<SockSlot>>,
    free_socks: Vec<usize>,
    streams: Vec<Option<StreamSlot>>,
    free_streams: Vec<usize>,
    by_id: HashMap<u64, usize>,
}

fn slot_of(side: Side, rtcp: bool) -> usize {
    (side as usize) * 2 + usize::from(rtcp)
}

impl Worker {
    pub(crate) fn new(
        poll: Poll,
        rx: Receiver<Command>,
        epoch: Instant,
        relatch: Duration,
    ) -> Worker {
        Worker {
            poll,
            rx,
            epoch,
            relatch_ms: u64::try_from(relatch.as_millis()).unwrap_or(u64::MAX),
            socks: Vec::new(),
            free_socks: Vec::new(),
            streams: Vec::new(),
            free_streams: Vec::new(),
            by_id: HashMap::new(),
        }
    }

    /// The thread body: returns on `Shutdown` or when the handle is gone.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; BUF].into_boxed_slice();
        let mut ready: Vec<usize> = Vec::with_capacity(1024);
        let mut again: Vec<usize> = Vec::with_capacity(1024);
        loop {
            let timeout = if ready.is_empty() {
                None
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("media worker poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
            // Commands first: a packet read in the same turn as a set_remote is
            // judged by the new state, as it would be had it come a moment later.
            if events.iter().any(|ev| ev.token() == WAKER) && !self.commands() {
                return;
            }
            // Sockets left with data last turn, then the newly readable ones; any
            // that fill a burst again wait for the next turn.
            for idx in ready.drain(..) {
                if self.drain(idx, &mut buf, now_ms) {
                    again.push(idx);
                }
            }
            for ev in events.iter() {
                if ev.token() != WAKER && self.drain(ev.token().0, &mut buf, now_ms) {
                    again.push(ev.token().0);
                }
            }
            std::mem::swap(&mut ready, &mut again);
        }
    }

    /// Receives up to `BURST` datagrams on one socket; true if more may wait.
    fn drain(&mut self, idx: usize, buf: &mut [u8], now_ms: u64) -> bool {
        for _ in 0..BURST {
            let Some(Some(slot)) = self.socks.get(idx) else {
                return false;
            };
            match slot.sock.recv_from(buf) {
                Ok((n, src)) => {
                    let pkt = buf.get(..n).unwrap_or_default();
                    forward(
                        &self.socks,
                        &mut self.streams,
                        idx,
                        pkt,
                        src,
                        now_ms,
                        self.relatch_ms,
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Applies queued commands; false when the thread must end.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::Add {
                    id,
                    sockets,
                    counters,
                }) => self.add(id, sockets, counters),
                Ok(Command::SetRemote {
                    id,
                    side,
                    rtp,
                    rtcp,
                    mux,
                }) => {
                    let slot = self.by_id.get(&id).copied();
                    if let Some(Some(st)) = slot.and_then(|s| self.streams.get_mut(s)) {
                        if let Some(r) = st.remotes.get_mut(side as usize) {
                            r.set_signaled(rtp, rtcp, mux);
                        }
                    }
                }
                Ok(Command::Remove { id }) => self.remove(id),
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn add(&mut self, id: u64, sockets: [std::net::UdpSocket; 4], counters: Arc<Counters>) {
        let stream = match self.free_streams.pop() {
            Some(s) => s,
            None => {
                self.streams.push(None);
                self.streams.len() - 1
            }
        };
        let mut idxs = [usize::MAX; 4];
        for (i, std_sock) in sockets.into_iter().enumerate() {
            let side = if i < 2 { Side::A } else { Side::B };
            let mut sock = UdpSocket::from_std(std_sock);
            let idx = match self.free_socks.pop() {
                Some(s) => s,
                None => {
                    self.socks.push(None);
                    self.socks.len() - 1
                }
            };
            if let Err(e) = self
                .poll
                .registry()
                .register(&mut sock, Token(idx), Interest::READABLE)
            {
                tracing::error!(stream = id, "media socket not polled: {e}");
            }
            if let Some(s) = self.socks.get_mut(idx) {
                *s = Some(SockSlot {
                    sock,
                    stream,
                    side,
                    rtcp: i % 2 == 1,
                });
            }
            if let Some(x) = idxs.get_mut(i) {
                *x = idx;
            }
        }
        if let Some(s) = self.streams.get_mut(stream) {
            *s = Some(StreamSlot {
                id,
                socks: idxs,
                remotes: [Remote::default(), Remote::default()],
                counters,
            });
        }
        self.by_id.insert(id, stream);
    }

    fn remove(&mut self, id: u64) {
        let Some(stream) = self.by_id.remove(&id) else {
            return;
        };
        let Some(st) = self.streams.get_mut(stream).and_then(Option::take) else {
            return;
        };
        for idx in st.socks {
            if let Some(mut slot) = self.socks.get_mut(idx).and_then(Option::take) {
                // Dropping the socket closes the port.
                let _ = self.poll.registry().deregister(&mut slot.sock);
                self.free_socks.push(idx);
            }
        }
        self.free_streams.push(stream);
        debug_assert_eq!(st.id, id);
    }
}

/// One datagram from socket `idx`: latching check, then out of the other side's
/// socket toward its far end.
fn forward(
    socks: &[Option<SockSlot>],
    streams: &mut [Option<StreamSlot>],
    idx: usize,
    pkt: &[u8],
    src: SocketAddr,
    now_ms: u64,
    relatch_ms: u64,
) {
    let Some(Some(inp)) = socks.get(idx) else {
        return;
    };
    let Some(Some(st)) = streams.get_mut(inp.stream) else {
        return;
    };
    let [ra, rb] = &mut st.remotes;
    let (from, to, other) = match inp.side {
        Side::A => (ra, &*rb, Side::B),
        Side::B => (rb, &*ra, Side::A),
    };
    let is_rtcp = inp.rtcp || (from.mux && looks_like_rtcp(pkt));
    if !from.admit(is_rtcp, src, now_ms, relatch_ms) {
        st.counters.dropped_source.fetch_add(1, Relaxed);
        return;
    }
    st.counters.last_activity_ms.store(now_ms, Relaxed);
    let (dest, out) = if is_rtcp {
        (to.rtcp_dest(), slot_of(other, !to.mux))
    } else {
        (to.rtp_dest(), slot_of(other, false))
    };
    let out = st
        .socks
        .get(out)
        .and_then(|&i| socks.get(i))
        .and_then(Option::as_ref);
    let sent = match (dest, out) {
        (Some(dest), Some(out)) => out.sock.send_to(pkt, dest).is_ok(),
        _ => false,
    };
    if sent {
        st.counters.forwarded(inp.side == Side::A, pkt.len());
    } else {
        st.counters.dropped_unroutable.fetch_add(1, Relaxed);
    }
}
