#!/usr/bin/env python3
"""A host-local client program for tests/sock_diag.rs: holds four TCP connections and
reports on stderr what happens to each, so that the test can end some of them from
outside (SOCK_DESTROY) and see the client's own view.

usage: sock_diag_client.py TARGET OTHER FLOW_PORT STALL_PORT SYN_PORT

  a  TARGET:FLOW_PORT   a transfer: the server keeps sending, counted ("received a N")
  b  TARGET:STALL_PORT  written to on SIGUSR1 (64 KiB), after the test blackholes it
  u  OTHER:STALL_PORT   the same, to an unrelated address
  c  TARGET:SYN_PORT    a nonblocking connect whose SYN the server drops

Lines: "ports a=.. b=.. c=.. u=..", "written b N", "error b ECONNABORTED",
"closed a", "received a N" (every 0.2 s).
"""
import errno
import select
import signal
import socket
import sys
import time

target, other = sys.argv[1], sys.argv[2]
flow_port, stall_port, syn_port = (int(p) for p in sys.argv[3:6])
write_now = False


def log(line):
    print(line, file=sys.stderr, flush=True)


def on_usr1(_signum, _frame):
    global write_now
    write_now = True


def errname(code):
    return errno.errorcode.get(code, str(code))


signal.signal(signal.SIGUSR1, on_usr1)
a = socket.create_connection((target, flow_port), timeout=10)
b = socket.create_connection((target, stall_port), timeout=10)
u = socket.create_connection((other, stall_port), timeout=10)
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
c.setblocking(False)
c.connect_ex((target, syn_port))
for s in (a, b, u):
    s.setblocking(False)
names = {a: "a", b: "b", u: "u", c: "c"}
log("ports " + " ".join(f"{names[s]}={s.getsockname()[1]}" for s in (a, b, c, u)))

open_ = {a, b, u, c}
received = 0
last_report = 0.0
while open_:
    if write_now:
        write_now = False
        for s in (b, u):
            log(f"written {names[s]} {s.send(b'x' * 65536)}")
    readable = [s for s in (a, b, u) if s in open_]
    writable = [c] if c in open_ else []
    ready, connected, _ = select.select(readable, writable, [], 0.05)
    for s in ready:
        try:
            data = s.recv(65536)
        except OSError as err:
            log(f"error {names[s]} {errname(err.errno)}")
            open_.discard(s)
            continue
        if not data:
            log(f"closed {names[s]}")
            open_.discard(s)
        elif s is a:
            received += len(data)
    for s in connected:
        code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        log(f"error c {errname(code)}" if code else "connected c")
        open_.discard(s)
    now = time.monotonic()
    if now - last_report >= 0.2:
        log(f"received a {received}")
        last_report = now
