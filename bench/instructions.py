"""Instructions a packet in each gateway's worker, from callgrind profiles of the same harness
(`COUNT=instructions bench/compare_secgw.sh`). Usage: instructions.py DIR SIZE NAME=FILE...

Packets are the calls into libIPSec_MB's busiest function: one AES-GCM operation a packet in
either gateway. The parts: that AES-GCM routine ("aes-gcm"), the vdev PMDs (net_pcap, net_null),
and the rest ("gateway"): the gateway's own code, with its libraries (for ipsec-secgw
librte_ipsec, librte_acl, the crypto PMD and ipsec-mb's job manager)."""
import collections
import re
import subprocess
import sys


def calls(path):
    """Call counts by (called object, called function), from the profile's call lines."""
    names = {'ob': {}, 'fn': {}}
    ob = cob = cfn = None
    out = collections.Counter()
    for line in open(path):
        m = re.match(r'^(c?)(ob|fn)=\((\d+)\)(?: (.*))?$', line.rstrip('\n'))
        if m:
            table = names[m.group(2)]
            if m.group(4):
                table[m.group(3)] = m.group(4)
            name = table.get(m.group(3))
            if m.group(2) == 'ob':
                ob, cob = (name, cob) if m.group(1) == '' else (ob, name)
            elif m.group(1) == 'c':
                cfn = name
            continue
        m = re.match(r'^calls=(\d+)', line)
        if m:
            out[(cob or ob or '', cfn)] += int(m.group(1))
            cob = None
    return out


def parts(path):
    """(packets, {part: instructions a packet}) of one profile."""
    text = subprocess.run(['callgrind_annotate', '--inclusive=no', path],
                          capture_output=True, text=True, check=True).stdout
    by_obj, mb_fn = collections.Counter(), collections.Counter()
    for line in text.splitlines():
        m = re.match(r'\s*([\d,]+) \(\s*[\d.]+%\)\s+\S+?:(.*?)(?: \[(.*)\])?$', line)
        if m:
            n = int(m.group(1).replace(',', ''))
            obj = (m.group(3) or '').split('/')[-1]
            by_obj[obj] += n
            if 'IPSec_MB' in obj:
                mb_fn[m.group(2).strip()] += n
    if not mb_fn:
        raise SystemExit(f'{path}: no ipsec-mb work recorded')
    gcm, gcm_ir = mb_fn.most_common(1)[0]
    packets = sum(v for (o, f), v in calls(path).items() if 'IPSec_MB' in o and f == gcm)
    if packets == 0:
        raise SystemExit(f'{path}: no calls into {gcm}')
    pmds = sum(v for o, v in by_obj.items() if 'net_pcap' in o or 'net_null' in o)
    total = sum(by_obj.values())
    return packets, {'total': total / packets, 'aes-gcm': gcm_ir / packets, 'PMDs': pmds / packets,
                     'gateway': (total - gcm_ir - pmds) / packets}


def main():
    d, size, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    gw = {}
    for run in runs:
        name, path = run.split('=', 1)
        packets, p = parts(path)
        gw[name] = p['gateway']
        print('%-8s %-6s %-12s %9d %8.0f %8.0f %8.0f %8.0f' % (
            d, size, name, packets, p['total'], p['aes-gcm'], p['PMDs'], p['gateway']))
    if len(gw) == 2:
        (a, x), (b, y) = gw.items()
        print('%-8s %-6s gateway code, %s / %s: %.2f' % (d, size, b, a, y / x))


main()
