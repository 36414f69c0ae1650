// Text output in the formats of the OVS tools, so that people (and scripts) used to OVS can read it.
// Where vswift knows more than OVS shows, it adds lines but leaves OVS's own lines unchanged.

/// `ovs-vsctl show`, plus a `datapath:` line per interface telling how the datapath drives it,
/// and the LISP control configuration when there is one.
public func formatShow(_ report: ShowReport) -> String {
    var out = report.systemID + "\n"
    for bridge in report.bridges {
        out += "    Bridge \(quoted(bridge.name))\n"
        for port in bridge.ports {
            out += "        Port \(quoted(port.name))\n"
            out += "            Interface \(quoted(port.name))\n"
            if !port.type.isEmpty {
                out += "                type: \(port.type)\n"
            }
            if !port.options.isEmpty {
                let options = port.options.sorted { $0.key < $1.key }.map { "\($0.key)=\(quoted($0.value))" }
                out += "                options: {\(options.joined(separator: ", "))}\n"
            }
            if let error = port.error {
                out += "                error: \(quoted(error))\n"
            }
            if !port.datapathMode.isEmpty {
                out += "                datapath: \(port.datapathMode)\n"
            }
        }
    }
    for underlay in report.underlays {
        out += "    Underlay \(quoted(underlay.name))\n"
        if let error = underlay.error {
            out += "        error: \(quoted(error))\n"
        }
        if !underlay.datapathMode.isEmpty {
            out += "        datapath: \(underlay.datapathMode)\n"
        }
    }
    if let lisp = report.lisp { out += formatLISPControl(lisp, indent: "    ") }
    return out
}

/// `ovs-ofctl dump-ports`, plus an `xsk` line with the AF_XDP socket statistics where a port has them.
public func formatDumpPorts(_ report: DumpPortsReport) -> String {
    var out = "OFPST_PORT reply (xid=0x2): \(report.ports.count) ports\n"
    // OVS indents the continuation lines by a fixed 11 spaces, whatever the port number's width.
    let continuation = String(repeating: " ", count: 11)
    for entry in report.ports {
        let stats = entry.statistics
        out += "  port \(portLabel(entry.ofport)): rx pkts=\(stats.rxPackets), bytes=\(stats.rxBytes), "
        out += "drop=\(stats.rxDropped), errs=\(stats.rxErrors), frame=0, over=0, crc=0\n"
        out += continuation + "tx pkts=\(stats.txPackets), bytes=\(stats.txBytes), "
        out += "drop=\(stats.txDropped), errs=\(stats.txErrors), coll=0\n"
        if let xsk = stats.xsk {
            out += continuation + "xsk rx_dropped=\(xsk.rxDropped), rx_ring_full=\(xsk.rxRingFull), "
            out += "rx_fill_empty=\(xsk.rxFillRingEmptyDescs), rx_invalid=\(xsk.rxInvalidDescs), "
            out += "tx_invalid=\(xsk.txInvalidDescs), tx_ring_empty=\(xsk.txRingEmptyDescs)\n"
        }
        if let lisp = stats.tunnel {
            out += continuation + "lisp encap=\(lisp.encapsulated), decap=\(lisp.decapsulated), "
            // One list of reasons (TunnelStatisticsReasons.swift) for this line and the metrics.
            out += "drop "
            for (reason, counter) in TunnelStatisticsReport.dropReasons {
                out += "\(reason)=\(lisp[keyPath: counter]), "
            }
            out += "not_decapsulated"
            for (reason, counter) in TunnelStatisticsReport.notDecapsulatedReasons {
                out += " \(reason)=\(lisp[keyPath: counter])"
            }
            out += "\n"
            if let pathMTU = lisp.pathMTU { out += continuation + formatPathMTULine(pathMTU) }
        }
        if let xdp = stats.xdp { out += continuation + formatXDPPathLine(xdp) }
    }
    return out
}

/// `ovs-ofctl dump-flows`: a header line, then one line per flow, e.g.
///
///      cookie=0x0, duration=1615.828s, table=0, n_packets=195, n_bytes=19110, idle_age=1378, priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:1
///
/// Timeouts, when set, come before `idle_age` and `hard_age` after it (when the flow was modified
/// after it was installed), as OVS prints them; the priority is left out when it is the default.
public func formatDumpFlows(_ report: DumpFlowsReport) -> String {
    var out = "NXST_FLOW reply (xid=0x4):\n"
    for flow in report.flows {
        out += formatFlowLine(flow)
        out += "\n"
    }
    return out
}

/// One line of `formatDumpFlows`, without its newline.
public func formatFlowLine(_ flow: FlowStatisticsEntry) -> String {
    var line = " cookie=0x\(String(flow.cookie, radix: 16)), duration=\(formatDuration(flow.duration))s, table=\(flow.table), "
    line += "n_packets=\(flow.packets), n_bytes=\(flow.bytes), "
    if flow.idleTimeout != 0 { line += "idle_timeout=\(flow.idleTimeout), " }
    if flow.hardTimeout != 0 { line += "hard_timeout=\(flow.hardTimeout), " }
    line += "idle_age=\(flow.idleAge), "
    if let hardAge = flow.hardAge, hardAge != UInt64(max(0, flow.duration)) { line += "hard_age=\(hardAge), " }
    var match = flow.priority == 32768 ? "" : "priority=\(flow.priority)"
    if !flow.match.isEmpty { match += match.isEmpty ? flow.match : "," + flow.match }
    // OVS puts a space between match and actions, but none after the ", " when the match is empty.
    if !match.isEmpty { line += match + " " }
    line += "actions=" + flow.actions
    return line
}

/// Seconds with exactly three decimals, as OVS prints durations: 1615.828.
func formatDuration(_ seconds: Double) -> String {
    let milliseconds = UInt64(max(0, seconds * 1000).rounded(.down))
    let fraction = String(milliseconds % 1000)
    return "\(milliseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
}

/// Pretty-printed JSON with sorted keys, for `--format json`.
public func formatJSON(_ value: JSONValue) -> String {
    String(decoding: value.jsonText(pretty: true), as: UTF8.self) + "\n"
}

/// "LOCAL" for the internal port, else the number right-aligned in two columns, as OVS prints them.
private func portLabel(_ ofport: UInt32) -> String {
    if ofport == ofportLocal { return "LOCAL" }
    let number = String(ofport)
    return String(repeating: " ", count: max(0, 2 - number.count)) + number
}

/// A double-quoted string with `"` and `\` escaped, as OVS quotes names and option values.
private func quoted(_ string: String) -> String {
    var out = "\""
    for character in string {
        if character == "\"" || character == "\\" { out.append("\\") }
        out.append(character)
    }
    return out + "\""
}

/// `dump-workers`, laid out like OVS's `pmd-stats-show`: per worker, packets and the share of its
/// accounted cycles (the time it did not sleep) spent processing, idling and in system calls.
public func formatDumpWorkers(_ workers: [WorkerReport]) -> String {
    var out = ""
    for w in workers {
        out += "worker \(w.worker)" + (w.cpu.map { " cpu \($0)" } ?? "") + ":\n"
        out += "  packets received: \(w.rxPackets)\n"
        out += "  packets sent: \(w.txPackets)\n"
        let total = Double(w.busyCycles) + Double(w.idleCycles) + Double(w.systemCallCycles)
        func share(_ cycles: UInt64) -> String {
            total == 0 ? "\(cycles)" : String(format: "%llu (%.2f%%)", cycles, 100 * Double(cycles) / total)
        }
        out += "  processing cycles: \(share(w.busyCycles))\n"
        out += "  idle cycles: \(share(w.idleCycles))\n"
        out += "  system call cycles: \(share(w.systemCallCycles))\n"
        out += "  rounds: \(w.rounds)\n"
        if let perPacket = w.busyCyclesPerPacket {
            out += String(format: "  avg processing cycles per packet: %.2f\n", perPacket)
        }
    }
    return out
}
