#!/usr/bin/env python3
"""Groups a perf profile's self time by what each function belongs to (HTTP/2, the
kernel's TCP, the allocator, sled, ...): the stage tables of docs/benchmarks.md.

Usage:
    perf record -F 1999 -g -p "$(pgrep -f 'larder dev')" -o perf.data -- sleep 6
    perf report -i perf.data --no-children --stdio --sort dso,sym -g none \
        | grep -v '^#' | grep % > symbols.txt
    deploy/bench/perf-stages.py symbols.txt
"""
import re,sys,collections
def cat(dso, sym):
    s=sym
    if dso.startswith('[kernel'):
        if re.search(r'tcp|inet|ip_|sock|skb|net_|netif|loopback|__dev_|napi|sk_|dst_|raw_v|nf_|release_sock|lock_sock', s): return 'kernel: network (loopback TCP)'
        if re.search(r'ext4|blk|fdatasync|filemap|folio|jbd2|bio|iomap|writeback|page_cache|copy_folio|virtio|iowrite|vp_notify|mpage|block_', s): return 'kernel: file and disk'
        if re.search(r'sched|futex|switch|wake|schedule|enqueue|dequeue|pick_next|update_curr|select_task|ttwu|raw_spin|hrtimer|psi_|cpuacct|rcu|idle|__schedule', s): return 'kernel: scheduling and wake-ups'
        if re.search(r'epoll|ep_|poll', s): return 'kernel: epoll'
        return 'kernel: syscall entry and other'
    if re.search(r'malloc|free|_int_|unlink_chunk|consolidate|tcache|arena|cfree|realloc|calloc', s): return 'allocator (malloc/free)'
    if re.search(r'memmove|memcpy|memset|memcmp', s): return 'memcpy/memset/memcmp'
    if 'h2::' in s or 'hyper' in s or 'http::' in s or 'httparse' in s or 'hpack' in s: return 'HTTP/2 (h2, hyper)'
    if 'tonic' in s or 'tower' in s or 'Server<T> as tower_service' in s: return 'gRPC (tonic, tower)'
    if 'prost' in s or 'larder_proto' in s: return 'protobuf (prost, generated)'
    if 'sled::' in s or 'crossbeam' in s or 'parking_lot' in s: return 'sled'
    if 'larder_store' in s or 'crc32' in s: return 'larder store seam (log, flusher)'
    if 'serde' in s or 'postcard' in s: return 'serde/postcard (records)'
    if 'tokio' in s or 'mio::' in s: return 'tokio runtime'
    if 'larder' in s: return 'larder (our code)'
    if dso.startswith('libc'): return 'libc other (syscall wrappers, pthread)'
    return 'other'
tot=collections.Counter()
for line in open(sys.argv[1]):
    m=re.match(r'\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)',line)
    if not m: continue
    tot[cat(m.group(2),m.group(3))]+=float(m.group(1))
for k,v in tot.most_common(): print(f'| {k} | {v:.1f} % |')
