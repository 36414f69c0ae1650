import Testing
import VSwiftClassifier
import VSwiftPacket
@testable import VSwiftDatapath

/// A table changed in place (rules added, rules removed) runs exactly like one compiled afresh:
/// same rule for every packet, with the same actions and counter slot.
@Suite("Compiled flow table")
struct CompiledFlowTableTests {
    private static func rule(_ n: Int, priority: UInt16, actions: [FlowAction]) -> DatapathRule {
        var match = Match()
        match.set(.dlType, 0x0800)
        match.set(.nwProto, 17)
        match.set(.tpDst, UInt64(n))
        return DatapathRule(match: match, priority: priority, sequence: UInt64(n), actions: actions, counterSlot: 100 + n)
    }

    private static func packet(_ n: Int) -> FlowKey {
        var key = FlowKey()
        key.set(.dlType, 0x0800)
        key.set(.nwProto, 17)
        key.set(.tpDst, UInt64(n))
        return key
    }

    /// What a packet to `n` runs: counter slot, last output and the compiled actions; nil for no rule.
    private static func behaviour(_ table: CompiledFlowTable, _ n: Int) -> String? {
        var key = packet(n)
        guard let position = table.classifier.lookup(&key).position else { return nil }
        let rule = table.rules[position]
        let actions = (Int(rule.actionStart)..<Int(rule.actionStart + rule.actionCount)).map { i in
            let a = table.actions[i]
            return "\(a.op) \(a.port) \(a.a) \(a.b)"
        }
        return "slot \(rule.counterSlot) last \(rule.lastOutput): \(actions.joined(separator: ", "))"
    }

    @Test func inPlaceChangesRunAsAFreshCompile() throws {
        let slots: [OpenFlowPortNumber: PortSlot] = [1: 10, 2: 11, 3: 12]
        let portSlot = { (ofport: OpenFlowPortNumber) in slots[ofport] }
        var rules = (1...20).map { n in
            Self.rule(n, priority: UInt16(n % 3), actions: n % 2 == 0 ? [.modTpDst(7), .output(1), .output(2)] : [.output(3)])
        }
        var table = try CompiledFlowTable(rules: rules, portSlot: portSlot)
        let added = (21...26).map { n in Self.rule(n, priority: 9, actions: [.modNwTos(8), .output(UInt32(n % 3 + 1)), .normal]) }
            + [Self.rule(27, priority: 1, actions: [.output(9), .decTTL])]  // output to no port compiles to nothing
        table = try CompiledFlowTable(table, adding: added, portSlot: portSlot)
        rules += added
        let removedNumbers = [4, 22]
        table = try #require(CompiledFlowTable(
            table, removing: removedNumbers.map { Self.rule($0, priority: 0, actions: []).match },
            counterSlots: Set(removedNumbers.map { 100 + $0 })))
        rules.removeAll { removedNumbers.contains(Int($0.sequence)) }
        #expect(table.liveRules == rules.count)

        let fresh = try CompiledFlowTable(rules: rules, portSlot: portSlot)
        for n in 0...30 {
            #expect(Self.behaviour(table, n) == Self.behaviour(fresh, n), "packet to port \(n)")
        }
        #expect(Self.behaviour(table, 4) == nil)
        #expect(Self.behaviour(table, 21) != nil)
        // A rule that is not the one the classifier holds for its match is refused.
        #expect(CompiledFlowTable(table, removing: [Self.rule(5, priority: 0, actions: []).match], counterSlots: [999]) == nil)
    }
}
