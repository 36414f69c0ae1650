// Text of `vswiftctl dump-xdp-cache`, and the XDP path lines of `dump-ports` and `dump-workers`.

/// `dump-xdp-cache`: a header with the cache's size and statistics (refusals by reason, `full`
/// being the cache's; apart, `handover_ring_full`: misses the workers' rings to the installer had
/// no room for, and `forget_overflow`: keys the installer could not send back for a worker to
/// forget) and the path totals, then one
/// line per entry as `ovs-appctl dpctl/dump-flows` prints datapath flows, e.g.
///
///     in_port(1),eth(dst=52:54:00:00:00:02),eth_type(0x0800),ipv4(frag=no), packets:12, bytes:1176, used:0.532s, age:3.000s, actions:output:2
///
/// (`age` is vswift's: seconds since the entry was installed.) With the cache off, one line says so.
public func formatDumpXDPCache(_ report: XDPCacheReport) -> String {
    guard report.enabled else { return "xdp cache: off (vswiftd --xdp-cache on enables it)\n" }
    var out = "xdp cache: on, entries=\(report.entries)/\(report.capacity), masks=\(report.masks)/\(report.maxMasks), "
    out += "installed=\(report.installed), refused " + reasons(report.refused) + ", removed " + reasons(report.removed)
    out += ", handover_ring_full=\(report.handoverRingFull), forget_overflow=\(report.forgetOverflow)\n"
    out += "xdp path: " + formatXDPPath(report.totals) + "\n"
    for port in report.ports {
        if let problem = port.path.redirectProblem { out += "port \(port.name): not a redirect target: \(problem)\n" }
    }
    var bridge: String?
    for flow in report.flows {
        if flow.bridge != bridge {
            out += "bridge \(flow.bridge):\n"
            bridge = flow.bridge
        }
        out += "  " + formatXDPCacheFlowLine(flow) + "\n"
    }
    if report.truncated { out += "(more entries than the cache's capacity: the rest left out)\n" }
    return out
}

/// One entry, without indentation or newline.
public func formatXDPCacheFlowLine(_ flow: XDPCacheFlowEntry) -> String {
    var line = flow.match + ", packets:\(flow.packets), bytes:\(flow.bytes), used:"
    line += flow.used.map { formatDuration($0) + "s" } ?? "never"
    line += ", age:" + formatDuration(flow.age) + "s, actions:" + flow.actions
    return line
}

/// `hit=120, miss=5, punt=0, fail=0`: forwarded in XDP; sent to the workers (no entry; an entry XDP
/// could not do exactly); dropped in XDP (an action failed).
public func formatXDPPath(_ path: XDPPathReport) -> String {
    "hit=\(path.hits), miss=\(path.misses), punt=\(path.punted), fail=\(path.failed)"
}

/// The line `dump-ports` adds under a device port while the cache is on (without indentation).
public func formatXDPPathLine(_ path: XDPPathReport) -> String {
    "xdp_cache " + formatXDPPath(path) + (path.redirectProblem.map { ", not a redirect target: " + $0 } ?? "") + "\n"
}

/// What `dump-workers` adds after the workers: the packets the workers never saw, and what the
/// rings between them and the installer lost either way (`handover_ring_full`, `forget_overflow`).
public func formatXDPWorkerTotals(_ report: XDPCacheReport) -> String {
    guard report.enabled else { return "xdp cache: off\n" }
    let t = report.totals
    return """
        xdp cache (in the kernel, every device port):
          packets forwarded in XDP: \(t.hits)
          packets sent to the workers: \(t.misses &+ t.punted) (misses \(t.misses), punted \(t.punted))
          packets dropped in XDP: \(t.failed)
          misses not handed over (hand-over rings full): \(report.handoverRingFull)
          forgets not sent back (forget rings full): \(report.forgetOverflow)

        """
}

/// `(duplicate=2, full=0)`: by name; `()` when none.
private func reasons(_ counts: [String: UInt64]) -> String {
    "(" + counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")"
}
