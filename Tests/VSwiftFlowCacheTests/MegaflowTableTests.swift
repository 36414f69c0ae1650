import Testing
import VSwiftClassifier
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftFlowCache

/// A flow table as the control plane holds it: rules with stable ids, built into a classifier
/// whose RuleIndex is the position in `rules`.
struct TestFlowTable {
    struct Rule {
        var id: UInt64
        var priority: UInt16
        var match: Match
        var actions: [FlowAction]
    }

    var rules: [Rule]
    let table: ClassifierTable

    init(_ rules: [Rule]) {
        self.rules = rules
        table = ClassifierTable(rules.enumerated().map { i, r in
            ClassifierEntry(match: r.match, priority: r.priority, sequence: r.id, rule: RuleIndex(i))
        })
    }

    /// Ports 1...8 are devices, anything else absent.
    var view: FlowCacheView {
        let rules = self.rules
        return FlowCacheView(
            table: table, rule: { (rules[$0.position!].id, rules[$0.position!].actions) },
            port: { $0 >= 1 && $0 <= 8 ? CachePort(kind: .device) : CachePort(kind: .absent) })
    }

    /// The reference: the winning rule by a scan (priority, then the lower id).
    func scan(_ key: FlowKey) -> Rule? {
        var best: Rule?
        for r in rules where r.match.matches(key) {
            if let b = best, b.priority > r.priority || (b.priority == r.priority && b.id < r.id) { continue }
            best = r
        }
        return best
    }
}

private func ipKey(inPort: UInt64 = 1, dst: UInt64, tpDst: UInt64 = 80) -> FlowKey {
    var key = FlowKey()
    key.set(.inPort, inPort)
    key.set(.dlType, 0x0800)
    key.set(.nwProto, 6)
    key.set(.nwDst, dst)
    key.set(.tpDst, tpDst)
    return key
}

private func match(_ set: (inout Match) -> Void) -> Match {
    var m = Match()
    set(&m)
    return m
}

private func installed(_ decision: CacheDecision) -> CachedFlow {
    guard case .install(let flow) = decision else { fatalError("not cacheable: \(decision)") }
    return flow
}

@Suite struct MegaflowTableTests {
    let ruleA = TestFlowTable.Rule(id: 1, priority: 10, match: match { $0.set(.nwDst, 0x0a00_0001) }, actions: [.output(2)])
    let ruleB = TestFlowTable.Rule(id: 2, priority: 5, match: match { $0.set(.dlType, 0x0800) }, actions: [.output(3)])

    /// Entries for dst 10.0.0.1 (rule A) and 10.0.0.2 (rule B), table version 1.
    func twoEntries() -> (TestFlowTable, MegaflowTable) {
        let flows = TestFlowTable([ruleA, ruleB])
        var cache = MegaflowTable(capacity: 16, version: flows.table.version)
        for dst: UInt64 in [0x0a00_0001, 0x0a00_0002] {
            #expect(cache.install(installed(flows.view.decide(ipKey(dst: dst))), now: 0) == .installed)
        }
        return (flows, cache)
    }

    @Test func changedActionsRemoveExactlyTheEntriesOfThatRule() {
        var (_, cache) = twoEntries()
        var changed = ruleA
        changed.actions = [.output(4)]
        let next = TestFlowTable([changed, ruleB])
        let removed = cache.revalidate(next.view)
        #expect(removed.map(\.flow.ruleID) == [1])
        #expect(cache.count == 1)
        #expect(cache.version == next.table.version)
        #expect(cache.all.allSatisfy { $0.flow.version == next.table.version })
    }

    @Test func anUnrelatedRuleWithTheSameMasksKeepsEveryEntry() {
        var (_, cache) = twoEntries()
        // Same subtables (masks) as before, a key no entry covers.
        let other = TestFlowTable.Rule(id: 3, priority: 10, match: match { $0.set(.nwDst, 0x0a00_0009) }, actions: [.output(5)])
        let next = TestFlowTable([ruleA, ruleB, other])
        #expect(cache.revalidate(next.view).isEmpty)
        #expect(cache.count == 2)
        // Rule indices move with the new table; kept entries follow.
        let reordered = TestFlowTable([other, ruleB, ruleA])
        #expect(cache.revalidate(reordered.view).isEmpty)
        #expect(cache.entry(mask: cache.all[0].flow.mask, maskedKey: cache.all[0].flow.maskedKey)!.flow.rule
            == (cache.all[0].flow.ruleID == 1 ? RuleIndex(2) : RuleIndex(1)))
    }

    @Test func aNewRuleThatWinsOrWidensTheSearchRemovesWhatItChanges() {
        var (_, cache) = twoEntries()
        // Higher priority, a new subtable searched first by every key: every mask grows.
        let c = TestFlowTable.Rule(id: 3, priority: 20, match: match { $0.set(.tpDst, 443) }, actions: [])
        let next = TestFlowTable([ruleA, ruleB, c])
        #expect(cache.revalidate(next.view).count == 2)
        #expect(cache.count == 0)
    }

    @Test func deletingARuleRemovesItsEntries() {
        var (_, cache) = twoEntries()
        let next = TestFlowTable([ruleB])
        let removed = cache.revalidate(next.view)
        // A's entry goes (its rule is gone); B's too: without A's subtable its megaflow is wider.
        #expect(Set(removed.compactMap(\.flow.ruleID)) == [1, 2])
    }

    @Test func anEntryFromAnOlderVersionIsNeverInstalled() {
        var (flows, cache) = twoEntries()
        let old = installed(flows.view.decide(ipKey(dst: 0x0a00_0003)))
        flows = TestFlowTable([ruleA, ruleB])
        _ = cache.revalidate(flows.view)
        #expect(cache.install(old, now: 0) == .stale)
        #expect(cache.statistics.refusedStale == 1)
        #expect(cache.install(installed(flows.view.decide(ipKey(dst: 0x0a00_0003))), now: 0) == .installed)
    }

    @Test func duplicatesAndAFullTableAreRefusedAndCounted() {
        let flows = TestFlowTable([ruleA, ruleB])
        var cache = MegaflowTable(capacity: 2, version: flows.table.version)
        let flow = installed(flows.view.decide(ipKey(dst: 0x0a00_0002)))
        #expect(cache.install(flow, now: 0) == .installed)
        #expect(cache.install(flow, now: 0) == .duplicate)
        #expect(cache.install(installed(flows.view.decide(ipKey(dst: 0x0a00_0001))), now: 0) == .installed)
        #expect(cache.install(installed(flows.view.decide(ipKey(inPort: 2, dst: 0x0a00_0001))), now: 0) == .full)
        #expect(cache.count == 2)
        #expect(cache.statistics.refusedFull == 1 && cache.statistics.refusedDuplicate == 1 && cache.statistics.installed == 2)
    }

    @Test func aPortChangeRemovesTheEntriesArrivingOnItOrSendingToIt() {
        var (flows, cache) = twoEntries()
        #expect(cache.install(installed(flows.view.decide(ipKey(inPort: 3, dst: 0x0a00_0001))), now: 0) == .installed)
        #expect(cache.count == 3)
        // Port 3: rule B's output, and the input of the third entry.
        let removed = cache.removeTouching(port: 3)
        #expect(removed.count == 2)
        #expect(cache.all.map(\.flow.ruleID) == [1])
        #expect(cache.all[0].flow.inPort == 1)
        // An output to a port that does not exist yet is recorded: adding port 9 changes the result.
        flows = TestFlowTable([TestFlowTable.Rule(id: 7, priority: 1, match: Match(), actions: [.output(9)])])
        var other = MegaflowTable(capacity: 4, version: flows.table.version)
        #expect(other.install(installed(flows.view.decide(ipKey(dst: 1))), now: 0) == .installed)
        #expect(other.removeTouching(port: 9).count == 1)
    }

    @Test func idleEntriesExpireAndCountersFoldAsDeltas() {
        var (_, cache) = twoEntries()
        let a = cache.all.first { $0.flow.ruleID == 1 }!.flow
        #expect(cache.noteCounters(mask: a.mask, maskedKey: a.maskedKey, packets: 10, bytes: 640, now: 5_000)! == (10, 640))
        #expect(cache.noteCounters(mask: a.mask, maskedKey: a.maskedKey, packets: 12, bytes: 768, now: 6_000)! == (2, 128))
        // No new packets: not used now.
        #expect(cache.noteCounters(mask: a.mask, maskedKey: a.maskedKey, packets: 12, bytes: 768, now: 9_000)! == (0, 0))
        let expired = cache.expireIdle(now: 10_000, idle: 5_000)
        #expect(expired.map(\.flow.ruleID) == [2])
        #expect(cache.count == 1)
        #expect(cache.expireIdle(now: 11_000, idle: 5_000).map(\.flow.ruleID) == [1])
        #expect(cache.statistics.removedIdle == 2)
        #expect(cache.noteCounters(mask: a.mask, maskedKey: a.maskedKey, packets: 1, bytes: 1, now: 0) == nil)
    }
}
