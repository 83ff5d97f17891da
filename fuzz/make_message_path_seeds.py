#!/usr/bin/env python3
"""Writes the seed corpus of the `message_path` target (fuzz/corpus/message_path/).

Input format: see fuzz/path_checks.rs. Byte 0 = setup flags; then records
separated by "\\n%%\\n", each = peer byte, clock byte, datagram (with $X
placeholders filled in from what sipveil last sent to that peer).
Run from the repository root: python3 fuzz/make_message_path_seeds.py
"""
import os

OUT = "fuzz/corpus/message_path"
DELIM = b"\n%%\n"

# peers (index into PEERS in path_checks.rs)
ALICE, V6, TCP, CALLEE, CORE_TCP, PARTNER, OUTSIDER, PHONE = range(8)
EXEMPT, DEFAULT, DISABLED = 1, 0, 2
EXAMPLES, KEEPALIVE = 4, 8


def msg(lines, body=""):
    text = "\r\n".join(lines) + "\r\n"
    text += "Content-Length: %d\r\n\r\n" % len(body.encode())
    return (text + body).encode()


def seed(name, flags, records):
    data = bytes([flags])
    parts = []
    for peer, clock, dgram in records:
        parts.append(bytes([peer, clock]) + dgram)
    data += DELIM.join(parts)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


OFFER = ("v=0\r\no=carol 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n"
         "t=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")
ANSWER = ("v=0\r\no=bob 2 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\n"
          "t=0 0\r\nm=audio 50000 RTP/AVP 0\r\n")


def invite(user="bob", frm="carol", tag="a1", branch="z9hG4bKinv1", cid="call-1@192.0.2.10",
           via="SIP/2.0/UDP 192.0.2.10:5060;rport", cseq=1, host="127.0.0.10", extra=(), body=OFFER):
    return msg([
        "INVITE sip:%s@%s SIP/2.0" % (user, host),
        "Via: %s;branch=%s" % (via, branch),
        "Max-Forwards: 70",
        "From: \"Carol\" <sip:%s@example.test>;tag=%s" % (frm, tag),
        "To: <sip:%s@example.test>" % user,
        "Call-ID: %s" % cid,
        "CSeq: %d INVITE" % cseq,
        "Contact: <sip:%s@192.0.2.10:5060>" % frm,
        "User-Agent: Desk/9",
        "Content-Type: application/sdp",
    ] + list(extra), body)


def resp(code, reason, totag="b1", cseq="$S", extra=(), body=""):
    lines = [
        "SIP/2.0 %d %s" % (code, reason),
        "Via: $V",
        "From: $F",
        "To: $T" + (";tag=%s" % totag if totag else ""),
        "Call-ID: $C",
        "CSeq: %s" % cseq,
    ] + list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    return msg(lines, body)


CALLEE_EXTRA = ["Contact: <sip:bob@127.0.0.2:5090>", "Record-Route: <sip:127.0.0.2:5090;lr>"]


def a_req(method, cseq, branch, cid="call-1@192.0.2.10", tag="a1", ruri="$M", body="", extra=()):
    lines = [
        "%s %s SIP/2.0" % (method, ruri),
        "Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=%s" % branch,
        "Max-Forwards: 70",
        "From: \"Carol\" <sip:carol@example.test>;tag=%s" % tag,
        "To: <sip:bob@example.test>;tag=$t",
        "Call-ID: %s" % cid,
        "CSeq: %d %s" % (cseq, method),
    ] + list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    return msg(lines, body)


# 1. A basic call: INVITE, 180, 200, ACK, BYE, 200.
call = [
    (ALICE, 1, invite()),
    (CALLEE, 5, resp(180, "Ringing", extra=CALLEE_EXTRA)),
    (CALLEE, 0x45, resp(200, "OK", extra=CALLEE_EXTRA, body=ANSWER)),
    (ALICE, 3, a_req("ACK", 1, "z9hG4bKack1")),
    (ALICE, 0x8a, a_req("BYE", 2, "z9hG4bKbye1")),
    (CALLEE, 2, resp(200, "OK", totag=None)),
]
seed("call-invite-ack-bye", EXEMPT, call)
seed("call-invite-ack-bye-default-admission", DEFAULT, call)
seed("call-invite-ack-bye-examples", EXEMPT | EXAMPLES, call)

# 2. The callee hangs up; re-INVITE from the caller first.
seed("call-reinvite-then-callee-bye", EXEMPT, call[:4] + [
    (ALICE, 0x50, a_req("INVITE", 2, "z9hG4bKreinv", body=OFFER.replace("1 1 IN", "1 2 IN"))),
    (CALLEE, 3, resp(200, "OK", totag=None, extra=CALLEE_EXTRA, body=ANSWER)),
    (ALICE, 3, a_req("ACK", 2, "z9hG4bKack2")),
    (CALLEE, 0x90, msg([
        "BYE sip:127.0.0.20:5060 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.2:5090;branch=z9hG4bKcalleebye",
        "Max-Forwards: 70",
        "From: $T",
        "To: $F",
        "Call-ID: $C",
        "CSeq: 1 BYE",
    ])),
    (ALICE, 2, resp(200, "OK", totag=None)),
])

# 3. CANCEL while ringing: 200 to CANCEL, 487 to the INVITE, ACK.
seed("call-cancel", EXEMPT, [
    (ALICE, 1, invite()),
    (CALLEE, 5, resp(180, "Ringing", extra=CALLEE_EXTRA)),
    (ALICE, 0x60, msg([
        "CANCEL sip:bob@127.0.0.10 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKinv1",
        "Max-Forwards: 70",
        "From: \"Carol\" <sip:carol@example.test>;tag=a1",
        "To: <sip:bob@example.test>",
        "Call-ID: call-1@192.0.2.10",
        "CSeq: 1 CANCEL",
    ])),
    (CALLEE, 2, resp(200, "OK", totag="b1")),
    (CALLEE, 2, resp(487, "Request Terminated", cseq="$n INVITE")),
    (ALICE, 2, msg([
        "ACK sip:bob@127.0.0.10 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKinv1",
        "Max-Forwards: 70",
        "From: \"Carol\" <sip:carol@example.test>;tag=a1",
        "To: <sip:bob@example.test>;tag=$t",
        "Call-ID: call-1@192.0.2.10",
        "CSeq: 1 ACK",
    ])),
])

# 4. A busy callee, and a callee that never answers (timer B, ring timeout).
seed("call-busy", EXEMPT, [
    (ALICE, 1, invite()),
    (CALLEE, 5, resp(486, "Busy Here")),
    (ALICE, 3, a_req("ACK", 1, "z9hG4bKinv1", ruri="sip:bob@127.0.0.10")),
])
seed("call-ringing-times-out", EXEMPT, [
    (ALICE, 1, invite()),
    (CALLEE, 5, resp(180, "Ringing", extra=CALLEE_EXTRA)),
    (ALICE, 0xff, b""),
    (ALICE, 0xff, b""),
])


def register(cseq, branch, auth=None, contact="<sip:alice@192.0.2.10:5060>", expires=3600,
             via="SIP/2.0/UDP 192.0.2.10:5060;rport", user="alice"):
    lines = [
        "REGISTER sip:example.test SIP/2.0",
        "Via: %s;branch=%s" % (via, branch),
        "Max-Forwards: 70",
        "From: <sip:%s@example.test>;tag=r1" % user,
        "To: <sip:%s@example.test>" % user,
        "Call-ID: reg-1@192.0.2.10",
        "CSeq: %d REGISTER" % cseq,
        "Contact: %s" % contact,
        "Expires: %d" % expires,
    ]
    if auth:
        lines.append("Authorization: %s" % auth)
    return msg(lines)


# 5. REGISTER: challenged, then with credentials; a call from core to alice.
reg = [
    (ALICE, 1, register(1, "z9hG4bKreg1")),
    (ALICE, 5, register(2, "z9hG4bKreg2", auth="$A")),
]
seed("register-without-authorization", EXEMPT, reg[:1])
seed("register-with-authorization", EXEMPT, reg)
seed("register-then-call-from-core", EXEMPT | KEEPALIVE, reg + [
    (CALLEE, 5, msg([
        "INVITE sip:alice@127.0.0.20 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.2:5090;branch=z9hG4bKcore1",
        "Max-Forwards: 70",
        "From: <sip:+4930555@core.example>;tag=c1",
        "To: <sip:alice@example.test>",
        "Call-ID: core-call-1",
        "CSeq: 10 INVITE",
        "Contact: <sip:pbx@127.0.0.2:5090>",
        "P-Asserted-Identity: <sip:+4930555@core.example>",
        "Content-Type: application/sdp",
    ], ANSWER)),
    (ALICE, 5, resp(180, "Ringing", totag="al1", extra=["Contact: <sip:alice@192.0.2.10:5060>"])),
    (ALICE, 0x50, resp(200, "OK", totag="al1", extra=["Contact: <sip:alice@192.0.2.10:5060>"], body=OFFER)),
    (CALLEE, 2, msg([
        "ACK $M SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.2:5090;branch=z9hG4bKcoreack",
        "Max-Forwards: 70",
        "From: <sip:+4930555@core.example>;tag=c1",
        "To: <sip:alice@example.test>;tag=$t",
        "Call-ID: core-call-1",
        "CSeq: 10 ACK",
    ])),
    (ALICE, 0xd0, msg([
        "BYE sip:127.0.0.10:5060 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKalicebye",
        "Max-Forwards: 70",
        "From: $T",
        "To: $F",
        "Call-ID: $C",
        "CSeq: 1 BYE",
    ])),
    (CALLEE, 2, resp(200, "OK", totag=None)),
])
seed("register-bad-credentials-default-admission", DEFAULT, [
    (PHONE, 1, register(i + 1, "z9hG4bKbad%d" % i,
                        auth='Digest username="alice", realm="example.test", nonce="x", '
                             'uri="sip:example.test", response="00000000000000000000000000000000"'))
    for i in range(12)
])
seed("register-unregister-star", EXEMPT, reg + [
    (ALICE, 5, register(3, "z9hG4bKreg3", auth="$A", contact="*", expires=0)),
])
seed("register-ipv6-tcp", EXEMPT, [
    (V6, 1, register(1, "z9hG4bKv6", via="SIP/2.0/UDP [2001:db8::10]:5062;rport",
                     contact="<sip:alice@[2001:db8::10]:5062>")),
    (V6, 5, register(2, "z9hG4bKv6b", via="SIP/2.0/UDP [2001:db8::10]:5062;rport",
                     contact="<sip:alice@[2001:db8::10]:5062>", auth="$A")),
    (TCP, 5, register(1, "z9hG4bKtcp", via="SIP/2.0/TCP 203.0.113.5:5070",
                      contact="<sip:alice@203.0.113.5:5070;transport=tcp>")),
])

# 6. A call claiming the subscriber: 407, ACK, INVITE with Proxy-Authorization.
seed("invite-claiming-subscriber-authenticates", EXEMPT, [
    (ALICE, 1, invite(frm="alice")),
    (ALICE, 2, msg([
        "ACK sip:bob@127.0.0.10 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKinv1",
        "Max-Forwards: 70",
        "From: \"Carol\" <sip:alice@example.test>;tag=a1",
        "To: <sip:bob@example.test>;tag=$t",
        "Call-ID: call-1@192.0.2.10",
        "CSeq: 1 ACK",
    ])),
    (ALICE, 2, invite(frm="alice", branch="z9hG4bKinv2", cseq=2,
                      extra=["Proxy-Authorization: $A"])),
    (CALLEE, 5, resp(200, "OK", extra=CALLEE_EXTRA, body=ANSWER)),
])

# 7. Out-of-dialog requests: OPTIONS to sipveil, MESSAGE relayed, unknown method.
seed("out-of-dialog-requests", EXEMPT, [
    (ALICE, 1, msg([
        "OPTIONS sip:127.0.0.10:5060 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKopt",
        "Max-Forwards: 70",
        "From: <sip:carol@example.test>;tag=o1",
        "To: <sip:127.0.0.10>",
        "Call-ID: opt-1",
        "CSeq: 1 OPTIONS",
    ])),
    (PARTNER, 1, msg([
        "MESSAGE sip:bob@127.0.0.10 SIP/2.0",
        "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKmsg",
        "Max-Forwards: 70",
        "From: <sip:partner@198.51.100.7>;tag=m1",
        "To: <sip:bob@example.test>",
        "Call-ID: msg-1",
        "CSeq: 1 MESSAGE",
        "Content-Type: text/plain",
    ], "hello")),
    (CALLEE, 3, resp(200, "OK", totag="bm")),
    (PHONE, 1, msg([
        "FOO sip:bob@127.0.0.10 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKfoo",
        "Max-Forwards: 70",
        "From: <sip:dave@example.test>;tag=f1",
        "To: <sip:bob@example.test>",
        "Call-ID: foo-1",
        "CSeq: 1 FOO",
    ])),
    (OUTSIDER, 1, invite(via="SIP/2.0/UDP 172.16.0.9:5060", cid="outsider")),
    (CORE_TCP, 1, msg([
        "SIP/2.0 200 OK",
        "Via: SIP/2.0/TCP 127.0.0.20:5060;branch=z9hG4bKstray",
        "From: <sip:x@example.test>;tag=s1",
        "To: <sip:y@example.test>;tag=s2",
        "Call-ID: stray-1",
        "CSeq: 1 INVITE",
    ])),
])

# 8. Policies: number rewriting and *98 from the partner network, a scanner.
seed("examples-policy-numbers-and-partner", EXEMPT | EXAMPLES, [
    (PARTNER, 1, invite(user="0409876", frm="0301234", via="SIP/2.0/UDP 198.51.100.7:5060",
                        extra=["X-Account-Code: 4711", "Require: sec-agree"])),
    (CALLEE, 5, resp(183, "Session Progress", extra=CALLEE_EXTRA + ["Require: 100rel", "RSeq: 1"],
                     body=ANSWER)),
    (PARTNER, 1, invite(user="*98", cid="vm-1", branch="z9hG4bKvm",
                        via="SIP/2.0/UDP 198.51.100.7:5060")),
    (CALLEE, 5, resp(503, "Service Unavailable", extra=["Warning: 399 10.1.1.1 \"internal\""])),
])
seed("scanner-and-retransmissions-default-admission", DEFAULT, [
    (PHONE, 1, msg([
        "OPTIONS sip:100@127.0.0.10 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKscan",
        "Max-Forwards: 70",
        "From: \"sipvicious\" <sip:100@1.1.1.1>;tag=x",
        "To: <sip:100@1.1.1.1>",
        "Call-ID: scan-1",
        "CSeq: 1 OPTIONS",
        "User-Agent: friendly-scanner",
    ])),
    (ALICE | 0x10, 1, invite()),
    (CALLEE | 0x10, 5, resp(180, "Ringing", extra=CALLEE_EXTRA)),
])
# 9. sipveil's own B-leg INVITE looped back into it from the core side.
seed("own-output-looped-back", EXEMPT, [
    (ALICE, 1, invite()),
    (CALLEE | 0x20, 1, bytes([CALLEE])),
    (ALICE | 0x20, 1, bytes([ALICE])),
])

# 10. Every valid fixture (under 8 KiB) from a phone and from the core; the
# invalid ones in one input, from several peers.
fixtures = "fixtures/sip/valid"
for name in sorted(os.listdir(fixtures)):
    data = open(os.path.join(fixtures, name), "rb").read()
    if len(data) > 8192:
        continue
    base = name.rsplit(".", 1)[0]
    seed("fixture-" + base, EXEMPT, [(ALICE, 1, data), (CALLEE, 1, data)])
inv = "fixtures/sip/invalid"
records = []
for i, name in enumerate(sorted(os.listdir(inv))):
    data = open(os.path.join(inv, name), "rb").read()
    if len(data) > 8192:
        continue
    records.append(((ALICE, CALLEE, PHONE, CORE_TCP)[i % 4], 1, data))
seed("fixtures-invalid-a", DEFAULT, records[:24])
seed("fixtures-invalid-b", EXEMPT, records[24:48])
