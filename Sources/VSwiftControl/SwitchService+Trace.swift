import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftMapCache
import VSwiftPacket
import VSwiftProtocol

// The trace method: the frame from the request, the datapath's trace of it (Worker+Trace.swift),
// and its report in the switch's words (flows, port numbers, fields).
extension SwitchService {
    func trace(_ params: TraceParams) throws(RPCError) -> TraceReport {
        let index = try bridgeIndex(params.bridge)
        let match: Match
        do throws(FlowSyntaxError) {
            match = try parser(forBridge: index).parseMatch(params.flow).match
        } catch {
            throw RPCError(error, line: nil)
        }
        guard !match.isWildcarded(.inPort) else { throw .invalidParams("trace: the flow must give in_port") }
        let ofport = UInt32(truncatingIfNeeded: match.value(.inPort))
        guard let port = bridges[index].ports.first(where: { $0.ofport == ofport }) else {
            throw .noSuchPort("\(params.bridge) has no port \(ofport)")
        }
        let frame: [UInt8]
        if let hex = params.frame {
            var rest = match
            for field in [FlowField.inPort, .tunId, .tunSrc, .tunDst] { rest.mask.set(field, 0) }
            guard rest.mask == FlowKey() else {
                throw .invalidParams("trace: with a frame, the flow gives only in_port and tunnel fields")
            }
            guard let bytes = TraceFrame.bytes(hex: hex) else { throw .invalidParams("trace: the frame is not hex") }
            guard bytes.count >= 14 else { throw .invalidParams("trace: the frame is shorter than an Ethernet header") }
            guard bytes.count <= 65535 else { throw .invalidParams("trace: the frame is longer than 65535 bytes") }
            frame = bytes
        } else {
            frame = TraceFrame.build(from: match)
        }
        var tunnel: (id: UInt64, source: UInt32, destination: UInt32)?
        if !match.isWildcarded(.tunId) || !match.isWildcarded(.tunSrc) || !match.isWildcarded(.tunDst) {
            tunnel = (match.value(.tunId), UInt32(truncatingIfNeeded: match.value(.tunSrc)),
                      UInt32(truncatingIfNeeded: match.value(.tunDst)))
        }
        let result: DatapathTrace
        do throws(DatapathError) {
            result = try datapath.trace(bridge: params.bridge, inPort: port.name, frame: frame, tunnel: tunnel)
        } catch {
            throw RPCError(error)
        }
        return traceReport(result, bridge: params.bridge)
    }

    /// The datapath's trace in the switch's words.
    func traceReport(_ trace: DatapathTrace, bridge: String) -> TraceReport {
        var stages: [TraceReport.Stage] = []
        var finalOutputs: [String] = []
        var lastReason: String?
        let udpPorts = Set(bridges.flatMap(\.ports).compactMap { port -> UInt16? in
            guard port.type == "lisp" else { return nil }
            return UInt16(port.options["dst_port"] ?? "") ?? LISP.udpPort
        }).union([LISP.udpPort])
        for stage in trace.stages {
            let hit = stage.hits.first
            let rule = hit.flatMap { flowTables.flow(bridge: $0.bridge, counterSlot: $0.counterSlot) }
            // A LISP packet for a local RLOC that arrived on the underlay is decapsulated before
            // any lookup in the bridge it arrived in.
            let decapsulatedHere = stage.entry == .received && stage.hits.isEmpty
                && stage.events.contains { $0.counter == "decapsulated" }
            let lookup = decapsulatedHere ? "decapsulated" : stage.bridge == nil ? "none" : !stage.hasFlowTable ? "normal"
                : rule != nil ? "hit" : "miss"
            var normal: TraceReport.Normal?
            if let decision = stage.normal {
                normal = TraceReport.Normal(
                    destination: Self.mac(decision.destination),
                    decision: decision.isGroup ? "group" : decision.learnedPort != nil ? "learned" : "flood",
                    port: decision.learnedPort, floodPorts: decision.floodPorts)
            }
            let encapsulated = stage.events.contains { $0.counter == "encapsulated" }
            let encapsulatingPort = stage.events.first { $0.counter == "encapsulated" }?.port
            var outputs: [TraceReport.Output] = []
            for output in stage.outputs {
                var lisp: TraceReport.LISPHeaders?
                var compared = output.frame
                if encapsulated, let parsed = Self.lisp(output.frame, udpPorts: udpPorts) {
                    lisp = parsed.headers
                    lisp?.port = encapsulatingPort
                    lisp?.egress = output.port
                    compared = parsed.inner
                }
                var changes = Self.changes(from: stage.key, to: compared, stage: stage)
                if lisp != nil {
                    // The inner packet's Ethernet header is gone on the wire (decapsulation makes one up).
                    changes.removeAll { ["dl_src", "dl_dst", "vlan_tci", "vlan_outer_tci"].contains($0.field) }
                }
                outputs.append(TraceReport.Output(
                    port: output.port, ofport: output.ofport, bridge: output.bridge, bytes: output.frame.count,
                    changes: changes, lisp: lisp, frame: TraceFrame.hex(output.frame)))
                var name = output.port
                if let number = output.ofport { name += number == ofportLocal ? " (LOCAL)" : " (\(number))" }
                finalOutputs.append(name)
            }
            var lisp: TraceReport.LISPHeaders?
            switch stage.entry {
            case .decapsulated:
                if let first = trace.stages.first {
                    lisp = Self.lisp(first.frame, udpPorts: udpPorts)?.headers
                    lisp?.port = stage.lispPort
                }
            case .reentered:
                lisp = Self.lisp(stage.frame, udpPorts: udpPorts)?.headers
                lisp?.port = stage.lispPort
                lisp?.egress = stage.inPort
            case .received:
                break
            }
            var events = stage.events.map { "\($0.port): \($0.counter) +\($0.count)" }
            events += stage.mapCache.map(Self.mapCacheText)
            if stage.entry == .received && trace.truncatedInput {
                events.insert("input: cut to \(stage.frame.count) bytes (what a UMEM frame holds)", at: 0)
            }
            let result: String
            if !stage.outputs.isEmpty || stage.handoffs > 0 {
                var parts: [String] = []
                if !stage.outputs.isEmpty { parts.append("output to " + stage.outputs.map(\.port).joined(separator: ", ")) }
                if stage.handoffs > 0 { parts.append("handed on \(stage.handoffs) packet\(stage.handoffs == 1 ? "" : "s") (next stage)") }
                result = parts.joined(separator: "; ")
            } else {
                result = "dropped: " + Self.dropReason(stage, lookup: lookup, rule: rule)
                lastReason = Self.dropReason(stage, lookup: lookup, rule: rule)
            }
            stages.append(TraceReport.Stage(
                entry: stage.entry.rawValue, lispPort: stage.lispPort, bridge: stage.bridge, inPort: stage.inPort,
                inPortNumber: stage.inPortNumber, depth: stage.depth, flow: Self.flowText(stage.key),
                lookup: lookup,
                rule: rule.map { TraceReport.Rule(
                    priority: Int($0.priority), cookie: "0x" + String($0.cookie, radix: 16),
                    match: FlowFormatter.match($0.match, priority: FlowRule.defaultPriority),
                    actions: FlowFormatter.actions($0.actions)) },
                normal: normal, lisp: lisp, outputs: outputs, handedOn: stage.handoffs, events: events, result: result))
        }
        return TraceReport(bridge: bridge, stages: stages, outputs: finalOutputs,
                           dropReason: finalOutputs.isEmpty ? (lastReason ?? "no output") : nil,
                           stagesLeftOut: trace.stagesLeftOut)
    }

    /// A remote_ip=map lookup in words, e.g. "lisp0: map-cache [1000]10.1.0.0/16 for 10.1.2.3: RLOC 192.0.2.2".
    static func mapCacheText(_ outcome: DatapathTrace.MapCacheOutcome) -> String {
        let head = "\(outcome.port): map-cache"
        guard let prefix = outcome.prefix else {
            return "\(head) miss for [\(outcome.instanceID)]\(outcome.destination): no entry, a Map-Request is asked"
        }
        let what: String
        switch outcome.action {
        case .encapsulate: what = outcome.rloc.map { "RLOC \($0)" } ?? "RLOC ?"
        case .noUsableLocator: what = "no usable RLOC (all down or priority 255), a Map-Request is asked"
        case .miss: what = "miss"
        case .noAction: what = "negative entry, no-action: not encapsulated (dropped)"
        case .nativelyForward: what = "negative entry, natively-forward: a LISP port cannot (dropped)"
        case .sendMapRequest: what = "negative entry, send-map-request: a Map-Request is asked"
        case .drop, .dropPolicyDenied, .dropAuthenticationFailure: what = "negative entry, drop"
        }
        return "\(head) \(prefix) for \(outcome.destination): \(what)"
    }

    /// Why a stage sent nothing, from the counters it moved (the names dump-ports uses).
    static func dropReason(_ stage: DatapathTrace.Stage, lookup: String, rule: FlowRule?) -> String {
        let lispReasons: [String: String] = [
            "non_ip": "LISP carries only IPv4/IPv6 (non_ip)", "no_route": "no route to the remote RLOC (no_route)",
            "no_neighbour": "the next hop's MAC is not resolved (no_neighbour)",
            "too_big": "the encapsulated packet exceeds the egress MTU (too_big)",
            "bad_header": "malformed LISP packet (bad_header)", "unknown_rloc": "LISP from an unknown RLOC (unknown_rloc)",
            "iid_mismatch": "LISP instance id of no port (iid_mismatch)",
            "bad_inner_length": "LISP inner length wrong (bad_inner_length)",
            "encrypted": "LISP payload encrypted (RFC 8061), which vswift cannot decrypt (encrypted)",
            "ce_not_ect": "outer ECN CE over a not-ECT inner packet, dropped as RFC 6040 says (ce_not_ect)",
            "ttl_expired": "inner TTL 0 after decapsulation (ttl_expired)",
            "map_miss": "no usable map-cache entry for the destination; a Map-Request is asked (map_miss)",
            "map_drop": "the map-cache's negative entry says drop (map_drop)",
            "map_native": "the map-cache's negative entry says natively-forward, which a LISP port cannot (map_native)",
        ]
        for event in stage.events {
            if let reason = lispReasons[event.counter] { return "\(event.port): \(reason)" }
        }
        if stage.events.contains(where: { $0.counter == "rx_errors" }) { return "malformed frame (rx_errors)" }
        if stage.events.contains(where: { $0.counter == "tx_errors" }) {
            let port = stage.events.first { $0.counter == "tx_errors" }!.port
            return "\(port): encapsulation refused (nesting deeper than 3, or no room: tx_errors)"
        }
        switch lookup {
        case "miss": return "no flow matches (table miss)"
        case "none": return "an underlay device takes only LISP for a local RLOC"
        default: break
        }
        if stage.events.contains(where: { $0.counter == "rx_dropped" }) { return "output limit or frame pool exhausted (rx_dropped)" }
        if let rule {
            if rule.actions.isEmpty { return "the rule's actions drop it" }
            if rule.actions.contains(where: { if case .decTTL = $0 { return true } else { return false } }) {
                return "dec_ttl: TTL reached zero, or no output"
            }
            return "the rule's actions output it nowhere (output to the input port sends nothing)"
        }
        if let normal = stage.normal, normal.learnedPort == stage.inPort { return "NORMAL: the destination is behind the input port" }
        return "no output"
    }

    /// A flow key in ovs-ofctl syntax: the fields its frame has.
    static func flowText(_ key: FlowKey) -> String {
        var match = Match()
        match.key = key
        var fields: [FlowField] = [.inPort, .dlSrc, .dlDst, .dlType]
        if key.get(.vlanTCI) != 0 { fields.append(.vlanTCI) }
        if key.get(.vlanOuterTCI) != 0 { fields.append(.vlanOuterTCI) }
        switch key.get(.dlType) {
        case 0x0800:
            fields += [.nwSrc, .nwDst, .nwProto, .nwTos, .nwTTL, .nwFrag]
        case 0x86dd:
            fields += [.ipv6SrcHigh, .ipv6SrcLow, .ipv6DstHigh, .ipv6DstLow, .ipv6Label, .nwProto, .nwTos, .nwTTL, .nwFrag]
        case 0x0806, 0x8035:
            fields += [.nwProto, .nwSrc, .nwDst, .arpSha, .arpTha]
        default:
            break
        }
        let ip = key.get(.dlType) == 0x0800 || key.get(.dlType) == 0x86dd
        if ip && [1, 6, 17, 58, 132].contains(key.get(.nwProto)) && key.get(.nwFrag) & FlowConstants.fragLater == 0 {
            fields += [.tpSrc, .tpDst]
        }
        for field in [FlowField.tunId, .tunSrc, .tunDst] where key.get(field) != 0 { fields.append(field) }
        for field in fields { match.mask.set(field, field.layout.valueMask) }
        return FlowFormatter.match(match, priority: FlowRule.defaultPriority)
    }

    /// Fields of `frame` (extracted as the stage's frame was) that differ from `key`.
    static func changes(from key: FlowKey, to frame: [UInt8], stage: DatapathTrace.Stage) -> [TraceReport.Change] {
        guard frame.count >= 14 else { return [] }
        var after = FlowKey()
        frame.withUnsafeBytes { bytes in
            FlowExtractor.extract(bytes.baseAddress!, length: bytes.count, inPort: UInt32(truncatingIfNeeded: key.get(.inPort)),
                                  tunnelID: stage.tunnelID, tunnelSource: stage.tunnelSource,
                                  tunnelDestination: stage.tunnelDestination, into: &after)
        }
        var changes: [TraceReport.Change] = []
        for field in FlowField.allCases where field != .inPort && key.get(field) != after.get(field) {
            switch field {
            case .ipv6SrcLow, .ipv6DstLow: continue
            case .ipv6SrcHigh, .ipv6DstHigh:
                let low: FlowField = field == .ipv6SrcHigh ? .ipv6SrcLow : .ipv6DstLow
                changes.append(.init(
                    field: field == .ipv6SrcHigh ? "ipv6_src" : "ipv6_dst",
                    before: IPAddress(high: key.get(field), low: key.get(low)).description,
                    after: IPAddress(high: after.get(field), low: after.get(low)).description))
            default:
                changes.append(.init(field: field.rawValue, before: value(field, key), after: value(field, after)))
            }
        }
        // The low halves of IPv6 addresses changed alone.
        for (high, low, name) in [(FlowField.ipv6SrcHigh, FlowField.ipv6SrcLow, "ipv6_src"), (.ipv6DstHigh, .ipv6DstLow, "ipv6_dst")]
        where key.get(high) == after.get(high) && key.get(low) != after.get(low) {
            changes.append(.init(field: name, before: IPAddress(high: key.get(high), low: key.get(low)).description,
                                 after: IPAddress(high: after.get(high), low: after.get(low)).description))
        }
        return changes
    }

    static func value(_ field: FlowField, _ key: FlowKey) -> String {
        let v = key.get(field)
        switch field {
        case .dlSrc, .dlDst, .arpSha, .arpTha: return mac(v)
        case .nwSrc, .nwDst, .tunSrc, .tunDst: return IPAddress(ipv4: UInt32(truncatingIfNeeded: v)).description
        case .dlType, .vlanTCI, .vlanOuterTCI, .tunId, .tcpFlags, .nwFrag: return "0x" + String(v, radix: 16)
        default: return String(v)
        }
    }

    static func mac(_ v: UInt64) -> String {
        (0..<6).map { i in
            let byte = UInt8(truncatingIfNeeded: v >> UInt64(40 - 8 * i))
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined(separator: ":")
    }

    /// A LISP packet's outer headers (no port or egress yet) and its inner packet, with the
    /// datapath's own parser and decapsulation; nil when `frame` is not LISP on one of `udpPorts`.
    static func lisp(_ frame: [UInt8], udpPorts: Set<UInt16>) -> (headers: TraceReport.LISPHeaders, inner: [UInt8])? {
        guard frame.count >= 14 else { return nil }
        var copy = frame
        return copy.withUnsafeMutableBytes { bytes -> (headers: TraceReport.LISPHeaders, inner: [UInt8])? in
            var outer = LISP.OuterHeaders()
            for port in udpPorts.sorted() {
                guard LISP.parseOuter(bytes.baseAddress!, length: bytes.count, udpPort: port, into: &outer) == .lisp else { continue }
                let headers = TraceReport.LISPHeaders(
                    port: nil, source: outer.source.description, destination: outer.destination.description,
                    udpSourcePort: Int(outer.udpSourcePort), udpDestinationPort: Int(outer.udpDestinationPort),
                    instanceID: outer.hasInstanceID ? Int(outer.instanceID) : nil,
                    nextHopMAC: mac(Ethernet.destination(bytes.baseAddress!)), sourceMAC: mac(Ethernet.source(bytes.baseAddress!)),
                    egress: nil)
                var start = bytes.baseAddress!
                var length = bytes.count
                LISP.decapsulate(&start, length: &length, outer: &outer)
                let inner = Array(UnsafeRawBufferPointer(start: start, count: max(0, min(length, bytes.count - (start - bytes.baseAddress!)))))
                return (headers, inner)
            }
            return nil
        }
    }
}

extension FlowTables {
    /// The flow of `bridge` whose counters are in `counterSlot` (a trace names the rule it hit).
    func flow(bridge: String, counterSlot: Int) -> FlowRule? {
        guard let table = tables[bridge] else { return nil }
        for (id, flow) in table.flows where flow.counterSlot == counterSlot { return flow.rule(id) }
        return nil
    }
}
