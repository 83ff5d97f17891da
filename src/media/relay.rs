//! [`MediaRelay`]: the control handle the core holds. Every call is cheap and
//! never waits on a forwarding thread: ports are bound here (so the caller learns
//! at once whether the call can have media), then handed to a worker through a
//! channel and a waker.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Poll, Waker};

use super::config::MediaConfig;
use super::ports::{bind_exact, bind_pair, BoundPair, PortAllocator};
use super::stats::{Counters, StreamStats};
use super::worker::{Command, Worker, WAKER};
use super::Side;

/// Why a media operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No port pair could be bound on this address (range exhausted, or the
    /// address is not ours).
    #[error("no media ports on {ip}: {source}")]
    Ports {
        /// The local address asked for.
        ip: IpAddr,
        /// The last bind error.
        source: io::Error,
    },
    /// A forwarding thread could not be started.
    #[error("media worker: {0}")]
    Worker(io::Error),
    /// The call has no media allocated.
    #[error("no media for call {0}")]
    UnknownCall(String),
    /// The call has no such stream.
    #[error("call {call} has no media stream {stream}")]
    UnknownStream {
        /// The call.
        call: String,
        /// The stream index asked for.
        stream: usize,
    },
    /// The call already holds `[media] max_streams_per_call` streams.
    #[error("call {0} has too many media streams")]
    TooManyStreams(String),
}

/// The ports sipveil advertises for one stream: A's on side A's address (written
/// into the SDP sent to side A), B's on side B's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamPorts {
    /// RTP port on side A's media address.
    pub a_rtp: u16,
    /// RTCP port on side A's media address (`a_rtp + 1`).
    pub a_rtcp: u16,
    /// RTP port on side B's media address.
    pub b_rtp: u16,
    /// RTCP port on side B's media address (`b_rtp + 1`).
    pub b_rtcp: u16,
}

/// A cheap, clonable handle on the built-in relay. Threads end when the last
/// handle is dropped.
#[derive(Clone)]
pub struct MediaRelay {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: MediaConfig,
    epoch: Instant,
    workers: Vec<WorkerLink>,
    state: Mutex<State>,
}

struct WorkerLink {
    tx: Sender<Command>,
    waker: Waker,
    thread: Option<JoinHandle<()>>,
}

struct State {
    ports: PortAllocator,
    calls: HashMap<String, BTreeMap<usize, Stream>>,
    next_id: u64,
    load: Vec<usize>,
}

struct Stream {
    id: u64,
    worker: usize,
    a_ip: IpAddr,
    b_ip: IpAddr,
    ports: StreamPorts,
    counters: Arc<Counters>,
}

impl WorkerLink {
    fn send(&self, cmd: Command) {
        // A worker that is gone has nothing left to forward; the sockets it was
        // sent are dropped with the command, which closes them.
        if self.tx.send(cmd).is_ok() {
            if let Err(e) = self.waker.wake() {
                tracing::error!("media worker wake failed: {e}");
            }
        }
    }
}

/// Binds side A's pair, then side B's, with `bind(alloc, side, ip)`; when B
/// fails, A's pair is closed and handed back, so nothing leaks.
fn bind_both(
    alloc: &mut PortAllocator,
    ips: [IpAddr; 2],
    now: Instant,
    mut bind: impl FnMut(&mut PortAllocator, usize, IpAddr) -> io::Result<BoundPair>,
) -> Result<(BoundPair, BoundPair), MediaError> {
    let [a_ip, b_ip] = ips;
    let a = bind(alloc, 0, a_ip).map_err(|source| MediaError::Ports { ip: a_ip, source })?;
    match bind(alloc, 1, b_ip) {
        Ok(b) => Ok((a, b)),
        Err(source) => {
            let port = a.port;
            drop(a);
            alloc.give_back(a_ip, port, now);
            Err(MediaError::Ports { ip: b_ip, source })
        }
    }
}

impl MediaRelay {
    /// Starts `cfg.workers` forwarding threads.
    pub fn new(cfg: MediaConfig) -> Result<MediaRelay, MediaError> {
        let epoch = Instant::now();
        let mut workers = Vec::with_capacity(cfg.workers);
        for i in 0..cfg.workers.max(1) {
            let poll = Poll::new().map_err(MediaError::Worker)?;
            let waker = Waker::new(poll.registry(), WAKER).map_err(MediaError::Worker)?;
            let (tx, rx) = mpsc::channel();
            let worker = Worker::new(poll, rx, epoch, cfg.relatch_after);
            let thread = std::thread::Builder::new()
                .name(format!("sipveil-media-{i}"))
                .spawn(move || worker.run())
                .map_err(MediaError::Worker)?;
            workers.push(WorkerLink {
                tx,
                waker,
                thread: Some(thread),
            });
        }
        let state = State {
            ports: PortAllocator::new(cfg.port_min, cfg.port_max, cfg.port_quarantine),
            calls: HashMap::new(),
            next_id: 1,
            load: vec![0; workers.len()],
        };
        Ok(MediaRelay {
            inner: Arc::new(Inner {
                cfg,
                epoch,
                workers,
                state: Mutex::new(state),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; if one did, the table is
        // still consistent enough to release calls.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Binds a port pair on `a_ip` and one on `b_ip` for stream `stream` of
    /// `call_id` and starts forwarding between them. Asking again for a stream
    /// that exists returns its ports (a re-offer keeps its ports).
    pub fn allocate(
        &self,
        call_id: &str,
        stream: usize,
        a_ip: IpAddr,
        b_ip: IpAddr,
    ) -> Result<StreamPorts, MediaError> {
        let now = Instant::now();
        let mut st = self.state();
        if let Some(s) = st.calls.get(call_id).and_then(|c| c.get(&stream)) {
            if s.a_ip == a_ip && s.b_ip == b_ip {
                return Ok(s.ports);
            }
        }
        let (held, exists) = st
            .calls
            .get(call_id)
            .map_or((0, false), |c| (c.len(), c.contains_key(&stream)));
        if held - usize::from(exists) >= self.inner.cfg.max_streams_per_call {
            return Err(MediaError::TooManyStreams(call_id.to_string()));
        }
        let (a, b) = bind_both(&mut st.ports, [a_ip, b_ip], now, |alloc, _, ip| {
            bind_pair(alloc, ip, now)
        })?;
        let ports = StreamPorts {
            a_rtp: a.port,
            a_rtcp: a.port + 1,
            b_rtp: b.port,
            b_rtcp: b.port + 1,
        };
        self.install(st, call_id, stream, (a_ip, a), (b_ip, b), ports, now);
        Ok(ports)
    }

    /// Binds exactly the ports a call had before a restart (its peers still send
    /// there) and starts forwarding between them; remotes follow by
    /// [`MediaRelay::set_remote`].
    pub fn restore(
        &self,
        call_id: &str,
        stream: usize,
        a_ip: IpAddr,
        b_ip: IpAddr,
        ports: StreamPorts,
    ) -> Result<(), MediaError> {
        let now = Instant::now();
        let mut st = self.state();
        if st
            .calls
            .get(call_id)
            .is_some_and(|c| c.contains_key(&stream))
        {
            return Ok(());
        }
        let (a, b) = bind_both(&mut st.ports, [a_ip, b_ip], now, |alloc, side, ip| {
            let port = if side == 0 { ports.a_rtp } else { ports.b_rtp };
            bind_exact(alloc, ip, port, now)
        })?;
        self.install(st, call_id, stream, (a_ip, a), (b_ip, b), ports, now);
        Ok(())
    }

    /// Files a bound stream under its call and hands its sockets to the least
    /// loaded worker.
    #[allow(clippy::too_many_arguments)]
    fn install(
        &self,
        mut st: MutexGuard<'_, State>,
        call_id: &str,
        stream: usize,
        (a_ip, a): (IpAddr, BoundPair),
        (b_ip, b): (IpAddr, BoundPair),
        ports: StreamPorts,
        now: Instant,
    ) {
        let id = st.next_id;
        st.next_id += 1;
        let worker = (0..st.load.len())
            .min_by_key(|&w| st.load.get(w).copied().unwrap_or(usize::MAX))
            .unwrap_or(0);
        if let Some(l) = st.load.get_mut(worker) {
            *l += 1;
        }
        let counters = Arc::new(Counters::default());
        counters.last_activity_ms.store(self.now_ms(), Relaxed);
        // Replacing a stream whose addresses changed frees the old one first.
        if let Some(old) = st.calls.get_mut(call_id).and_then(|c| c.remove(&stream)) {
            self.free(&mut st, &old, now);
        }
        st.calls.entry(call_id.to_string()).or_default().insert(
            stream,
            Stream {
                id,
                worker,
                a_ip,
                b_ip,
                ports,
                counters: Arc::clone(&counters),
            },
        );
        drop(st);
        if let Some(w) = self.inner.workers.get(worker) {
            w.send(Command::Add {
                id,
                sockets: [a.rtp, a.rtcp, b.rtp, b.rtcp],
                counters,
            });
        }
    }

    /// Tells the relay where one side's far end said it receives (from an offer or
    /// answer, and again on every re-INVITE/UPDATE). `rtp = None` (or 0.0.0.0, or
    /// port 0: hold, rejected stream) means "no signaled address: only latch".
    /// `rtcp` is an explicit `a=rtcp` address; `rtcp_mux` that RTCP shares the RTP
    /// port on that side. Also restarts the stream's media-timeout clock.
    pub fn set_remote(
        &self,
        call_id: &str,
        stream: usize,
        side: Side,
        rtp: Option<SocketAddr>,
        rtcp: Option<SocketAddr>,
        rtcp_mux: bool,
    ) -> Result<(), MediaError> {
        let st = self.state();
        let call = st
            .calls
            .get(call_id)
            .ok_or_else(|| MediaError::UnknownCall(call_id.to_string()))?;
        let s = call.get(&stream).ok_or_else(|| MediaError::UnknownStream {
            call: call_id.to_string(),
            stream,
        })?;
        s.counters
            .last_activity_ms
            .fetch_max(self.now_ms(), Relaxed);
        if let Some(w) = self.inner.workers.get(s.worker) {
            w.send(Command::SetRemote {
                id: s.id,
                side,
                rtp,
                rtcp,
                mux: rtcp_mux,
            });
        }
        Ok(())
    }

    fn free(&self, st: &mut State, s: &Stream, now: Instant) {
        if let Some(w) = self.inner.workers.get(s.worker) {
            w.send(Command::Remove { id: s.id });
        }
        if let Some(l) = st.load.get_mut(s.worker) {
            *l = l.saturating_sub(1);
        }
        st.ports.give_back(s.a_ip, s.ports.a_rtp, now);
        st.ports.give_back(s.b_ip, s.ports.b_rtp, now);
    }

    /// Ends a call's media: forwarding stops and its ports close within
    /// milliseconds (the worker is woken at once), then rest in quarantine.
    /// Returns the final counters, for the call-end log; `None` if the call had no
    /// media.
    pub fn release(&self, call_id: &str) -> Option<Vec<StreamStats>> {
        let now = Instant::now();
        let mut st = self.state();
        let call = st.calls.remove(call_id)?;
        let stats = call
            .iter()
            .map(|(&i, s)| s.counters.snapshot(i, self.inner.epoch))
            .collect();
        for s in call.values() {
            self.free(&mut st, s, now);
        }
        Some(stats)
    }

    /// Counters of every stream of a call, in stream order.
    pub fn stats(&self, call_id: &str) -> Option<Vec<StreamStats>> {
        let st = self.state();
        let call = st.calls.get(call_id)?;
        Some(
            call.iter()
                .map(|(&i, s)| s.counters.snapshot(i, self.inner.epoch))
                .collect(),
        )
    }

    /// Calls whose every stream has forwarded nothing for `timeout` (counted from
    /// the last packet, or from the last allocate/set_remote). A zero timeout
    /// reports nothing (`media_timeout = 0` disables the check).
    pub fn silent_calls(&self, now: Instant, timeout: Duration) -> Vec<String> {
        if timeout.is_zero() {
            return Vec::new();
        }
        let Some(limit) = now.checked_duration_since(self.inner.epoch) else {
            return Vec::new();
        };
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let timeout = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let st = self.state();
        st.calls
            .iter()
            .filter(|(_, streams)| {
                !streams.is_empty()
                    && streams.values().all(|s| {
                        let last = s.counters.last_activity_ms.load(Relaxed);
                        limit.saturating_sub(last) >= timeout
                    })
            })
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// Calls holding media right now.
    pub fn calls(&self) -> usize {
        self.state().calls.len()
    }

    /// The configuration the relay runs with.
    pub fn config(&self) -> &MediaConfig {
        &self.inner.cfg
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for w in &self.workers {
            w.send(Command::Shutdown);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}
