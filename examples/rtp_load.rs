//! Load generator for the built-in media relay.
//!
//! Starts a `MediaRelay` in this process, allocates N streams (side A on
//! 127.0.0.1, side B on 127.0.0.2), and pumps RTP-shaped packets through them from
//! one sender socket (A's far end) to one receiver socket (B's far end). Every
//! packet carries its send time; the receiver measures one-way latency. The
//! relay's CPU time is read from `/proc/self/task/<tid>/schedstat` of its
//! `sipveil-media-*` threads, so packets per second per core = forwarded packets /
//! relay CPU seconds.
//!
//! ```text
//! cargo run --release --example rtp_load -- --streams 500 --pps 25000 --secs 10
//! cargo run --release --example rtp_load -- --streams 500 --pps 0 --secs 5   # flat out
//! cargo run --release --example rtp_load -- --streams 500 --pps 25000 --direct
//! ```
//! `--pps 0` sends as fast as the sender can; `--direct` skips the relay (sender
//! straight to receiver) to give the latency baseline the relay adds to.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipveil::media::{MediaConfig, MediaRelay, Side};

struct Args {
    streams: usize,
    pps: u64,
    secs: u64,
    payload: usize,
    workers: usize,
    direct: bool,
}

fn args() -> Args {
    let mut a = Args {
        streams: 100,
        pps: 5000,
        secs: 10,
        payload: 160,
        workers: 1,
        direct: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match flag.as_str() {
            "--streams" => a.streams = num().max(1) as usize,
            "--pps" => a.pps = num(),
            "--secs" => a.secs = num().max(1),
            "--payload" => a.payload = (num() as usize).clamp(8, 1400),
            "--workers" => a.workers = num().max(1) as usize,
            "--direct" => a.direct = true,
            other => {
                eprintln!("unknown flag {other}");
                std::process::exit(2);
            }
        }
    }
    a
}

/// CPU nanoseconds of this process's threads whose name starts with `prefix`.
fn thread_cpu_ns(prefix: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .map(|c| c.starts_with(prefix))
                .unwrap_or(false)
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Latency histogram: 1 µs buckets up to 100 ms.
struct Hist {
    buckets: Vec<u64>,
    n: u64,
    max_us: u64,
}

impl Hist {
    fn add(&mut self, ns: u64) {
        let us = ns / 1000;
        let i = (us as usize).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.n += 1;
        self.max_us = self.max_us.max(us);
    }

    fn quantile(&self, q: f64) -> u64 {
        let want = ((self.n as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= want.max(1) {
                return i as u64;
            }
        }
        self.max_us
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args();
    let ip_a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let ip_b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let sender = UdpSocket::bind((ip_a, 0))?;
    let receiver = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 3), 0))?;
    receiver.set_read_timeout(Some(Duration::from_millis(200)))?;
    let far_b = receiver.local_addr()?;

    let relay = MediaRelay::new(MediaConfig {
        workers: a.workers,
        port_min: 20000,
        port_max: 29999,
        ..MediaConfig::default()
    })?;
    let mut targets: Vec<SocketAddr> = Vec::with_capacity(a.streams);
    for i in 0..a.streams {
        let call = format!("load-{i}");
        if a.direct {
            targets.push(far_b);
            continue;
        }
        let p = relay.allocate(&call, 0, ip_a, ip_b)?;
        relay.set_remote(&call, 0, Side::A, Some(sender.local_addr()?), None, false)?;
        relay.set_remote(&call, 0, Side::B, Some(far_b), None, false)?;
        targets.push(SocketAddr::new(ip_a, p.a_rtp));
    }
    std::thread::sleep(Duration::from_millis(200));

    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let rx_stop = Arc::clone(&stop);
    let rx = std::thread::Builder::new()
        .name("load-rx".into())
        .spawn(move || {
            let mut h = Hist {
                buckets: vec![0; 100_000],
                n: 0,
                max_us: 0,
            };
            let mut buf = [0u8; 2048];
            loop {
                match receiver.recv_from(&mut buf) {
                    Ok((n, _)) if n >= 20 => {
                        let mut ts = [0u8; 8];
                        ts.copy_from_slice(&buf[12..20]);
                        let sent = u64::from_be_bytes(ts);
                        let now = epoch.elapsed().as_nanos() as u64;
                        h.add(now.saturating_sub(sent));
                    }
                    Ok(_) => {}
                    Err(_) if rx_stop.load(Ordering::Relaxed) => return h,
                    Err(_) => {}
                }
            }
        })?;

    let mut pkt = vec![0u8; 12 + a.payload];
    pkt[0] = 0x80;
    let cpu0 = thread_cpu_ns("sipveil-media");
    let t0 = Instant::now();
    let run = Duration::from_secs(a.secs);
    let mut sent: u64 = 0;
    let mut seq: u16 = 0;
    let mut next = 0usize;
    while t0.elapsed() < run {
        // How many packets should be out by now.
        let due = if a.pps == 0 {
            sent + 64
        } else {
            (t0.elapsed().as_secs_f64() * a.pps as f64) as u64
        };
        if sent >= due {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        while sent < due {
            seq = seq.wrapping_add(1);
            pkt[2..4].copy_from_slice(&seq.to_be_bytes());
            let ts = epoch.elapsed().as_nanos() as u64;
            pkt[12..20].copy_from_slice(&ts.to_be_bytes());
            let _ = sender.send_to(&pkt, targets[next]);
            next = (next + 1) % targets.len();
            sent += 1;
        }
    }
    let wall = t0.elapsed();
    let cpu = thread_cpu_ns("sipveil-media").saturating_sub(cpu0);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let h = rx.join().map_err(|_| "receiver panicked")?;

    let forwarded: u64 = (0..a.streams)
        .filter_map(|i| relay.stats(&format!("load-{i}")))
        .flatten()
        .map(|s| s.a_to_b.packets)
        .sum();
    let secs = wall.as_secs_f64();
    let cpu_s = cpu as f64 / 1e9;
    println!(
        "mode={} streams={} workers={} payload={}B offered_pps={} secs={:.1}",
        if a.direct { "direct" } else { "relay" },
        a.streams,
        a.workers,
        a.payload,
        if a.pps == 0 {
            "max".into()
        } else {
            a.pps.to_string()
        },
        secs
    );
    println!(
        "sent={} ({:.0} pps) forwarded={} received={} loss={:.3}%",
        sent,
        sent as f64 / secs,
        forwarded,
        h.n,
        100.0 * (sent.saturating_sub(h.n)) as f64 / sent.max(1) as f64
    );
    if !a.direct {
        println!(
            "relay cpu={:.2}s ({:.1}% of one core) => {:.0} packets/s per core",
            cpu_s,
            100.0 * cpu_s / secs,
            if cpu_s > 0.0 {
                forwarded as f64 / cpu_s
            } else {
                0.0
            }
        );
    }
    println!(
        "latency us: p50={} p90={} p99={} p99.9={} max={}",
        h.quantile(0.5),
        h.quantile(0.9),
        h.quantile(0.99),
        h.quantile(0.999),
        h.max_us
    );
    Ok(())
}
