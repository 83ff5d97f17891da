//! The relay's forwarding path allocates nothing per packet: a process-wide
//! counting allocator sees (almost) no allocation while thousands of packets
//! cross the relay, once the stream is set up and latched.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use sipveil::media::{MediaConfig, MediaRelay, Side};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn forwarding_does_not_allocate() {
    let relay = MediaRelay::new(MediaConfig {
        port_min: 21400,
        port_max: 21419,
        ..MediaConfig::default()
    })
    .unwrap();
    let p = relay.allocate("call", 0, LO, LO).unwrap();
    let a = UdpSocket::bind((LO, 0)).unwrap();
    let b = UdpSocket::bind((LO, 0)).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    relay
        .set_remote(
            "call",
            0,
            Side::B,
            Some(b.local_addr().unwrap()),
            None,
            false,
        )
        .unwrap();
    let a_port = SocketAddr::new(LO, p.a_rtp);
    let b_port = SocketAddr::new(LO, p.b_rtp);
    let pkt = [0x80u8; 172];
    let mut buf = [0u8; 2048];
    // Warm up: the worker takes the stream, both sides latch.
    b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut tries = 0;
    while b.recv_from(&mut buf).is_err() {
        tries += 1;
        assert!(tries < 100, "relay never forwarded");
        a.send_to(&pkt, a_port).unwrap();
    }
    b.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    b.send_to(&pkt, b_port).unwrap();
    a.recv_from(&mut buf).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    b.set_nonblocking(true).unwrap();
    while b.recv_from(&mut buf).is_ok() {}
    b.set_nonblocking(false).unwrap();

    let before = ALLOCS.load(Relaxed);
    let n = 5000;
    for _ in 0..n {
        a.send_to(&pkt, a_port).unwrap();
        b.recv_from(&mut buf).unwrap();
        b.send_to(&pkt, b_port).unwrap();
        a.recv_from(&mut buf).unwrap();
    }
    let allocs = ALLOCS.load(Relaxed) - before;
    eprintln!("{allocs} allocations while relaying {} packets", 2 * n);
    assert!(allocs < 10, "{allocs} allocations for {} packets", 2 * n);
}
