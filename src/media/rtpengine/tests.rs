//! The ng protocol against a fake rtpengine on loopback.

use std::collections::HashMap;
use std::time::Instant;

use serde_bencode::value::Value;

use super::*;

#[test]
fn offer_encodes_like_opensips_sends_it() {
    let req = Request {
        command: "offer",
        call_id: Some("abc@host"),
        from_tag: Some("ft1"),
        sdp: Some(b"v=0\r\n"),
        replace: &["origin", "session-connection"],
        ice: Some("remove"),
        direction: &["access", "core"],
        ..Request::default()
    };
    let got = encode("5_1", &req).unwrap();
    let want = "5_1 d3:ICE6:remove7:call-id8:abc@host7:command5:offer\
                9:directionl6:access4:coree8:from-tag3:ft1\
                7:replacel6:origin18:session-connectione3:sdp5:v=0\r\ne";
    assert_eq!(String::from_utf8(got).unwrap(), want);
}

#[test]
fn replies_are_read() {
    let ok = b"c1 d7:createdi1700000000e6:result2:ok3:sdp5:v=0\r\n6:totalsd3:rtpd1:ai1eeee";
    let r = decode("c1", ok).unwrap().unwrap();
    assert_eq!(r.result, "ok");
    assert_eq!(r.sdp.as_deref(), Some(&b"v=0\r\n"[..]));
    let err = b"c2 d6:result5:error12:error-reason18:Unknown call-id xye";
    let r = decode("c2", err).unwrap().unwrap();
    assert_eq!(r.error_reason.as_deref(), Some("Unknown call-id xy"));
    assert!(decode("c3", ok).is_none(), "another cookie");
    assert!(decode("c1", b"c1d6:result2:oke").is_none(), "no space");
    for bad in [
        &b"c1 "[..],
        b"c1 garbage",
        b"c1 d6:result99999999:oke",
        b"c1 le",
        b"c1 i3e",
    ] {
        assert!(
            matches!(decode("c1", bad), Some(Err(NgError::BadReply(_)))),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

/// A fake rtpengine: answers per `reply(n, dict)` where n counts requests.
fn fake<F>(
    reply: F,
) -> (
    SocketAddr,
    std::thread::JoinHandle<Vec<HashMap<String, Value>>>,
)
where
    F: Fn(usize, &HashMap<String, Value>) -> Option<String> + Send + 'static,
{
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let task = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let msg = &buf[..n];
            let sp = msg.iter().position(|&c| c == b' ').unwrap();
            let cookie = std::str::from_utf8(&msg[..sp]).unwrap().to_string();
            let Value::Dict(d) = serde_bencode::from_bytes::<Value>(&msg[sp + 1..]).unwrap() else {
                panic!("not a dict");
            };
            let d: HashMap<String, Value> = d
                .into_iter()
                .map(|(k, v)| (String::from_utf8(k).unwrap(), v))
                .collect();
            if let Some(body) = reply(seen.len(), &d) {
                let out = format!("{cookie} {body}");
                sock.send_to(out.as_bytes(), from).unwrap();
            }
            seen.push(d);
        }
        seen
    });
    (addr, task)
}

fn text(v: &Value) -> String {
    match v {
        Value::Bytes(b) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("not bytes: {other:?}"),
    }
}

#[test]
fn offer_is_resent_until_answered() {
    // The first try is lost; the second is answered.
    let (addr, task) = fake(|n, _| (n == 1).then(|| "d6:result2:ok3:sdp4:NEW!e".into()));
    let c = NgClient::new(addr, Duration::from_millis(100), 3);
    let sdp = c
        .offer(&Session {
            call_id: "call-1",
            from_tag: "ft",
            sdp: b"v=0\r\n",
            replace: &["origin", "session-connection"],
            ice: Some("remove"),
            ..Session::default()
        })
        .unwrap();
    assert_eq!(sdp, b"NEW!");
    let seen = task.join().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(text(&seen[1]["command"]), "offer");
    assert_eq!(text(&seen[1]["call-id"]), "call-1");
    assert_eq!(text(&seen[1]["ICE"]), "remove");
    assert!(!seen[1].contains_key("to-tag"));
    let Value::List(rep) = &seen[1]["replace"] else {
        panic!()
    };
    assert_eq!(rep.len(), 2);
}

#[test]
fn errors_and_timeouts() {
    let (addr, task) = fake(|_, d| match text(&d["command"]).as_str() {
        "ping" => Some("d6:result4:ponge".into()),
        "answer" => Some("d6:result5:error12:error-reason14:Unknown call-ie".into()),
        "delete" => Some("d6:result2:ok7:warning4:hmm!e".into()),
        _ => None,
    });
    let c = NgClient::new(addr, Duration::from_millis(100), 3);
    c.ping().unwrap();
    let s = Session {
        call_id: "x",
        from_tag: "f",
        to_tag: Some("t"),
        sdp: b"v=0\r\n",
        ..Session::default()
    };
    match c.answer(&s) {
        Err(NgError::Refused(r)) => assert_eq!(r, "Unknown call-i"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.answer(&Session { to_tag: None, ..s }),
        Err(NgError::BadReply(_))
    ));
    c.delete("x", "f", None).unwrap();
    let t0 = Instant::now();
    assert!(matches!(c.offer(&s), Err(NgError::Timeout { tries: 3 })));
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1000));
    let seen = task.join().unwrap();
    // ping, answer, delete, then the offer three times.
    assert_eq!(seen.len(), 6);
    assert_eq!(text(&seen[2]["command"]), "delete");
    assert!(!seen[2].contains_key("sdp"));
}

#[test]
fn nothing_listening_fails_fast() {
    let addr = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let c = NgClient::new(addr, Duration::from_millis(300), 3);
    let t0 = Instant::now();
    assert!(c.ping().is_err());
    assert!(t0.elapsed() < Duration::from_millis(1000));
}
