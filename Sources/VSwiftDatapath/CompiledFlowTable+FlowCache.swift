import VSwiftClassifier
import VSwiftPacket

/// The flow cache's view of a published table: each rule's actions back as `FlowAction`s (what
/// `FlowCacheView.decide` and `XDPCacheability` read), from the compiled program the workers run,
/// so an entry is computed from exactly what a worker would execute.
extension CompiledFlowTable {
    /// Rule `index`'s identity (its counter slot: stable while the rule lives, since counters
    /// belong to the rule) and its actions as the workers execute them. An output to a slot no
    /// OpenFlow number names (`ofport(slot)` nil) becomes an output to a reserved number, which
    /// no cache entry carries.
    func cacheRule(_ index: RuleIndex, ofport: (PortSlot) -> UInt32?) -> (id: UInt64, actions: [FlowAction]) {
        guard let position = index.position, position < ruleCount else { return (0, []) }
        let rule = rules[position]
        var result: [FlowAction] = []
        result.reserveCapacity(Int(rule.actionCount))
        for i in 0..<Int(rule.actionCount) {
            let action = actions[Int(rule.actionStart) + i]
            let a = action.a
            switch action.op {
            case .output:
                if action.port == .inputPort {
                    result.append(.inPort)
                } else {
                    result.append(.output(ofport(action.port) ?? OpenFlowPort.max))
                }
            case .normal: result.append(.normal)
            case .flood: result.append(.flood)
            case .all: result.append(.all)
            case .setDlSrc: result.append(.modDlSrc(a))
            case .setDlDst: result.append(.modDlDst(a))
            case .setNwSrc: result.append(.modNwSrc(UInt32(truncatingIfNeeded: a)))
            case .setNwDst: result.append(.modNwDst(UInt32(truncatingIfNeeded: a)))
            case .setNwTos: result.append(.modNwTos(UInt8(truncatingIfNeeded: a)))
            case .setNwEcn: result.append(.modNwEcn(UInt8(truncatingIfNeeded: a)))
            case .setNwTTL: result.append(.setField(.nwTTL, a))
            case .setTpSrc: result.append(.modTpSrc(UInt16(truncatingIfNeeded: a)))
            case .setTpDst: result.append(.modTpDst(UInt16(truncatingIfNeeded: a)))
            case .setVlanVid: result.append(.modVlanVid(UInt16(truncatingIfNeeded: a)))
            case .setVlanPcp: result.append(.modVlanPcp(UInt8(truncatingIfNeeded: a)))
            case .stripVlan: result.append(.stripVlan)
            case .pushVlan: result.append(.pushVlan(UInt16(truncatingIfNeeded: a)))
            case .decTTL: result.append(.decTTL)
            case .setIPv6Src: result.append(.setIPv6Src(a, action.b))
            case .setIPv6Dst: result.append(.setIPv6Dst(a, action.b))
            case .setIPv6Label: result.append(.setField(.ipv6Label, a))
            case .setArpOp: result.append(.setSharedField(.arpOp, a))
            case .setArpSpa: result.append(.setSharedField(.arpSpa, a))
            case .setArpTpa: result.append(.setSharedField(.arpTpa, a))
            case .setArpSha: result.append(.setField(.arpSha, a))
            case .setArpTha: result.append(.setField(.arpTha, a))
            case .setTunId: result.append(.setTunnel(a))
            case .setTunSrc: result.append(.setField(.tunSrc, a))
            case .setTunDst: result.append(.setField(.tunDst, a))
            }
        }
        return (UInt64(rule.counterSlot), result)
    }

    /// What the exact-match cache keys on beyond the rules' masks when the XDP flow cache is on:
    /// the megaflow shape (`FlowShape.anyShapeMask`) and, when an action decrements the TTL, nw_ttl
    /// (`XDPCacheability` puts it in such an entry's mask). An XDP entry's mask never holds more
    /// of a device port's key than the rules' union and these (tun_id, the other extra bit, is 0
    /// for every frame a device port receives), so two keys sharing an exact-match entry share
    /// their XDP entry: none stays on the workers' path for want of a miss to hand over.
    static func flowCacheExactMatchBits(_ program: ArraySlice<CompiledAction>) -> FlowKey {
        var bits = FlowShape.anyShapeMask
        if program.contains(where: { $0.op == .decTTL }) { bits.set(.nwTTL, FlowField.nwTTL.layout.valueMask) }
        return bits
    }

    /// Rule `index`'s counter slot (where the kernel path's packets are counted), nil for a miss.
    func counterSlot(_ index: RuleIndex) -> Int? {
        guard let position = index.position, position < ruleCount else { return nil }
        return Int(rules[position].counterSlot)
    }
}
