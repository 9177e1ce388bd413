# The client the VM guests keep connected to a server across its migration
# (guest-redis.sh, guest-container-client.sh): connects (retrying while the
# server is not there yet), says DIR/client.ready once its first request is
# answered, sends one every 10 ms until DIR/client.stop appears, and writes
# DIR/client.result: PASS with the count and the longest wait, or FAIL with
# what went wrong. MODE redis: SET k, PINGs, then EXISTS k; MODE echo:
# lines that must come back as sent.
#
#   python3 guest-client.py redis|echo DIR ADDR PORT
import os, socket, sys, time

mode, d, addr, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for i in range(1200):
    try:
        s = socket.socket(); s.connect((addr, port)); break
    except OSError:
        s.close(); time.sleep(0.1)
s.settimeout(60)


def ask(cmd):
    s.sendall(cmd); data = b''
    while not data.endswith(b'\r\n'):
        chunk = s.recv(4096)
        if not chunk: raise EOFError('the connection was closed')
        data += chunk
    return data


def echo(line):
    s.sendall(line); data = b''
    while len(data) < len(line):
        chunk = s.recv(4096)
        if not chunk: raise EOFError('the connection was closed')
        data += chunk
    if data != line: raise ValueError('sent %r, got %r' % (line, data))


def first():
    if mode == 'redis':
        r = ask(b'SET k before\r\n')
        if r != b'+OK\r\n': raise ValueError(r)
    else:
        echo(b'first\n')


def request(n):
    if mode == 'redis':
        r = ask(b'PING\r\n')
        if r != b'+PONG\r\n': raise ValueError(r)
    else:
        echo(b'line %d\n' % n)


n, worst = 0, 0.0
try:
    first()
    open(d + '/client.ready', 'w').close()
    while not os.path.exists(d + '/client.stop'):
        t = time.monotonic(); request(n)
        worst = max(worst, time.monotonic() - t); n += 1; time.sleep(0.01)
    res = 'PASS %d requests answered, the longest wait %.3f s' % (n, worst)
    if mode == 'redis': res += '; EXISTS k %r' % ask(b'EXISTS k\r\n')
except Exception as e:
    res = 'FAIL after %d requests: %r' % (n, e)
open(d + '/client.tmp', 'w').write(res)
os.rename(d + '/client.tmp', d + '/client.result')  # whole, never seen half-written
