// show-lisp and dump-map-cache as text, indented as `show` is. OVS has no such commands.

/// `vswiftctl show-lisp`: the control socket, then map-servers, map-resolvers, local EIDs,
/// static map-cache entries and the message counters. Keys are never in the report.
public func formatShowLISP(_ report: ShowLISPReport) -> String {
    var out = "LISP control: "
    if let port = report.controlPort {
        out += "udp port \(port), IPv4 and IPv6\n"
    } else if let error = report.controlError {
        out += "not listening: \(error)\n"
    } else {
        out += "off (nothing configured)\n"
    }
    for server in report.mapServers {
        out += "    Map-Server \(server.address)\n"
        out += "        key id: \(server.keyID) (\(server.keyID == 1 ? "hmac-sha-1-96" : "hmac-sha-256-128"))\n"
        if let state = server.state {
            var line = "        state: \(state)"
            if let age = server.lastNotifyAge { line += " (last Map-Notify \(Int(age.rounded(.down)))s ago)" }
            out += line + ", registers sent \(server.registersSent), notifies accepted \(server.notifiesAccepted)\n"
        }
    }
    for resolver in report.mapResolvers {
        out += "    Map-Resolver \(resolver)\n"
    }
    for eid in report.localEIDs {
        out += "    EID [\(eid.instanceID)] \(eid.prefix)\n"
        if eid.defaultRLOCs && eid.rlocs.isEmpty {
            out += "        rloc: none yet (the host's address toward a map-server: no route found)\n"
        }
        for rloc in eid.rlocs {
            out += "        rloc \(rloc.address) priority \(rloc.priority) weight \(rloc.weight)"
            out += eid.defaultRLOCs ? " (the host's address toward a map-server)\n" : "\n"
        }
    }
    for entry in report.staticMapCache {
        out += "    Map-Cache [\(entry.instanceID)] \(entry.prefix) (static)\n"
        for rloc in entry.rlocs {
            out += "        rloc \(rloc.address) priority \(rloc.priority) weight \(rloc.weight)\n"
        }
    }
    func counters(_ name: String, _ values: [String: UInt64]) {
        guard !values.isEmpty else { return }
        out += "    \(name): " + values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n"
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
