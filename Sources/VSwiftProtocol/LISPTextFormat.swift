// show-lisp and dump-map-cache as text, indented as `show` is. OVS has no such commands.

/// `vswiftctl show-lisp`: the control socket, then map-servers, map-resolvers, local EIDs,
/// static map-cache entries and the message counters. Keys are never in the report.
public func formatShowLISP(_ report: ShowLISPReport) -> String {
    formatLISPControl(report, indent: "")
}

/// The LISP section: `show-lisp` prints it at the left margin, `show` under the system id, as
/// a bridge is. Lines the report leaves empty (counters, which `show` leaves out) print nothing.
func formatLISPControl(_ report: ShowLISPReport, indent: String) -> String {
    let item = indent + "    ", detail = indent + "        "
    var out = indent + "LISP control: "
    if let port = report.controlPort {
        out += "udp port \(port), IPv4 and IPv6\n"
    } else if let error = report.controlError {
        out += "not listening: \(error)\n"
    } else {
        out += "off (nothing configured)\n"
    }
    for server in report.mapServers {
        out += item + "Map-Server \(server.address)\n"
        out += detail + "key id: \(server.keyID), algorithm: \(server.algorithm) (\(server.algorithmID))\n"
        if let state = server.state {
            var line = detail + "state: \(state)"
            if let age = server.lastNotifyAge { line += " (last Map-Notify \(Int(age.rounded(.down)))s ago)" }
            out += line + ", registers sent \(server.registersSent), notifies accepted \(server.notifiesAccepted)\n"
        }
    }
    for resolver in report.mapResolvers {
        out += item + "Map-Resolver \(resolver)\n"
    }
    for eid in report.localEIDs {
        out += item + "EID [\(eid.instanceID)] \(eid.prefix)\n"
        if eid.defaultRLOCs && eid.rlocs.isEmpty {
            out += detail + "rloc: none yet (the host's address toward a map-server: no route found)\n"
        }
        for rloc in eid.rlocs {
            out += detail + "rloc \(rloc.address) priority \(rloc.priority) weight \(rloc.weight)"
            out += eid.defaultRLOCs ? " (the host's address toward a map-server)\n" : "\n"
        }
    }
    for entry in report.staticMapCache {
        out += item + "Map-Cache [\(entry.instanceID)] \(entry.prefix) (static)\n"
        for rloc in entry.rlocs {
            out += detail + "rloc \(rloc.address) priority \(rloc.priority) weight \(rloc.weight)\n"
        }
    }
    if let count = report.staticMapCacheCount, count > 0 {
        out += item + "Map-Cache: \(count) static \(count == 1 ? "entry" : "entries") (show-lisp lists them)\n"
    }
    func counters(_ name: String, _ values: [String: UInt64]) {
        guard !values.isEmpty else { return }
        out += item + "\(name): " + values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
    }
    counters("sent", report.sent)
    counters("received", report.received)
    counters("refused", report.refused)
    counters("socket", report.socket)
    return out
}

/// `vswiftctl dump-map-cache`: one line per entry (instance id, EID prefix, source, TTL left,
/// idle time), then one per RLOC with its priority, weight and status.
public func formatDumpMapCache(_ report: DumpMapCacheReport) -> String {
    var out = ""
    for entry in report.entries {
        var line = "[\(entry.instanceID)] \(entry.eidPrefix) \(entry.source)"
        if let action = entry.action { line += " negative \(action)" }
        if let left = entry.ttlLeft {
            line += " ttl \(left)s left of \(entry.ttlMinutes)m"
        } else {
            line += " ttl never"
        }
        line += " idle \(entry.idle)s"
        if entry.refreshAttempts > 0 { line += " refreshing (\(entry.refreshAttempts) requests)" }
        out += line + "\n"
        for rloc in entry.rlocs {
            out += "    rloc \(rloc.address) priority \(rloc.priority) weight \(rloc.weight) \(rloc.status)\n"
        }
    }
    return out
}
