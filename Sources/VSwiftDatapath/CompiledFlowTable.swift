import VSwiftClassifier
import VSwiftPacket

/// Operation codes of compiled actions: what a worker executes per packet.
enum ActionOp: UInt8 {
    case output          // port slot in `port`
    case normal
    case flood
    case all
    case setDlSrc        // a = MAC
    case setDlDst
    case setNwSrc        // a = IPv4
    case setNwDst
    case setNwTos        // a = DSCP byte (low 2 bits 0)
    case setNwEcn        // a = ECN (0...3)
    case setNwTTL        // a = TTL
    case setTpSrc        // a = port
    case setTpDst
    case setVlanVid      // a = VID
    case setVlanPcp      // a = PCP
    case stripVlan
    case pushVlan        // a = TPID
    case decTTL
    case setIPv6Src      // a = high, b = low
    case setIPv6Dst
    case setIPv6Label    // a = flow label (20 bits)
    case setArpOp        // a = opcode
    case setArpSpa       // a = IPv4
    case setArpTpa
    case setArpSha       // a = MAC
    case setArpTha
    case setTunId        // a = id
    case setTunSrc       // a = IPv4
    case setTunDst
}

/// One action ready for the packet path: plain data, no enums with payloads, no references.
struct CompiledAction {
    var op: ActionOp
    /// Output: the port's slot; `.inputPort` for IN_PORT (resolved per packet).
    var port = PortSlot(rawValue: 0)
    var a: UInt64 = 0
    var b: UInt64 = 0
}

/// Per rule: where its actions are, where its counters are, and which action is the last one
/// that sends the packet somewhere (earlier ones get a copy; that one gets the frame itself).
struct CompiledRule {
    var actionStart: Int32
    var actionCount: Int32
    var counterSlot: Int32
    var lastOutput: Int32
}

/// One published version of a bridge's flow table: the classifier plus compiled rules and actions.
/// Immutable once built; workers read it through raw pointers while the datapath keeps it alive.
// @unchecked: raw memory written only in `init`; immutable once published, so any thread may read it.
package final class CompiledFlowTable: @unchecked Sendable {
    let classifier: ClassifierTable
    let rules: UnsafeMutablePointer<CompiledRule>
    let actions: UnsafeMutablePointer<CompiledAction>
    let ruleCount: Int
    let actionCount: Int
    /// No rule looks past L2: the worker extracts only the Ethernet header and tags
    /// (`FlowExtractor.extractLinkLayer`). Never with `xdpFlowCache` (the exact-match cache's key
    /// then holds nw_proto and nw_frag, which only a whole extraction fills).
    let linkLayerOnly: Bool
    /// Compiled for a datapath with the XDP flow cache: the exact-match cache keys on the megaflow
    /// shape too (`flowCacheExactMatchBits`), so each XDP entry's flows miss it once and are
    /// handed over. Kept by every table derived from this one.
    let xdpFlowCache: Bool
    /// Rules the classifier can return: `ruleCount` less those removed in place (whose compiled
    /// rules stay, unreachable, until the next full compile).
    let liveRules: Int

    /// `portSlot` maps an OpenFlow port number of this bridge to a datapath port slot (nil: no such
    /// port — output to it is dropped, as OVS does); `localSlot` is the bridge's internal port.
    package convenience init(rules source: [DatapathRule], portSlot: (OpenFlowPortNumber) -> PortSlot?,
                             xdpFlowCache: Bool = false) throws(DatapathError) {
        try self.init(count: source.count, rule: { source[$0] }, match: { source[$0].match }, portSlot: portSlot,
                      xdpFlowCache: xdpFlowCache)
    }

    /// The table of `count` rules, rule i read from `ruleAt(i)` (several times: it must give the
    /// same rule each time).
    /// `matchAt(i)` is rule i's match alone: the classifier reads each match several
    /// times, and a whole rule each time would touch its actions (a cold reference count) too.
    init(
        count: Int, rule ruleAt: (Int) -> DatapathRule, match matchAt: (Int) -> Match,
        portSlot: (OpenFlowPortNumber) -> PortSlot?, xdpFlowCache: Bool = false
    ) throws(DatapathError) {
        var compiled: [CompiledRule] = []
        var priorities: [UInt16] = []
        var sequences: [UInt64] = []
        priorities.reserveCapacity(count)
        sequences.reserveCapacity(count)
        var program: [CompiledAction] = []
        compiled.reserveCapacity(count)
        var looksPastLinkLayer = false
        for index in 0..<count {
            let rule = ruleAt(index)
            priorities.append(rule.priority)
            sequences.append(rule.sequence)
            if !looksPastLinkLayer && FlowExtractor.looksPastLinkLayer(rule.match.mask) { looksPastLinkLayer = true }
            let counterSlot = rule.counterSlot
            guard counterSlot >= 0 && counterSlot < DatapathLimits.maxRules else {
                throw .unsupported("rule counter slot \(counterSlot) out of range")
            }
            let start = program.count
            var lastOutput: Int32 = -1
            for action in rule.actions {
                guard let op = try Self.compile(action, portSlot: portSlot) else { continue }
                if op.op == .output || op.op == .normal || op.op == .flood || op.op == .all {
                    lastOutput = Int32(program.count - start)
                }
                program.append(op)
            }
            compiled.append(CompiledRule(
                actionStart: Int32(start), actionCount: Int32(program.count - start),
                counterSlot: Int32(counterSlot), lastOutput: lastOutput))
        }
        // Read from the rules in place: an array of a million entries would copy every match.
        let exactMatchAlso = xdpFlowCache ? Self.flowCacheExactMatchBits(program[...]) : FlowKey()
        classifier = ClassifierTable(count: count, exactMatchAlso: exactMatchAlso) { index in
            ClassifierEntry(match: matchAt(index), priority: priorities[index], sequence: sequences[index], rule: RuleIndex(index))
        }
        self.xdpFlowCache = xdpFlowCache
        linkLayerOnly = !looksPastLinkLayer && !xdpFlowCache
        ruleCount = compiled.count
        liveRules = compiled.count
        actionCount = program.count
        rules = .allocate(capacity: max(compiled.count, 1))
        rules.initialize(from: compiled, count: compiled.count)
        actions = .allocate(capacity: max(program.count, 1))
        actions.initialize(from: program, count: program.count)
    }

    /// `old` with `source` added (all new flows, none replacing one of `old`'s, each with a
    /// higher sequence than every rule of `old`): `old`'s rules and actions are copied as compiled,
    /// the classifier is extended (`ClassifierTable(_:adding:)`), and only the new rules are compiled.
    init(_ old: CompiledFlowTable, adding source: [DatapathRule], portSlot: (OpenFlowPortNumber) -> PortSlot?) throws(DatapathError) {
        var compiled: [CompiledRule] = []
        var program: [CompiledAction] = []
        var entries: [ClassifierEntry] = []
        compiled.reserveCapacity(source.count)
        entries.reserveCapacity(source.count)
        for rule in source {
            guard rule.counterSlot >= 0 && rule.counterSlot < DatapathLimits.maxRules else {
                throw .unsupported("rule counter slot \(rule.counterSlot) out of range")
            }
            let start = old.actionCount + program.count
            var lastOutput: Int32 = -1
            for action in rule.actions {
                guard let op = try Self.compile(action, portSlot: portSlot) else { continue }
                if op.op == .output || op.op == .normal || op.op == .flood || op.op == .all {
                    lastOutput = Int32(old.actionCount + program.count - start)
                }
                program.append(op)
            }
            entries.append(ClassifierEntry(
                match: rule.match, priority: rule.priority, sequence: rule.sequence,
                rule: RuleIndex(old.ruleCount + compiled.count)))
            compiled.append(CompiledRule(
                actionStart: Int32(start), actionCount: Int32(old.actionCount + program.count - start),
                counterSlot: Int32(rule.counterSlot), lastOutput: lastOutput))
        }
        classifier = ClassifierTable(old.classifier, adding: entries,
                                     exactMatchAlso: old.xdpFlowCache ? Self.flowCacheExactMatchBits(program[...]) : FlowKey())
        xdpFlowCache = old.xdpFlowCache
        linkLayerOnly = old.linkLayerOnly && !source.contains { FlowExtractor.looksPastLinkLayer($0.match.mask) }
        ruleCount = old.ruleCount + compiled.count
        liveRules = old.liveRules + compiled.count
        actionCount = old.actionCount + program.count
        rules = .allocate(capacity: max(ruleCount, 1))
        rules.initialize(from: old.rules, count: old.ruleCount)
        (rules + old.ruleCount).initialize(from: compiled, count: compiled.count)
        actions = .allocate(capacity: max(actionCount, 1))
        actions.initialize(from: old.actions, count: old.actionCount)
        (actions + old.actionCount).initialize(from: program, count: program.count)
    }

    /// `old` without the rules that match `matches` and count in `counterSlots` (one each), or nil
    /// when one is not the rule the classifier returns for its match (see
    /// `ClassifierTable(_:removing:where:)`). The compiled rules are copied as they are; the
    /// removed ones become unreachable.
    init?(_ old: CompiledFlowTable, removing matches: [Match], counterSlots: Set<Int>) {
        guard let classifier = ClassifierTable(old.classifier, removing: matches, where: { rule in
            guard let position = rule.position, position < old.ruleCount else { return false }
            return counterSlots.contains(Int(old.rules[position].counterSlot))
        }) else { return nil }
        self.classifier = classifier
        xdpFlowCache = old.xdpFlowCache
        // Still right without the removed rules (at worst it parses more than it must).
        linkLayerOnly = old.linkLayerOnly
        ruleCount = old.ruleCount
        liveRules = old.liveRules - matches.count
        actionCount = old.actionCount
        rules = .allocate(capacity: max(ruleCount, 1))
        rules.initialize(from: old.rules, count: ruleCount)
        actions = .allocate(capacity: max(actionCount, 1))
        actions.initialize(from: old.actions, count: actionCount)
    }

    /// `old` with every output to port slot `removedSlot` dropped, as if compiled again without
    /// that port (the classifier is shared: it does not depend on ports). Used when a port goes
    /// away, so the datapath need not keep the rules a table was compiled from.
    init(_ old: CompiledFlowTable, removingPortSlot removedSlot: PortSlot) {
        var program: [CompiledAction] = []
        program.reserveCapacity(old.actionCount)
        let compiled = UnsafeMutablePointer<CompiledRule>.allocate(capacity: max(old.ruleCount, 1))
        for index in 0..<old.ruleCount {
            let rule = old.rules[index]
            let start = program.count
            var lastOutput: Int32 = -1
            for position in Int(rule.actionStart)..<Int(rule.actionStart) + Int(rule.actionCount) {
                let action = old.actions[position]
                if action.op == .output && action.port == removedSlot { continue }
                if action.op == .output || action.op == .normal || action.op == .flood || action.op == .all {
                    lastOutput = Int32(program.count - start)
                }
                program.append(action)
            }
            (compiled + index).initialize(to: CompiledRule(
                actionStart: Int32(start), actionCount: Int32(program.count - start),
                counterSlot: rule.counterSlot, lastOutput: lastOutput))
        }
        classifier = old.classifier
        xdpFlowCache = old.xdpFlowCache
        linkLayerOnly = old.linkLayerOnly
        ruleCount = old.ruleCount
        liveRules = old.liveRules
        rules = compiled
        actionCount = program.count
        actions = .allocate(capacity: max(program.count, 1))
        actions.initialize(from: program, count: program.count)
    }

    deinit {
        rules.deallocate()
        actions.deallocate()
    }

    /// nil for an action that compiles to nothing (output to a port that does not exist).
    private static func compile(_ action: FlowAction, portSlot: (OpenFlowPortNumber) -> PortSlot?) throws(DatapathError) -> CompiledAction? {
        switch action {
        case .output(let ofport):
            guard let slot = portSlot(OpenFlowPortNumber(rawValue: ofport)) else { return nil }
            return CompiledAction(op: .output, port: slot)
        case .local:
            guard let slot = portSlot(OpenFlowPortNumber(rawValue: OpenFlowPort.local)) else { return nil }
            return CompiledAction(op: .output, port: slot)
        case .inPort:
            // Resolved per packet: the input port.
            return CompiledAction(op: .output, port: .inputPort)
        case .normal: return CompiledAction(op: .normal)
        case .flood: return CompiledAction(op: .flood)
        case .all: return CompiledAction(op: .all)
        case .modDlSrc(let mac): return CompiledAction(op: .setDlSrc, a: mac)
        case .modDlDst(let mac): return CompiledAction(op: .setDlDst, a: mac)
        case .modNwSrc(let ip): return CompiledAction(op: .setNwSrc, a: UInt64(ip))
        case .modNwDst(let ip): return CompiledAction(op: .setNwDst, a: UInt64(ip))
        case .modNwTos(let tos): return CompiledAction(op: .setNwTos, a: UInt64(tos))
        case .modNwEcn(let ecn): return CompiledAction(op: .setNwEcn, a: UInt64(ecn))
        case .modTpSrc(let port): return CompiledAction(op: .setTpSrc, a: UInt64(port))
        case .modTpDst(let port): return CompiledAction(op: .setTpDst, a: UInt64(port))
        case .modVlanVid(let vid): return CompiledAction(op: .setVlanVid, a: UInt64(vid))
        case .modVlanPcp(let pcp): return CompiledAction(op: .setVlanPcp, a: UInt64(pcp))
        case .stripVlan: return CompiledAction(op: .stripVlan)
        case .pushVlan(let tpid): return CompiledAction(op: .pushVlan, a: UInt64(tpid))
        case .decTTL: return CompiledAction(op: .decTTL)
        case .setIPv6Src(let hi, let lo): return CompiledAction(op: .setIPv6Src, a: hi, b: lo)
        case .setIPv6Dst(let hi, let lo): return CompiledAction(op: .setIPv6Dst, a: hi, b: lo)
        case .setTunnel(let id): return CompiledAction(op: .setTunId, a: id)
        case .setSharedField(let field, let value):
            switch field {
            case .ipDscp: return CompiledAction(op: .setNwTos, a: (value << 2) & 0xfc)
            case .nwEcn: return CompiledAction(op: .setNwEcn, a: value & 3)
            case .arpOp: return CompiledAction(op: .setArpOp, a: value)
            case .arpSpa: return CompiledAction(op: .setArpSpa, a: value)
            case .arpTpa: return CompiledAction(op: .setArpTpa, a: value)
            }
        case .setField(let field, let value):
            switch field {
            case .dlSrc: return CompiledAction(op: .setDlSrc, a: value)
            case .dlDst: return CompiledAction(op: .setDlDst, a: value)
            case .nwSrc: return CompiledAction(op: .setNwSrc, a: value)
            case .nwDst: return CompiledAction(op: .setNwDst, a: value)
            case .nwTos: return CompiledAction(op: .setNwTos, a: value & 0xfc)
            case .nwTTL: return CompiledAction(op: .setNwTTL, a: value)
            case .tpSrc: return CompiledAction(op: .setTpSrc, a: value)
            case .tpDst: return CompiledAction(op: .setTpDst, a: value)
            case .vlanTCI:
                // set_field:VALUE->vlan_tci: VID and PCP from the value; without the present bit, strip.
                if value & FlowConstants.vlanPresent == 0 { return CompiledAction(op: .stripVlan) }
                return CompiledAction(op: .setVlanVid, a: value & 0x0fff, b: (value >> 13) & 0x7 | 0x100)
            case .ipv6Label: return CompiledAction(op: .setIPv6Label, a: value)
            case .arpSha: return CompiledAction(op: .setArpSha, a: value)
            case .arpTha: return CompiledAction(op: .setArpTha, a: value)
            case .tunId: return CompiledAction(op: .setTunId, a: value)
            case .tunSrc: return CompiledAction(op: .setTunSrc, a: value)
            case .tunDst: return CompiledAction(op: .setTunDst, a: value)
            default:
                throw .unsupported("set_field on \(field.rawValue) is not supported by the datapath")
            }
        }
    }
}
