//! The tokio shell around the sans-IO core: owns sockets, clock and store, feeds
//! parsed messages and timer ticks to the engine, and carries out its outputs.

mod reload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::admission::{Admission, AdmissionConfig, Admit, IfacePolicy, Verdict};
use crate::dialog::{CallRecord, Engine, EngineConfig, Output};
use crate::policy::PolicySet;
use crate::sip::Limits;
use crate::store::{SledStore, Store};
use crate::transport::{Inbound, ListenSpec, Sender};

/// Longest a store write waits in the signaling loop before going to the writer.
const STORE_BATCH: Duration = Duration::from_millis(20);

/// Everything the shell needs to start.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The core's configuration.
    pub engine: EngineConfig,
    /// Listen addresses per interface (same order as `engine.ifaces`).
    pub listen: Vec<ListenSpec>,
    /// Parser limits.
    pub limits: Limits,
    /// Where the sled store lives.
    pub data_dir: PathBuf,
    /// `[registrar]`, when this node serves REGISTER.
    pub registrar: Option<crate::dialog::RegistrarConfig>,
    /// The boundary policy loaded at start.
    pub policy: Arc<PolicySet>,
    /// `[policy] dir`, read again on SIGHUP.
    pub policy_dir: PathBuf,
    /// The config file, read again on SIGHUP (`None`: built in code, no reload).
    pub config_path: Option<PathBuf>,
    /// `[media]`: relay, passthrough or rtpengine.
    pub media: crate::media::MediaConfig,
    /// `[admission]`: the pipeline in front of the core, and TCP bounds.
    pub admission: AdmissionConfig,
    /// Per-interface allow-lists and budgets (same order as `engine.ifaces`).
    pub admission_ifaces: Vec<IfacePolicy>,
}

/// Runs the SBC until SIGINT or SIGTERM. Signaling runs on one thread: listeners
/// and the core hand messages over without cross-thread wakeups, which is what a
/// SIP message's cost is dominated by otherwise; the store writes on its own thread.
pub fn run(rc: RuntimeConfig) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(rc))
}

fn load_calls(store: &dyn Store) -> Vec<CallRecord> {
    match store.scan("call/") {
        Ok(items) => items
            .into_iter()
            .filter_map(|(k, v)| match serde_json::from_slice::<CallRecord>(&v) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(key = %k, "unreadable call record skipped: {e}");
                    None
                }
            })
            .collect(),
        Err(e) => {
            tracing::error!("cannot read calls from the store: {e}");
            Vec::new()
        }
    }
}

/// Applies store writes off the core task; flushes at most every 100 ms so an
/// established call is durable well within 2 s of its answer.
fn store_writer(store: Arc<SledStore>, rx: std::sync::mpsc::Receiver<Vec<Output>>) {
    let mut last_flush = Instant::now();
    let mut dirty = false;
    loop {
        let item = if dirty {
            rx.recv_timeout(Duration::from_millis(100))
        } else {
            rx.recv()
                .map_err(|_| std::sync::mpsc::RecvTimeoutError::Disconnected)
        };
        match item {
            Ok(batch) => {
                for o in batch {
                    match o {
                        Output::Persist { key, value } => {
                            if let Err(e) = store.put(&key, &value) {
                                tracing::error!(%key, "store write failed: {e}");
                            }
                        }
                        Output::Forget { key } => {
                            if let Err(e) = store.delete(&key) {
                                tracing::error!(%key, "store delete failed: {e}");
                            }
                        }
                        Output::Send { .. } => {}
                    }
                }
                dirty = true;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = store.flush();
                return;
            }
        }
        if dirty && last_flush.elapsed() >= Duration::from_millis(100) {
            if let Err(e) = store.flush() {
                tracing::error!("store flush failed: {e}");
            }
            last_flush = Instant::now();
            dirty = false;
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut t) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = t.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What SIGHUP does to the boundary policy: the directory is loaded again and, if
/// valid, the new set is returned to be swapped in whole; if not, the error is
/// logged and `current` stays (an operator's typo must not drop the policy).
pub fn reload_policy(current: &Arc<PolicySet>, dir: &Path, ifaces: &[String]) -> Arc<PolicySet> {
    match PolicySet::load(dir, ifaces) {
        Ok(p) => {
            tracing::info!("policy reloaded from {}: {}", dir.display(), p.summary());
            Arc::new(p)
        }
        Err(e) => {
            for line in e.to_string().lines() {
                tracing::error!("policy reload refused, previous policy stays: {line}");
            }
            current.clone()
        }
    }
}

/// SIGHUP, the reload request (systemd's ExecReload). Registered at start, so a
/// HUP never ends the process.
#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangups() -> Hangup {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
        .map_err(|e| tracing::error!("cannot watch SIGHUP, policy reload disabled: {e}"))
        .ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangup {}

/// Resolves at the next SIGHUP; never, where there is none to watch.
async fn next_hangup(h: &mut Hangup) {
    #[cfg(unix)]
    if let Some(s) = h {
        if s.recv().await.is_some() {
            return;
        }
    }
    let _ = h;
    std::future::pending::<()>().await
}

async fn serve(mut rc: RuntimeConfig) -> anyhow::Result<()> {
    let store = Arc::new(SledStore::open(&rc.data_dir)?);
    // Issue 4: node secret and subscribers, and the admin socket through which
    // `sipveil subscriber ...` reaches this process while it holds the store.
    let auth = crate::registrar::AuthContext::load(store.as_ref())?;
    // Signaling matters more than administration: without the socket, log and run on.
    let _admin = crate::admin::start(&rc.data_dir, store.clone(), auth.subscribers.clone())
        .map_err(|e| {
            tracing::error!(
                "admin socket unavailable, `sipveil subscriber` cannot reach this process: {e}"
            )
        })
        .ok();
    let records = load_calls(store.as_ref());
    let (tx, mut rx) = mpsc::channel::<Inbound>(16 * 1024);
    // Issue 7: admission in front of the core; it also counts TCP refusals.
    let mut admission = Admission::new(&rc.admission, &rc.admission_ifaces);
    let mut trusted: Vec<bool> = rc.engine.ifaces.iter().map(|i| i.trusted).collect();
    let sender = Sender::start_with(
        &rc.listen,
        rc.limits,
        rc.admission.tcp.clone(),
        admission.metrics(),
        tx,
    )
    .await?;
    for (i, f) in rc.engine.ifaces.iter().enumerate() {
        let spec = rc.listen.get(i);
        tracing::info!(
            interface = %f.name,
            udp = ?spec.and_then(|s| s.udp),
            tcp = ?spec.and_then(|s| s.tcp),
            advertise = %f.advertise,
            "listening"
        );
    }
    let iface_names: Vec<String> = rc.engine.ifaces.iter().map(|f| f.name.clone()).collect();
    let mut policy = rc.policy.clone();
    tracing::info!("policy: {}", policy.summary());
    let mut hup = hangups();
    let mut engine = Engine::new(rc.engine.clone());
    engine.set_policy(policy.clone());
    match rc.media.mode {
        crate::media::MediaMode::Relay => {
            let relay = crate::media::MediaRelay::new(rc.media.clone())
                .map_err(|e| anyhow::anyhow!("cannot start the media relay: {e}"))?;
            tracing::info!(
                ports = %format!("{}-{}", rc.media.port_min, rc.media.port_max),
                "media anchored by the built-in relay"
            );
            engine.enable_media(relay, rc.media.media_timeout);
        }
        crate::media::MediaMode::Passthrough => {
            tracing::warn!("[media] mode = passthrough: SDP addresses cross unchanged (media topology is not hidden)");
        }
        crate::media::MediaMode::Rtpengine => {
            let client =
                crate::media::rtpengine::NgClient::from_config(&rc.media).ok_or_else(|| {
                    anyhow::anyhow!("[media] mode = rtpengine needs rtpengine = \"IP:PORT\"")
                })?;
            match client.ping() {
                Ok(()) => {
                    tracing::info!(rtpengine = ?rc.media.rtpengine, "media anchored by rtpengine")
                }
                Err(e) => {
                    tracing::warn!(rtpengine = ?rc.media.rtpengine, "rtpengine does not answer yet ({e}); calls get 503 until it does")
                }
            }
            engine.enable_rtpengine(client, &rc.media);
        }
    }
    if !records.is_empty() {
        tracing::info!(
            calls = records.len(),
            "restored established calls from the store"
        );
    }
    engine.restore(records);
    if let Some(reg) = rc.registrar.clone() {
        let bindings = store
            .scan(crate::registrar::location::KEY_PREFIX)
            .unwrap_or_else(|e| {
                tracing::error!("cannot read registrations from the store: {e}");
                Vec::new()
            });
        tracing::info!(domain = %reg.domain, auth = reg.auth, "registrar enabled");
        engine.enable_registrar(reg, auth.clone(), bindings);
    }
    let (store_tx, store_rx) = std::sync::mpsc::channel::<Vec<Output>>();
    let writer_store = store.clone();
    let writer = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || store_writer(writer_store, store_rx))?;
    let mut outs: Vec<Output> = Vec::with_capacity(64);
    // Store writes are handed to the writer thread in batches, at most every
    // STORE_BATCH, so the writer wakes a few dozen times a second, not per call.
    let mut writes: Vec<Output> = Vec::new();
    let mut writes_due: Option<Instant> = None;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        // The engine changes only in this loop: its counts are current here.
        admission.set_load(engine.transaction_count(), engine.call_count());
        admission.tick(Instant::now());
        let deadline = engine
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        let deadline = writes_due.map_or(deadline, |w| w.min(deadline));
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                let now = Instant::now();
                let mut gate = Gate { admission: &mut admission, trusted: &trusted, sender: &sender };
                handle(&mut engine, &mut gate, ev, now);
                // Take what else is queued before polling timers and flushing outputs.
                for _ in 0..256 {
                    match rx.try_recv() {
                        Ok(ev) => handle(&mut engine, &mut gate, ev, now),
                        Err(_) => break,
                    }
                }
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
            _ = next_hangup(&mut hup) => {
                if let Some(next) = rc
                    .config_path
                    .as_deref()
                    .and_then(|path| reload::reload_config(path, &rc))
                {
                    if reload::admission_changed(&rc, &next) {
                        admission = Admission::with_metrics(
                            &next.admission,
                            &next.admission_ifaces,
                            admission.metrics(),
                        );
                        tracing::info!("admission limits reloaded (bans and counters start over)");
                    }
                    trusted = next.engine.ifaces.iter().map(|i| i.trusted).collect();
                    engine.reconfigure(next.engine.clone(), next.registrar.clone());
                    tracing::info!("config reloaded from {}", next.config_path.as_deref().unwrap_or(Path::new("?")).display());
                    rc = RuntimeConfig { policy: policy.clone(), ..next };
                }
                let next = reload_policy(&policy, &rc.policy_dir, &iface_names);
                if !Arc::ptr_eq(&next, &policy) {
                    engine.set_policy(next.clone());
                    policy = next;
                }
            }
        }
        engine.poll(Instant::now());
        for e in engine.drain_auth_events() {
            if e.ok {
                admission.auth_succeeded(e.source, &e.user, Instant::now());
            } else {
                admission.auth_failed(e.source, &e.user, Instant::now());
            }
        }
        engine.drain_outputs_into(&mut outs);
        for o in outs.drain(..) {
            match o {
                Output::Send { peer, data } => {
                    if tracing::enabled!(tracing::Level::TRACE) {
                        tracing::trace!(to = %peer.addr, "send:\n{}", String::from_utf8_lossy(&data));
                    }
                    sender.send(&peer, data)
                }
                other => {
                    writes_due.get_or_insert_with(|| Instant::now() + STORE_BATCH);
                    writes.push(other);
                }
            }
        }
        if writes_due.is_some_and(|d| Instant::now() >= d) {
            let _ = store_tx.send(std::mem::take(&mut writes));
            writes_due = None;
        }
    }
    if !writes.is_empty() {
        let _ = store_tx.send(writes);
    }
    drop(store_tx);
    let _ = writer.join();
    store.flush()?;
    Ok(())
}

/// What `handle` needs besides the engine: the admission pipeline, which
/// interfaces are trusted, and the sender for admission's own answers.
struct Gate<'a> {
    admission: &'a mut Admission,
    trusted: &'a [bool],
    sender: &'a Sender,
}

impl Gate<'_> {
    /// Sends the stateless answer of a `Reply` verdict as the core sends its
    /// own (RFC 3261 §18.2.2 with RFC 3581): to the packet's source address,
    /// never to the Via host, so it cannot be reflected at a third party.
    fn answer(
        &self,
        verdict: &Verdict,
        req: &crate::sip::SipMessage,
        peer: &crate::transport::Peer,
    ) {
        if let Some(resp) = verdict.response_to(req) {
            let to = crate::dialog::response_peer(req, peer);
            self.sender.send(&to, bytes::Bytes::from(resp.to_bytes()));
        }
    }
}

fn handle(engine: &mut Engine, gate: &mut Gate<'_>, ev: Inbound, now: Instant) {
    let trusted = |iface: usize| gate.trusted.get(iface).copied().unwrap_or(false);
    match ev {
        Inbound::Message { msg, peer } => {
            if tracing::enabled!(tracing::Level::TRACE) {
                tracing::trace!(from = %peer.addr, "recv:\n{}", String::from_utf8_lossy(&msg.to_bytes()));
            }
            let req = Admit::new(&msg, peer.addr, peer.iface, trusted(peer.iface), now);
            match gate.admission.check(&req) {
                Verdict::Pass => engine.on_message(msg, peer, now),
                verdict => gate.answer(&verdict, &msg, &peer),
            }
        }
        Inbound::Malformed { err, peer } => {
            let t = trusted(peer.iface);
            let verdict = gate
                .admission
                .check_malformed(&err, peer.addr, peer.iface, t, now);
            if let Some(partial) = err.partial.as_deref() {
                gate.answer(&verdict, partial, &peer);
            }
        }
    }
}

/// Builds the shell's configuration from the operator's config: interface
/// indexes, resolved next hops, timer values.
pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<RuntimeConfig> {
    use crate::config::{RouteTarget, Transport as CfgTransport};
    use crate::dialog::{IfaceInfo, NextHop, Route};
    use crate::transaction::{TimerConfig, Transport};
    use std::net::ToSocketAddrs;

    let ifaces: Vec<IfaceInfo> = cfg
        .interfaces
        .iter()
        .map(|i| IfaceInfo {
            name: i.name.clone(),
            advertise: i.advertised_host(),
            udp: i.udp,
            tcp: i.tcp,
            trusted: i.trusted,
            send_identity: i.send_identity,
            identity_header: match i.identity_header {
                crate::config::IdentityHeader::Pai => crate::policy::identity::IdentityHeader::Pai,
                crate::config::IdentityHeader::Rpid => {
                    crate::policy::identity::IdentityHeader::Rpid
                }
                crate::config::IdentityHeader::Both => {
                    crate::policy::identity::IdentityHeader::Both
                }
            },
            media: crate::dialog::IfaceMedia {
                address: i.media_address,
                codecs: i.codecs.clone(),
                rtpengine_interface: i.rtpengine_interface.clone(),
            },
        })
        .collect();
    let listen = cfg
        .interfaces
        .iter()
        .map(|i| ListenSpec {
            udp: i.udp,
            tcp: i.tcp,
        })
        .collect();
    let mut routes = Vec::new();
    for r in &cfg.routes {
        let from = cfg
            .interface_index(&r.from)
            .ok_or_else(|| anyhow::anyhow!("route from unknown interface {}", r.from))?;
        let egress = cfg
            .interface_index(&r.egress)
            .ok_or_else(|| anyhow::anyhow!("route egress unknown interface {}", r.egress))?;
        let next_hop = match &r.to {
            RouteTarget::Registrar => None,
            RouteTarget::NextHop(h) => {
                let addr = match h.socket_addr() {
                    Some(a) => a,
                    None => (h.host.to_string().as_str(), h.port)
                        .to_socket_addrs()
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| {
                            anyhow::anyhow!("cannot resolve route next hop {}", h.uri)
                        })?,
                };
                Some(NextHop {
                    addr,
                    host: h.host.to_string(),
                    port: h.port,
                    transport: match h.transport {
                        CfgTransport::Udp => Transport::Udp,
                        CfgTransport::Tcp => Transport::Tcp,
                    },
                })
            }
        };
        routes.push(Route {
            from,
            next_hop,
            egress,
        });
    }
    let policy = PolicySet::load_for(cfg)
        .map_err(|e| anyhow::anyhow!("invalid policy, not starting:\n{e}"))?;
    Ok(RuntimeConfig {
        policy: Arc::new(policy),
        policy_dir: cfg.policy.dir.clone(),
        config_path: cfg.path.clone(),
        media: cfg.media.clone(),
        admission: cfg.admission.clone(),
        admission_ifaces: IfacePolicy::from_config(cfg),
        engine: EngineConfig {
            ifaces,
            routes,
            ring_timeout: cfg.timers.ring_timeout,
            timers: TimerConfig {
                t1: cfg.timers.t1,
                t2: cfg.timers.t2,
                t4: cfg.timers.t4,
                ..TimerConfig::default()
            },
            max_calls: 100_000,
        },
        listen,
        limits: cfg.limits,
        data_dir: cfg.node.data_dir.clone(),
        registrar: match &cfg.registrar {
            None => None,
            Some(r) => Some(crate::dialog::RegistrarConfig {
                domain: r.domain.clone(),
                iface: cfg.interface_index(&r.interface).ok_or_else(|| {
                    anyhow::anyhow!("registrar interface {} unknown", r.interface)
                })?,
                auth: r.auth,
                limits: crate::registrar::location::RegistrarLimits {
                    min_expires: r.min_expires,
                    max_expires: r.max_expires,
                    default_expires: r.default_expires,
                    ..Default::default()
                },
                nat_keepalive: r.nat_keepalive,
                nonce_ttl: r.nonce_ttl,
                algorithms: r.digest_algorithms.clone(),
            }),
        },
    })
}
