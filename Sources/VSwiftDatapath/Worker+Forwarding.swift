import CSupport
import CXDP
import Glibc
import VSwiftClassifier
import VSwiftPacket

/// What travels with one packet through the pipeline besides its bytes (OVS's pkt_metadata): the
/// tunnel fields that decapsulation and set_tunnel/set_field actions set and encapsulation reads,
/// and how many encapsulations deep the packet is. A value owned by whoever runs the packet: a
/// packet that re-enters a bridge after encapsulation starts with a context of its own, so nothing
/// is reset between packets or saved and restored around re-entry.
struct PacketContext {
    var tunnelID: UInt64 = 0
    var tunnelSource: UInt32 = 0
    var tunnelDestination: UInt32 = 0
    /// Encapsulations on the way here (see `Worker.maxTunnelDepth`): 0 for a received frame.
    var depth: Int32 = 0
}

/// The frames between extraction and action: their flow keys, where they are, and the rule each
/// was classified to. Fixed arrays allocated once per worker: `capacity` slots for an rx burst,
/// then one key slot per encapsulation depth for a frame run on its own (`Worker.process`, which
/// keeps its rule, address and length in registers), which may happen while an rx burst is being
/// acted on (a frame re-entering a bridge after encapsulation). Addresses, lengths and rules exist
/// for the rx slots only.
final class ClassifyBurst {
    static let capacity = ClassifierBurstScratch.capacity
    static let slotCount = capacity + Worker.maxTunnelDepth + 1
    let keys: UnsafeMutablePointer<FlowKey>
    let addresses: UnsafeMutablePointer<UInt64>
    let lengths: UnsafeMutablePointer<UInt32>
    let rules: UnsafeMutablePointer<RuleIndex>

    /// The slot of a frame run on its own at encapsulation depth `depth`.
    @inline(__always)
    static func singleSlot(depth: Int32) -> Int { capacity &+ Int(depth) }

    init() {
        // Keys on their own cache lines: two lines per key, none shared with anything else.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: Self.slotCount * MemoryLayout<FlowKey>.stride, alignment: 64)
        keys = raw.bindMemory(to: FlowKey.self, capacity: Self.slotCount)
        keys.initialize(repeating: FlowKey(), count: Self.slotCount)
        addresses = .allocate(capacity: Self.capacity)
        lengths = .allocate(capacity: Self.capacity)
        rules = .allocate(capacity: Self.capacity)
    }

    deinit {
        UnsafeMutableRawPointer(keys).deallocate()
        addresses.deallocate()
        lengths.deallocate()
        rules.deallocate()
    }
}

/// Consecutive frames of a burst that hit the same rule (the usual burst: one busy flow): its
/// counters are updated once per run, not per frame.
struct RuleRun {
    /// `.miss` only while `packets` is 0.
    var rule: RuleIndex = .miss
    var packets: UInt64 = 0
    var bytes: UInt64 = 0
}

/// Forwarding: one pipeline, as OVS's dp_netdev_input: extract every frame's flow key, classify
/// them together (exact-match cache, then the classifier for its misses), then act on each frame
/// in arrival order, counting it on its rule. An rx burst enters at `forwardBurst`; a frame on its
/// own (from a tap, after decapsulation, after encapsulation into a bridge) at `forward` or
/// `process`, as a burst of one; both act and count through `act` and `addToCounters`. Worker
/// thread only.
extension Worker {
    /// Tables with more rules than this have their rule entries, counters and actions prefetched,
    /// counters and actions `prefetchDistance` frames ahead of the frame being acted on.
    static let prefetchingRuleCount = 4096
    static let prefetchDistance = 4

    /// Sends a received frame on: decapsulated if it is LISP for a local RLOC, else through its
    /// bridge.
    @inline(__always)
    func forward(address: UInt64, length: UInt32, inPort: PortSlot, bridge: BridgeSlot) {
        guard length >= UInt32(Ethernet.headerLength) else {
            vs_add_relaxed_u64(&counters[inPort.index].rxErrors, 1)
            pool.release(address)
            return
        }
        if tunnelPortCount > 0,
           LISP.mayBeLISP(base + Int(address), length: Int(length), udpPorts: tunnelUDPPorts, count: tunnelUDPPortCount),
           receiveTunnelled(address: address, length: length, inPort: inPort) { return }
        guard bridge != .unbridged else {
            // An underlay port (in no bridge) carries only tunnel traffic.
            vs_add_relaxed_u64(&counters[inPort.index].rxDropped, 1)
            pool.release(address)
            return
        }
        process(address: address, length: length, inPort: inPort, bridge: bridge, context: PacketContext())
    }

    /// Runs one frame through a bridge: the flow table if one is published (a burst of one, in
    /// the slot of its encapsulation depth: classified with the single lookup, which gives the
    /// burst lookup's answer with less work, then acted on and counted by the same `act` and
    /// `addToCounters` as a burst's frames), else NORMAL.
    @inline(__always)
    func process(address: UInt64, length: UInt32, inPort: PortSlot, bridge: BridgeSlot, context: PacketContext,
                 decapsulated: Bool = false) {
        guard let bridgeIndex = bridge.index else {
            pool.release(address)
            return
        }
        guard let table = bridges[bridgeIndex].flowTable else {
            normal(address: address, length: length, inPort: inPort, bridge: bridgeIndex, context: context)
            return
        }
        table._withUnsafeGuaranteedRef { table in
            let slot = ClassifyBurst.singleSlot(depth: context.depth)
            FlowExtractor.extract(
                base + Int(address), length: Int(length), inPort: ports[inPort.index].ofport.rawValue,
                tunnelID: context.tunnelID, tunnelSource: context.tunnelSource,
                tunnelDestination: context.tunnelDestination, into: burst.keys + slot)
            // The rule, address and length go to `act` in registers: a burst of one needs no
            // round trip through the burst's arrays (measured: lisp-decap 8 % slower with it).
            let missesBefore = cache.misses
            let rule = cache.lookup(burst.keys + slot, in: table.classifier)
            // A decapsulated frame's miss may become an XDP entry (XDP decapsulates too).
            if decapsulated && flowCacheInstalling && cache.misses != missesBefore {
                requestFlowCacheEntry(decapsulated: burst.keys + slot, table, bridge: bridge)
            }
            var run = RuleRun()
            act(table, rule: rule, address: address, length: length, inPort: inPort, bridge: bridge, context: context,
                run: &run)
            addToCounters(run, table)
        }
    }

    /// Forwards the `count` frames at rx index `first` of socket `slot` (all from `inPort`, of a
    /// bridge with a flow table) in three phases per burst: extract every key, classify them all at
    /// once (cache, then classifier for the cache's misses; see `ExactMatchCache.lookup(burst:...)`),
    /// then act on each frame in arrival order. The table cannot change within a burst (the
    /// control thread changes it only while this worker is parked between bursts), so classifying
    /// a frame before acting on the earlier ones gives the same results as one at a time.
    /// Returns the bytes received.
    @inline(__always)
    func forwardBurst(slot: Int, first: UInt32, count: Int, inPort: PortSlot, bridge: BridgeSlot,
                      table: Unmanaged<CompiledFlowTable>) -> UInt64 {
        let socket = sockets + slot
        let ofport = ports[inPort.index].ofport.rawValue
        var bytes: UInt64 = 0
        var pending = 0
        table._withUnsafeGuaranteedRef { table in
            // No rule looks at any field (a new bridge's lone `priority=0,actions=NORMAL`): every
            // frame gets the same rule, so one lookup decides the burst and no key is extracted.
            var constant = table.classifier.significantWords.bits == 0 ? constantRule(table) : nil
            if let constant, !constant.isMiss, isNormalOnly(table, rule: constant) {
                bytes = normalBurst(socket, slot: slot, first: first, count: count, inPort: inPort, bridge: bridge,
                                    counting: table, rule: constant)
                return
            }
            // Any other constant rule may be an XDP entry per megaflow shape: through the
            // exact-match cache (keyed on the shape), whose misses are handed over.
            if flowCacheInstalling { constant = nil }
            for i in 0..<count {
                guard let desc = takeReceived(socket, first: first, i, count: count, slot: slot, inPort: inPort, bytes: &bytes) else { continue }
                if tunnelPortCount > 0,
                   LISP.mayBeLISP(base + Int(desc.addr), length: Int(desc.len), udpPorts: tunnelUDPPorts, count: tunnelUDPPortCount) {
                    // Perhaps LISP to decapsulate (into this or another bridge): after the frames
                    // before it, on its own.
                    if pending > 0 {
                        classifyAndApply(table, first: 0, count: pending, inPort: inPort, bridge: bridge, constant: constant,
                                         context: PacketContext())
                        pending = 0
                    }
                    forward(address: desc.addr, length: desc.len, inPort: inPort, bridge: bridge)
                    continue
                }
                if constant != nil {
                    // Nothing to extract.
                } else if table.linkLayerOnly {
                    FlowExtractor.extractLinkLayer(base + Int(desc.addr), length: Int(desc.len), inPort: ofport, into: burst.keys + pending)
                } else {
                    FlowExtractor.extract(base + Int(desc.addr), length: Int(desc.len), inPort: ofport, into: burst.keys + pending)
                }
                burst.addresses[pending] = desc.addr
                burst.lengths[pending] = desc.len
                pending += 1
                if pending == ClassifyBurst.capacity {
                    classifyAndApply(table, first: 0, count: pending, inPort: inPort, bridge: bridge, constant: constant,
                                     context: PacketContext())
                    pending = 0
                }
            }
            if pending > 0 {
                classifyAndApply(table, first: 0, count: pending, inPort: inPort, bridge: bridge, constant: constant,
                                 context: PacketContext())
            }
        }
        return bytes
    }

    /// Whether rule `index` (a hit)'s only action is NORMAL.
    @inline(__always)
    func isNormalOnly(_ table: CompiledFlowTable, rule index: RuleIndex) -> Bool {
        let rule = table.rules[Int(index.rawValue)]
        return rule.actionCount == 1 && table.actions[Int(rule.actionStart)].op == .normal
    }

    /// The rule every frame gets from a table whose rules look at no field: the lookup of any key.
    @inline(__always)
    func constantRule(_ table: CompiledFlowTable) -> RuleIndex {
        key.pointee = FlowKey()
        return table.classifier.lookup(key)
    }

    /// Classifies the extracted frames in slots `first..<first + count` of an rx burst (all with
    /// rule `constant` if given) and acts on them in order, each starting from `context`.
    @inline(__always)
    func classifyAndApply(_ table: CompiledFlowTable, first: Int, count: Int, inPort: PortSlot, bridge: BridgeSlot,
                          constant: RuleIndex?, context: PacketContext) {
        let rules = burst.rules
        let end = first &+ count
        // remote_ip=map: the frames' resolution sets, loading while the burst is classified
        // (Worker+MapCache.swift).
        if mapCache.hasPorts { prefetchMapResolutions(first: first, end: end) }
        if let constant {
            (rules + first).update(repeating: constant, count: count)
        } else {
            let missesBefore = cache.misses
            cache.lookup(burst: burst.keys + first, count: count, in: table.classifier, results: rules + first)
            // Only rx bursts of device ports come here: their misses may become XDP cache entries.
            if flowCacheInstalling && cache.misses != missesBefore {
                requestFlowCacheEntries(table, first: first, misses: Int(truncatingIfNeeded: cache.misses &- missesBefore),
                                        inPort: inPort, bridge: bridge)
            }
        }
        var run = RuleRun()
        if table.ruleCount > Self.prefetchingRuleCount {
            // remote_ip=map with many RLOCs: the frames' likely next hops, now that their sets
            // (prefetched above) have arrived (Worker+MapCache.swift).
            if mapCache.prefetchesNextHops && constant == nil { prefetchMapNextHops(first: first, end: end) }
            // With many rules, each frame's rule entry, counters and actions are cache misses of
            // their own: start every rule entry now, and each frame's counters and first action
            // (found through its rule entry, by then loaded) a few frames ahead of acting on it.
            for j in first..<end { if let position = rules[j].position { vs_prefetch(table.rules + position) } }
            for j in first..<min(first &+ Self.prefetchDistance, end) { prefetchCountersAndActions(table, frame: j, end: end) }
            for j in first..<end {
                prefetchCountersAndActions(table, frame: j &+ Self.prefetchDistance, end: end)
                // Where the map-cache hit path finds the frame's set (Worker+MapCache.swift).
                mapFrameSet = WorkerMapCache.set(offset: mapBurstSets[j], in: mapResolutions)
                act(table, rule: rules[j], address: burst.addresses[j], length: burst.lengths[j], inPort: inPort,
                    bridge: bridge, context: context, run: &run)
            }
        } else if mapCache.hasPorts {
            // The same loop, keeping the map-cache's lines coming too (out of line, with a run of
            // its own: see below).
            actKeepingMapCacheAhead(table, first: first, end: end, inPort: inPort, bridge: bridge, context: context)
            return
        } else {
            actOnSmallTableBurst(table, first: first, end: end, inPort: inPort, bridge: bridge, context: context,
                                 keepingMapCacheAhead: false, run: &run)
        }
        addToCounters(run, table)
    }

    /// The act loop of a small table: it stays in cache, nothing of it to prefetch. The frames'
    /// first lines were loaded at extraction, but acting on a burst evicts the first frames' lines
    /// from L1 again: each comes back a few frames ahead. `keepingMapCacheAhead` (a constant at
    /// each call: the compiler makes two loops of it, and tests nothing per frame) also keeps each
    /// frame's map-cache set and next hop coming (`prefetchMapCacheAhead`).
    @inline(__always)
    private func actOnSmallTableBurst(_ table: CompiledFlowTable, first: Int, end: Int, inPort: PortSlot, bridge: BridgeSlot,
                                      context: PacketContext, keepingMapCacheAhead: Bool, run: inout RuleRun) {
        let rules = burst.rules
        for j in first..<end {
            let ahead = j &+ Self.prefetchDistance
            if ahead < end { vs_prefetch(base + Int(burst.addresses[ahead])) }
            if keepingMapCacheAhead { prefetchMapCacheAhead(of: j) }
            act(table, rule: rules[j], address: burst.addresses[j], length: burst.lengths[j], inPort: inPort,
                bridge: bridge, context: context, run: &run)
        }
    }

    /// `classifyAndApply`'s small-table loop on a worker with `remote_ip=map` ports, also keeping
    /// each frame's resolution set and next hop arriving a few frames ahead
    /// (`prefetchMapCacheAhead`). Out of line, with its own rule run, so that `classifyAndApply`
    /// gains one call and not a second inlined loop: its size decides the compiler's inlining for
    /// every worker (measured on p2p, in instructions per packet: 510.4 before this loop, 514.4
    /// with `classifyAndApply`'s run passed here by reference, 511.5 now). A `hasPorts` test per
    /// frame in the one loop made every worker slower (static encapsulation 996 → 1,032).
    @inline(never)
    private func actKeepingMapCacheAhead(_ table: CompiledFlowTable, first: Int, end: Int, inPort: PortSlot,
                                         bridge: BridgeSlot, context: PacketContext) {
        var run = RuleRun()
        actOnSmallTableBurst(table, first: first, end: end, inPort: inPort, bridge: bridge, context: context,
                             keepingMapCacheAhead: true, run: &run)
        addToCounters(run, table)
    }

    @inline(__always)
    private func prefetchCountersAndActions(_ table: CompiledFlowTable, frame j: Int, end: Int) {
        guard j < end, let position = burst.rules[j].position else { return }
        let rule = table.rules + position
        vs_prefetch_write(ruleCounters + Int(rule.pointee.counterSlot))
        vs_prefetch(table.actions + Int(rule.pointee.actionStart))
    }

    /// Acts on a frame with the rule it was classified to; drops it on a table miss (as OpenFlow
    /// does). With `addToCounters` after the last frame, the one place a frame is counted on its
    /// rule, whichever way it came in (a burst or a frame on its own).
    @inline(__always)
    private func act(_ table: CompiledFlowTable, rule index: RuleIndex, address: UInt64, length: UInt32, inPort: PortSlot,
                     bridge: BridgeSlot, context: PacketContext, run: inout RuleRun) {
        guard let position = index.position else {
            vs_add_relaxed_u64(&counters[inPort.index].rxDropped, 1)
            pool.release(address)
            return
        }
        if index != run.rule {
            addToCounters(run, table)
            run = RuleRun(rule: index)
        }
        run.packets &+= 1
        run.bytes &+= UInt64(length)
        var packet = context
        execute(table.rules[position], table.actions, address: address, length: length, inPort: inPort,
                bridge: bridge.knownIndex, context: &packet)
    }

    /// Adds a run of frames to its rule's counters.
    @inline(__always)
    func addToCounters(_ run: RuleRun, _ table: CompiledFlowTable) {
        guard run.packets > 0 else { return }
        // packets > 0: the run is on a rule, not a miss.
        let counter = ruleCounters + Int(table.rules[Int(run.rule.rawValue)].counterSlot)
        vs_add_relaxed_u64(&counter.pointee.packets, run.packets)
        vs_add_relaxed_u64(&counter.pointee.bytes, run.bytes)
        if counter.pointee.lastUsed != now { vs_store_relaxed_u64(&counter.pointee.lastUsed, now) }
    }

    /// Most output actions (output, NORMAL, FLOOD, ALL) one frame executes; see DESIGN.md, "Flow
    /// limits". A rule may have up to `FlowRule.maxActions` (1024) actions.
    package static let maxOutputsPerPacket = 64

    /// Runs a rule's actions on the frame, in place. Outputs before the last get a copy of the frame
    /// as it is at that point; the last output gets the frame itself; no output frees it.
    @inline(__always)
    func execute(_ rule: CompiledRule, _ actions: UnsafeMutablePointer<CompiledAction>,
                 address: UInt64, length: UInt32, inPort: PortSlot, bridge: Int, context: inout PacketContext) {
        var address = address
        var length = Int(length)
        let program = actions + Int(rule.actionStart)
        var outputs = 0
        for i in 0..<Int(rule.actionCount) {
            let action = program + i
            let op = action.pointee.op
            switch op {
            case .output, .normal, .flood, .all:
                // OpenFlow: output to the input port by number sends nothing; only IN_PORT reflects.
                if op == .output && action.pointee.port == inPort { continue }
                // One frame may not take more than its share of the pool (the other ports' fill
                // rings draw on it): outputs past the budget are dropped and counted. Skipping the
                // last output leaves the frame to the release after the loop.
                outputs &+= 1
                if outputs > Worker.maxOutputsPerPacket {
                    vs_add_relaxed_u64(&counters[inPort.index].rxDropped, 1)
                    continue
                }
                var frame = address
                if i != Int(rule.lastOutput) {
                    guard let copy = copyFrame(address, length: length) else {
                        vs_add_relaxed_u64(&counters[inPort.index].rxDropped, 1)
                        continue
                    }
                    frame = copy
                }
                switch op {
                case .output:
                    let port = action.pointee.port == .inputPort ? inPort : action.pointee.port
                    output(port: port, address: frame, length: UInt32(length), context: context, inPort: inPort)
                case .normal:
                    normal(address: frame, length: UInt32(length), inPort: inPort, bridge: bridge, context: context)
                default:
                    flood(bridge: bridge, address: frame, length: UInt32(length), inPort: inPort, context: context)
                }
                if i == Int(rule.lastOutput) { return }
            case .setTunId:
                context.tunnelID = action.pointee.a
            case .setTunSrc:
                context.tunnelSource = UInt32(truncatingIfNeeded: action.pointee.a)
            case .setTunDst:
                context.tunnelDestination = UInt32(truncatingIfNeeded: action.pointee.a)
            default:
                let frameBase = address & ~(UInt64(frameSize) - 1)
                var start = base + Int(address)
                let headroom = Int(address - frameBase) - UmemArea.txMetadataRoom
                guard HeaderActions.apply(action.pointee, frame: &start, length: &length, headroom: headroom) else {
                    // dec_ttl reached zero: the packet dies here.
                    pool.release(address)
                    return
                }
                address = UInt64(start - base)
            }
        }
        pool.release(address)
    }

    /// Sends a frame out of a port: encapsulated for a LISP port, else staged for its tx ring.
    @inline(__always)
    func output(port: PortSlot, address: UInt64, length: UInt32, context: PacketContext, inPort: PortSlot) {
        if ports[port.index].kind == .lisp {
            sendThroughTunnel(port: port, address: address, length: length, context: context, inPort: inPort)
            return
        }
        stage(port: port, address: address, length: length)
    }

    /// A copy of the frame in a fresh UMEM frame at the same offset, or nil when the pool is empty.
    @inline(__always)
    func copyFrame(_ address: UInt64, length: Int) -> UInt64? {
        guard let copy = pool.allocate() else { return nil }
        let offset = address & (UInt64(frameSize) - 1)
        memcpy(base + Int(copy &+ offset), base + Int(address), length)
        return copy &+ offset
    }
}
