import CSupport
import CXDP
import Glibc
import VSwiftClassifier
import VSwiftMapCache
import VSwiftPacket

/// A frame the traced pipeline hands back to the trace instead of running it on: the inner packet
/// after decapsulation, or the outer packet that would re-enter a bridge after encapsulation. The
/// trace then runs it through `process` itself — the call the worker would have made — as a stage
/// of its own, so each stage's rule, outputs and counters can be told apart.
struct TraceHandoff {
    enum Kind: UInt8 {
        case decapsulated
        case reentered
    }
    var kind: Kind
    /// The LISP port that decapsulated or encapsulated the frame.
    var lispPort: PortSlot
    var address: UInt64
    var length: UInt32
    var inPort: PortSlot
    var bridge: BridgeSlot
    var context: PacketContext
}

/// Where a trace-mode worker puts its handoffs: fixed room, no growth (the hooks run in the tunnel
/// code, on a worker thread's path in a live worker — where `traceHandoffs` is nil).
struct TraceHandoffs {
    static let capacity = 128
    let items: UnsafeMutablePointer<TraceHandoff>
    var count = 0
    /// Handoffs refused for want of room (their frames were dropped).
    var overflowed = 0
}

/// Flow trace (`vswiftctl trace`): one frame through the same pipeline code the workers run —
/// `forward`, `process`, the cache and classifier lookup, `execute`, NORMAL, LISP encapsulation and
/// decapsulation — on a *trace-mode worker*: a `Worker` of its own (own UMEM, counters, exact-match
/// cache, no sockets, no tap fds, no resolver fd) that shares the live datapath's published flow
/// tables (immutable) and holds copies of everything else it reads (ports, bridges and their member
/// lists, MAC learning tables, tunnel ports, next hops, local RLOCs, underlay endpoints). So a trace
/// sends nothing (frames are staged and never flushed), changes no live counter, learns no MAC in
/// the live tables and asks the resolver nothing. What the trace reports is read from what the
/// trace worker did: the frames staged per port, its rule counters (which rule of which table),
/// its port and LISP counters (drops, and why), and the handoffs above. See DESIGN.md, "Flow trace".
extension Worker {
    /// An empty trace-mode worker shaped like `self` (any thread; allocates its own memory).
    package func makeTraceWorker() throws(DatapathError) -> Worker {
        let trace = try Worker(index: -1, frameCount: 1024, frameSize: frameSize, rings: rings, rxBatch: rxBatch)
        let handoffs = UnsafeMutablePointer<TraceHandoffs>.allocate(capacity: 1)
        handoffs.initialize(to: TraceHandoffs(items: .allocate(capacity: TraceHandoffs.capacity)))
        trace.traceHandoffs = handoffs
        let outcomes = UnsafeMutablePointer<MapCacheTraceRoom>.allocate(capacity: 1)
        outcomes.initialize(to: MapCacheTraceRoom(items: .allocate(capacity: MapCacheTraceRoom.capacity)))
        trace.mapCache.traceOutcomes = outcomes
        return trace
    }

    /// Gives trace-mode worker `trace` `self`'s configuration (control thread, `self` not being
    /// changed, and parked or not running: it may write its next-hop table). The flow tables are
    /// shared (immutable; the caller keeps them published while tracing), the MAC tables copied:
    /// `destroyTraceCopies` frees them.
    package func copyConfiguration(into trace: Worker) {
        for i in 0..<DatapathLimits.maxPorts {
            trace.ports[i].kind = ports[i].kind
            trace.ports[i].bridge = ports[i].bridge
            trace.ports[i].ofport = ports[i].ofport
        }
        for b in 0..<DatapathLimits.maxBridges {
            trace.bridges[b].flowTable = bridges[b].flowTable
            trace.bridges[b].macTable = bridges[b].macTable?.copy()
            trace.bridges[b].portCount = bridges[b].portCount
            trace.bridges[b].ports.update(from: bridges[b].ports, count: bridges[b].portCount)
        }
        trace.tunnelPortStates.update(from: tunnelPortStates, count: DatapathLimits.maxPorts)
        trace.tunnelPorts.update(from: tunnelPorts, count: tunnelPortCount)
        trace.tunnelPortCount = tunnelPortCount
        trace.tunnelUDPPorts.update(from: tunnelUDPPorts, count: tunnelUDPPortCount)
        trace.tunnelUDPPortCount = tunnelUDPPortCount
        trace.localRLOCs.update(from: localRLOCs, count: localRLOCCount)
        trace.localRLOCCount = localRLOCCount
        trace.underlayEndpoints.update(from: underlayEndpoints, count: underlayEndpointCount)
        trace.underlayEndpointCount = underlayEndpointCount
        trace.nextHopEntries.update(from: nextHopEntries, count: TunnelNextHopTable.capacity)
        trace.now = Self.monotonicSeconds()
        // The published map-cache itself (immutable; kept published while the trace runs under the
        // datapath's lock), resolved afresh by the trace worker.
        trace.mapCache.snapshot = mapCache.snapshot
        trace.mapCache.rlocs = mapCache.rlocs
        trace.mapCache.newEpoch(now: trace.now)
    }

    /// Frees what `makeTraceWorker` copied (the MAC tables) and the handoff room.
    package func destroyTraceCopies() {
        for b in 0..<DatapathLimits.maxBridges {
            bridges[b].macTable?.destroy()
            bridges[b].macTable = nil
            bridges[b].flowTable = nil
        }
        if let handoffs = traceHandoffs {
            handoffs.pointee.items.deallocate()
            handoffs.deallocate()
            traceHandoffs = nil
        }
    }

    /// Tunnel code, trace-mode worker only: keep the frame for the trace's next stage.
    @inline(never)
    func traceHandOff(_ handoff: TraceHandoff) {
        guard let handoffs = traceHandoffs else { return }
        guard handoffs.pointee.count < TraceHandoffs.capacity else {
            handoffs.pointee.overflowed += 1
            pool.release(handoff.address)
            return
        }
        handoffs.pointee.items[handoffs.pointee.count] = handoff
        handoffs.pointee.count += 1
    }

    /// Runs `frame`, received on `inPort`, through the pipeline (trace-mode worker only) and
    /// reports each stage. `tunnel` (tun_id, tun_src, tun_dst) starts the frame with that metadata,
    /// as if decapsulated (it then skips decapsulation, as such a frame would).
    package func runTrace(frame bytes: [UInt8], inPort: PortSlot, tunnel: (UInt64, UInt32, UInt32)?,
                          names: TraceNames) -> DatapathTrace {
        var trace = DatapathTrace()
        guard traceHandoffs != nil else { return trace }
        guard let first = pool.allocate() else { return trace }
        let room = Int(frameSize) - Int(DatapathLimits.tapHeadroom)
        let length = min(bytes.count, room)
        let address = first &+ DatapathLimits.tapHeadroom
        bytes.withUnsafeBytes { if length > 0 { (base + Int(address)).copyMemory(from: $0.baseAddress!, byteCount: length) } }
        trace.truncatedInput = bytes.count > room
        var context = PacketContext()
        if let tunnel { context = PacketContext(tunnelID: tunnel.0, tunnelSource: tunnel.1, tunnelDestination: tunnel.2) }
        var queue = [TraceHandoff(kind: .decapsulated, lispPort: inPort, address: address, length: UInt32(length),
                                  inPort: inPort, bridge: ports[inPort.index].bridge, context: context)]
        var isFirst = true
        resetTraceCounters()
        while !queue.isEmpty {
            let item = queue.removeFirst()
            if trace.stages.count >= DatapathTrace.maxStages {
                pool.release(item.address)
                trace.stagesLeftOut += 1
                continue
            }
            var stage = DatapathTrace.Stage()
            stage.entry = isFirst ? .received : (item.kind == .decapsulated ? .decapsulated : .reentered)
            if !isFirst { stage.lispPort = names.port(item.lispPort) }
            stage.bridge = item.bridge.index.map { names.bridge(BridgeSlot($0)) }
            stage.inPort = names.port(item.inPort)
            stage.inPortNumber = ports[item.inPort.index].ofport == .unassigned ? nil : ports[item.inPort.index].ofport.rawValue
            stage.depth = Int(item.context.depth)
            stage.tunnelID = item.context.tunnelID
            stage.tunnelSource = item.context.tunnelSource
            stage.tunnelDestination = item.context.tunnelDestination
            stage.frame = Array(UnsafeRawBufferPointer(start: base + Int(item.address), count: Int(item.length)))
            var key = FlowKey()
            if item.length >= UInt32(Ethernet.headerLength) {
                FlowExtractor.extract(
                    base + Int(item.address), length: Int(item.length), inPort: ports[item.inPort.index].ofport.rawValue,
                    tunnelID: item.context.tunnelID, tunnelSource: item.context.tunnelSource,
                    tunnelDestination: item.context.tunnelDestination, into: &key)
            }
            stage.key = key
            if let b = item.bridge.index { stage.hasFlowTable = bridges[b].flowTable != nil }
            // The real pipeline: a received frame enters where a tap read or an underlay frame
            // does (`forward`: the LISP check, decapsulation); a handed-off one where the worker
            // would have sent it next (`process`).
            normalMemo.bridge = -1
            // Every stage searches the map-cache afresh, so its lookups are all reported.
            mapCache.newEpoch(now: now)
            if isFirst && tunnel == nil {
                forward(address: item.address, length: item.length, inPort: item.inPort, bridge: item.bridge)
            } else {
                process(address: item.address, length: item.length, inPort: item.inPort, bridge: item.bridge,
                        context: item.context)
            }
            isFirst = false
            collectStage(&stage, names: names, inPort: item.inPort, bridge: item.bridge)
            if let handoffs = traceHandoffs {
                for i in 0..<handoffs.pointee.count { queue.append(handoffs.pointee.items[i]) }
                stage.handoffs = handoffs.pointee.count
                if handoffs.pointee.overflowed > 0 {
                    stage.events.append(.init(port: stage.inPort, counter: "trace_handoffs_dropped",
                                              count: UInt64(handoffs.pointee.overflowed)))
                }
                handoffs.pointee.count = 0
                handoffs.pointee.overflowed = 0
            }
            trace.stages.append(stage)
        }
        return trace
    }

    /// What one stage did, from the trace worker's state: the frames it staged (taken back, never
    /// sent), the rules it counted, its port and LISP counters, NORMAL's table.
    private func collectStage(_ stage: inout DatapathTrace.Stage, names: TraceNames, inPort: PortSlot, bridge: BridgeSlot) {
        for i in 0..<touchedCount {
            let port = touched[i]
            let p = ports + port.index
            for j in 0..<Int(p.pointee.stagedCount) {
                let desc = p.pointee.staged[j]
                stage.outputs.append(.init(
                    port: names.port(port), ofport: p.pointee.ofport == .unassigned ? nil : p.pointee.ofport.rawValue,
                    bridge: p.pointee.bridge.index.map { names.bridge(BridgeSlot($0)) },
                    frame: Array(UnsafeRawBufferPointer(start: base + Int(desc.addr), count: Int(desc.len)))))
                pool.release(desc.addr)
            }
            p.pointee.stagedCount = 0
            p.pointee.isTouched = false
        }
        touchedCount = 0
        // Rules counted: every published table's rules (slots are unique across bridges).
        var normalRule = bridge.index.map { bridges[$0].flowTable == nil } ?? false
        for b in 0..<DatapathLimits.maxBridges {
            guard let unmanaged = bridges[b].flowTable else { continue }
            unmanaged._withUnsafeGuaranteedRef { table in
                for r in 0..<table.ruleCount {
                    let slot = Int(table.rules[r].counterSlot)
                    let c = ruleCounters + slot
                    guard c.pointee.packets > 0 else { continue }
                    stage.hits.append(.init(bridge: names.bridge(BridgeSlot(b)), counterSlot: slot, packets: c.pointee.packets))
                    let rule = table.rules[r]
                    for a in 0..<Int(rule.actionCount) where table.actions[Int(rule.actionStart) + a].op == .normal {
                        normalRule = true
                    }
                    c.pointee = RuleCounterBlock()
                }
            }
        }
        // NORMAL's decision: the bridge's learning table (the trace's copy, which this frame's
        // source has just been learned into) asked about the destination NORMAL saw.
        if normalRule, let b = bridge.index, let table = bridges[b].macTable {
            let frame = stage.outputs.first?.frame ?? stage.frame
            if frame.count >= Ethernet.headerLength {
                let destination = frame.withUnsafeBytes { Ethernet.destination($0.baseAddress!) }
                var decision = DatapathTrace.NormalDecision()
                decision.destination = destination
                decision.isGroup = Ethernet.isGroup(destination)
                let out = decision.isGroup ? MACLearningTable.noPort : table.lookup(destination, now: now)
                if out != MACLearningTable.noPort {
                    decision.learnedPort = names.port(out)
                } else {
                    for i in 0..<bridges[b].portCount where bridges[b].ports[i] != inPort {
                        decision.floodPorts.append(names.port(bridges[b].ports[i]))
                    }
                }
                stage.normal = decision
            }
        }
        // remote_ip=map lookups.
        if let room = mapCache.traceOutcomes {
            for i in 0..<room.pointee.count {
                let item = room.pointee.items[i]
                var prefix: EIDPrefix?
                if item.entry >= 0, let snapshot = mapCache.snapshot?.takeUnretainedValue(), Int(item.entry) < snapshot.count {
                    prefix = snapshot.prefixes[Int(item.entry)]
                }
                stage.mapCache.append(.init(
                    port: names.port(item.port), instanceID: item.instanceID, destination: item.destination, prefix: prefix,
                    action: item.action, rloc: item.action == .encapsulate ? item.rloc : nil))
            }
            room.pointee.count = 0
        }
        // Drops and LISP events, by counter.
        for i in 0..<DatapathLimits.maxPorts {
            let c = counters[i]
            let name = names.port(PortSlot(rawValue: UInt16(i)))
            for (counter, value) in [("rx_dropped", c.rxDropped), ("rx_errors", c.rxErrors),
                                     ("tx_dropped", c.txDropped), ("tx_errors", c.txErrors)] where value > 0 {
                stage.events.append(.init(port: name, counter: counter, count: value))
            }
            counters[i] = PortCounterBlock()
            guard ports[i].kind == .lisp else { continue }
            let t = tunnelCounters[i]
            for (counter, value) in t.named where value > 0 {
                stage.events.append(.init(port: name, counter: counter, count: value))
            }
            tunnelCounters[i] = TunnelCounterBlock()
        }
    }

    private func resetTraceCounters() {
        for i in 0..<DatapathLimits.maxPorts {
            counters[i] = PortCounterBlock()
            tunnelCounters[i] = TunnelCounterBlock()
        }
    }
}

/// Names for the slots a trace reports (the datapath's, or a test harness's).
package struct TraceNames: Sendable {
    package var ports: [UInt16: String]
    package var bridges: [Int32: String]

    package init(ports: [UInt16: String], bridges: [Int32: String]) {
        self.ports = ports
        self.bridges = bridges
    }

    func port(_ slot: PortSlot) -> String { ports[slot.rawValue] ?? "slot\(slot.rawValue)" }
    func bridge(_ slot: BridgeSlot) -> String { bridges[slot.rawValue] ?? "bridge\(slot.rawValue)" }
}

extension Worker {
    /// Every counter and table entry a trace must not change, as numbers (tests compare them
    /// before and after a trace): port and LISP counters of every slot, the counters of every
    /// published rule, cache hits and misses, MAC learning entries, the frame pool.
    package func traceStateSnapshot() -> [UInt64] {
        var values: [UInt64] = []
        for i in 0..<DatapathLimits.maxPorts {
            let c = portCounters(PortSlot(rawValue: UInt16(i)))
            values += [c.rxPackets, c.rxBytes, c.rxDropped, c.rxErrors, c.txPackets, c.txBytes, c.txDropped, c.txErrors]
            let t = tunnelCounters[i]
            values += t.named.map(\.value)
        }
        for b in 0..<DatapathLimits.maxBridges {
            if let unmanaged = bridges[b].flowTable {
                unmanaged._withUnsafeGuaranteedRef { table in
                    for r in 0..<table.ruleCount {
                        let c = ruleCounters(Int(table.rules[r].counterSlot))
                        values += [c.packets, c.bytes]
                    }
                }
            }
            if let mac = bridges[b].macTable {
                for entry in mac.entries(now: now).sorted(by: { $0.mac < $1.mac }) {
                    values += [entry.mac, UInt64(entry.port.rawValue)]
                }
            }
        }
        values += [cache.hits, cache.misses, UInt64(pool.freeCount), pool.violations]
        return values
    }
}
