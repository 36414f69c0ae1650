import CSupport
import CXDP
import VSwiftClassifier
import VSwiftPacket

/// The frames of one burst between extraction and action: their flow keys, where they are, and
/// the rule each was classified to. Fixed arrays for `ClassifierBurstScratch.capacity` frames,
/// allocated once per worker.
final class ClassifyBurst {
    static let capacity = ClassifierBurstScratch.capacity
    let keys: UnsafeMutablePointer<FlowKey>
    let addresses: UnsafeMutablePointer<UInt64>
    let lengths: UnsafeMutablePointer<UInt32>
    let payloads: UnsafeMutablePointer<Int32>

    init() {
        // Keys on their own cache lines: two lines per key, none shared with anything else.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: Self.capacity * MemoryLayout<FlowKey>.stride, alignment: 64)
        keys = raw.bindMemory(to: FlowKey.self, capacity: Self.capacity)
        keys.initialize(repeating: FlowKey(), count: Self.capacity)
        addresses = .allocate(capacity: Self.capacity)
        lengths = .allocate(capacity: Self.capacity)
        payloads = .allocate(capacity: Self.capacity)
    }

    func destroy() {
        UnsafeMutableRawPointer(keys).deallocate()
        addresses.deallocate()
        lengths.deallocate()
        payloads.deallocate()
    }
}

extension Worker {
    /// Tables with more rules than this have their rule entries, counters and actions prefetched,
    /// counters and actions `prefetchDistance` frames ahead of the frame being acted on.
    static let prefetchingRuleCount = 4096
    static let prefetchDistance = 4

    /// Forwards the `count` frames at rx index `first` of socket `slot` (all from `inPort`, of a
    /// bridge with a flow table) in three phases per burst: extract every key, classify them all at
    /// once (cache, then classifier for the cache's misses; see `ExactMatchCache.lookup(burst:...)`),
    /// then act on each frame in arrival order. The table cannot change within a burst (the
    /// control thread changes it only while this worker is parked between bursts), so classifying
    /// a frame before acting on the earlier ones gives the same results as one at a time.
    /// Returns the bytes received.
    @inline(__always)
    func forwardBurst(slot: Int, first: UInt32, count: Int, inPort: UInt16, bridge: Int32,
                      table: Unmanaged<CompiledFlowTable>) -> UInt64 {
        let socket = sockets + slot
        let ofport = ports[Int(inPort)].ofport
        var bytes: UInt64 = 0
        var pending = 0
        table._withUnsafeGuaranteedRef { table in
            // No rule looks at any field (a new bridge's lone `priority=0,actions=NORMAL`): every
            // frame gets the same rule, so one lookup decides the burst and no key is extracted.
            let constant = table.classifier.significantWords.bits == 0 ? constantPayload(table) : nil
            if let constant, constant >= 0, isNormalOnly(table, rule: constant) {
                bytes = normalBurst(socket, slot: slot, first: first, count: count, inPort: inPort, bridge: bridge,
                                    counting: table, rule: constant)
                return
            }
            for i in 0..<count {
                guard let desc = takeReceived(socket, first: first, i, count: count, slot: slot, inPort: inPort, bytes: &bytes) else { continue }
                if tunnelPortCount > 0,
                   LISP.mayBeLISP(base + Int(desc.addr), length: Int(desc.len), udpPorts: tunnelUDPPorts, count: tunnelUDPPortCount) {
                    // Perhaps LISP to decapsulate (into this or another bridge): after the frames
                    // before it, on its own.
                    if pending > 0 {
                        classifyAndApply(table, count: pending, inPort: inPort, bridge: bridge, constant: constant)
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
                    classifyAndApply(table, count: pending, inPort: inPort, bridge: bridge, constant: constant)
                    pending = 0
                }
            }
            if pending > 0 { classifyAndApply(table, count: pending, inPort: inPort, bridge: bridge, constant: constant) }
        }
        return bytes
    }

    /// Whether rule `payload`'s only action is NORMAL.
    @inline(__always)
    func isNormalOnly(_ table: CompiledFlowTable, rule payload: Int32) -> Bool {
        let rule = table.rules[Int(payload)]
        return rule.actionCount == 1 && table.actions[Int(rule.actionStart)].op == .normal
    }

    /// The `count` frames at rx index `first` of socket `slot` through NORMAL, frame by frame: for
    /// a plain learning bridge (`counting` nil), or a table that gives every frame rule `payload`,
    /// whose only action is NORMAL (a new bridge's table), counted once on that rule. A frame that
    /// may be LISP for a local RLOC goes through `forward` (decapsulation). Returns the bytes received.
    @inline(__always)
    func normalBurst(_ socket: UnsafeMutablePointer<XSKSocket>, slot: Int, first: UInt32, count: Int, inPort: UInt16,
                     bridge: Int32, counting table: CompiledFlowTable?, rule payload: Int32) -> UInt64 {
        var bytes: UInt64 = 0
        var run = RuleRun(payload: payload)
        tunnelID = 0
        tunnelSource = 0
        tunnelDestination = 0
        // While frames repeat the previous one's addresses (the usual burst), they go to the port
        // NORMAL chose for it (`target`, never a tunnel) without the call into `normal` (which
        // does not inline: it can reach itself through tunnels), the memo and the port's staging
        // count held in registers. Both are written back before anything else may stage.
        var memo = normalMemo
        var target: UnsafeMutablePointer<WorkerPort>? = nil
        var staged = 0
        for i in 0..<count {
            guard let desc = takeReceived(socket, first: first, i, count: count, slot: slot, inPort: inPort, bytes: &bytes) else { continue }
            if tunnelPortCount > 0,
               LISP.mayBeLISP(base + Int(desc.addr), length: Int(desc.len), udpPorts: tunnelUDPPorts, count: tunnelUDPPortCount) {
                if let port = target { port.pointee.stagedCount = Int32(staged); target = nil }
                forward(address: desc.addr, length: desc.len, inPort: inPort, bridge: bridge)
                (tunnelID, tunnelSource, tunnelDestination) = (0, 0, 0)
                continue
            }
            run.packets &+= 1
            run.bytes &+= UInt64(desc.len)
            if let port = target, staged < DatapathLimits.stageCapacity,
               memo.addresses == NormalMemo.addresses(of: base + Int(desc.addr)) {
                port.pointee.staged[staged] = xdp_desc(addr: desc.addr, len: desc.len, options: 0)
                staged &+= 1
                continue
            }
            if let port = target { port.pointee.stagedCount = Int32(staged); target = nil }
            normal(address: desc.addr, length: desc.len, inPort: inPort, bridge: Int(bridge))
            memo = normalMemo
            if memo.bridge == Int(bridge), memo.inPort == inPort, memo.out != MACLearningTable.noPort, memo.out != inPort,
               ports[Int(memo.out)].kind != .lisp, ports[Int(memo.out)].isTouched {
                target = ports + Int(memo.out)
                staged = Int(ports[Int(memo.out)].stagedCount)
            }
        }
        if let port = target { port.pointee.stagedCount = Int32(staged) }
        if let table { addToCounters(run, table) }
        return bytes
    }

    /// The rule every frame gets from a table whose rules look at no field: the lookup of any key.
    @inline(__always)
    func constantPayload(_ table: CompiledFlowTable) -> Int32 {
        key.pointee = FlowKey()
        return table.classifier.lookup(key)
    }

    /// Classifies `count` extracted frames of the burst (all with rule `constant` if given) and
    /// acts on them in order.
    @inline(__always)
    private func classifyAndApply(_ table: CompiledFlowTable, count: Int, inPort: UInt16, bridge: Int32, constant: Int32?) {
        let payloads = burst.payloads
        if let constant {
            payloads.update(repeating: constant, count: count)
        } else {
            cache.lookup(burst: burst.keys, count: count, in: table.classifier, results: payloads)
        }
        var run = RuleRun()
        if table.ruleCount > Self.prefetchingRuleCount {
            // With many rules, each frame's rule entry, counters and actions are cache misses of
            // their own: start every rule entry now, and each frame's counters and first action
            // (found through its rule entry, by then loaded) a few frames ahead of acting on it.
            for j in 0..<count where payloads[j] >= 0 { vs_prefetch(table.rules + Int(payloads[j])) }
            for j in 0..<min(Self.prefetchDistance, count) { prefetchCountersAndActions(table, frame: j, count: count) }
            for j in 0..<count {
                prefetchCountersAndActions(table, frame: j &+ Self.prefetchDistance, count: count)
                act(table, frame: j, inPort: inPort, bridge: bridge, run: &run)
            }
        } else {
            // A small table stays in cache: nothing to prefetch.
            for j in 0..<count { act(table, frame: j, inPort: inPort, bridge: bridge, run: &run) }
        }
        addToCounters(run, table)
    }

    @inline(__always)
    private func prefetchCountersAndActions(_ table: CompiledFlowTable, frame j: Int, count: Int) {
        guard j < count, burst.payloads[j] >= 0 else { return }
        let rule = table.rules + Int(burst.payloads[j])
        vs_prefetch_write(ruleCounters + Int(rule.pointee.counterSlot))
        vs_prefetch(table.actions + Int(rule.pointee.actionStart))
    }

    /// Acts on frame `j` of the burst with the rule it was classified to; drops it on a table miss.
    @inline(__always)
    private func act(_ table: CompiledFlowTable, frame j: Int, inPort: UInt16, bridge: Int32, run: inout RuleRun) {
        let payload = burst.payloads[j]
        let address = burst.addresses[j]
        let length = burst.lengths[j]
        guard payload >= 0 else {
            // Table miss: OpenFlow drops it.
            vs_add_relaxed_u64(&counters[Int(inPort)].rxDropped, 1)
            pool.release(address)
            return
        }
        if payload != run.payload {
            addToCounters(run, table)
            run = RuleRun(payload: payload)
        }
        run.packets &+= 1
        run.bytes &+= UInt64(length)
        tunnelID = 0
        tunnelSource = 0
        tunnelDestination = 0
        execute(table.rules[Int(payload)], table.actions, address: address, length: length, inPort: inPort, bridge: Int(bridge))
    }

    /// Adds a run of frames to its rule's counters.
    @inline(__always)
    private func addToCounters(_ run: RuleRun, _ table: CompiledFlowTable) {
        guard run.packets > 0 else { return }
        let counter = ruleCounters + Int(table.rules[Int(run.payload)].counterSlot)
        vs_add_relaxed_u64(&counter.pointee.packets, run.packets)
        vs_add_relaxed_u64(&counter.pointee.bytes, run.bytes)
        if counter.pointee.lastUsed != now { vs_store_relaxed_u64(&counter.pointee.lastUsed, now) }
    }
}

/// Consecutive frames of a burst that hit the same rule (the usual burst: one busy flow): its
/// counters are updated once per run, not per frame.
struct RuleRun {
    var payload: Int32 = -1
    var packets: UInt64 = 0
    var bytes: UInt64 = 0
}
