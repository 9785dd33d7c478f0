#!/usr/bin/python3
# arc_check.py - dkimpy's side of test_arc: an independent DKIM and ARC
# implementation that checks outpost's signatures and seals, and makes
# signatures and ARC sets for outpost to verify.
#
#   arc_check.py KEYS probe /dev/null         -> "dkim authres ok"
#   arc_check.py KEYS verify MSG              -> "dkim pass|fail"
#   arc_check.py KEYS arc MSG                 -> "arc CV; comment"
#   arc_check.py KEYS sign MSG OUT SEL DOM PEM ALG CANON
#   arc_check.py KEYS seal MSG OUT SEL DOM PEM SRVID TIME
#
# KEYS is a file of "NAME TXT" lines (NAME = sel._domainkey.dom): the only
# DNS dkimpy sees. Needs python3-dkim, and python3-authres for seal.
import sys

import dkim


def load_keys(path):
    keys = {}
    with open(path, 'rb') as f:
        for line in f:
            name, _, txt = line.rstrip(b'\n').partition(b' ')
            keys[name.lower()] = txt
    return keys


def main():
    keys = load_keys(sys.argv[1])

    def dnsfunc(name, timeout=5):
        if isinstance(name, str):
            name = name.encode()
        return keys.get(name.rstrip(b'.').lower())

    cmd, msg = sys.argv[2], open(sys.argv[3], 'rb').read()
    if cmd == 'probe':
        import authres  # dkim.arc_sign needs it
        print('dkim', authres.__name__, 'ok')
    elif cmd == 'verify':
        print('dkim', 'pass' if dkim.verify(msg, dnsfunc=dnsfunc) else 'fail')
    elif cmd == 'arc':
        cv, _, comment = dkim.arc_verify(msg, dnsfunc=dnsfunc)
        print('arc', cv.decode() if cv else 'None', ';', comment)
    elif cmd == 'sign':
        out, sel, dom, pem, alg, canon = sys.argv[4:10]
        c = canon.encode().split(b'/')
        sig = dkim.sign(msg, sel.encode(), dom.encode(), open(pem, 'rb').read(),
                        signature_algorithm=alg.encode(), canonicalize=(c[0], c[1]))
        open(out, 'wb').write(sig + msg)
        print('signed')
    elif cmd == 'seal':
        out, sel, dom, pem, srvid, t = sys.argv[4:10]
        sets = dkim.arc_sign(msg, sel.encode(), dom.encode(), open(pem, 'rb').read(),
                             srvid.encode(), timestamp=int(t))
        if not sets:
            print('not sealed')
            return 1
        open(out, 'wb').write(b''.join(sets) + msg)
        print('sealed')
    else:
        print('unknown command', cmd)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
