// Revalidation against random tables and random changes (issue 17): after a change, the entries
// kept are right for every frame they cover in the new table, the entries removed were changed,
// and the cache (kept entries plus fresh installs) never holds two overlapping entries. Seeds:
//     VSWIFT_TEST_SEED=0x… swift test --skip-build --filter RevalidationPropertyTests
import Testing
import VSwiftClassifier
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftFlowCache

private func randomKey(_ rng: inout SplitMix64) -> FlowKey {
    var key = FlowKey()
    key.set(.inPort, UInt64.random(in: 1...3, using: &rng))
    key.set(.dlType, [0x0800, 0x0800, 0x0806, 0x86dd].randomElement(using: &rng)!)
    key.set(.dlDst, UInt64.random(in: 1...3, using: &rng))
    key.set(.nwSrc, 0x0a00_0000 | UInt64.random(in: 0...15, using: &rng))
    key.set(.nwDst, 0x0a01_0000 | UInt64.random(in: 0...15, using: &rng))
    key.set(.nwProto, [6, 17].randomElement(using: &rng)!)
    key.set(.nwTTL, UInt64.random(in: 1...3, using: &rng))
    key.set(.tpDst, [53, 80, 443].randomElement(using: &rng)!)
    return key
}

private func randomRule(id: UInt64, _ rng: inout SplitMix64) -> TestFlowTable.Rule {
    let template = randomKey(&rng)
    var match = Match()
    if Int.random(in: 0..<3, using: &rng) == 0 { match.set(.inPort, template.get(.inPort)) }
    if Int.random(in: 0..<3, using: &rng) == 0 { match.set(.dlType, template.get(.dlType)) }
    if Int.random(in: 0..<4, using: &rng) == 0 { match.set(.dlDst, template.get(.dlDst)) }
    if Bool.random(using: &rng) {
        match.set(.nwSrc, template.get(.nwSrc), mask: [0xffff_ffff, 0xffff_fffc, 0xffff_fff0].randomElement(using: &rng)!)
    }
    if Int.random(in: 0..<3, using: &rng) == 0 { match.set(.nwDst, template.get(.nwDst)) }
    if Int.random(in: 0..<4, using: &rng) == 0 { match.set(.tpDst, template.get(.tpDst)) }
    let actions: [[FlowAction]] = [[], [.output(2)], [.output(3)], [.modDlDst(7), .output(1)], [.decTTL, .output(2)], [.normal]]
    return TestFlowTable.Rule(id: id, priority: UInt16.random(in: 0...4, using: &rng) * 10, match: match,
                              actions: actions.randomElement(using: &rng)!)
}

/// Do two entries cover a common frame? (Equal on the bits both masks keep.)
private func overlap(_ a: CachedFlow, _ b: CachedFlow) -> Bool {
    (0..<FlowKey.wordCount).allSatisfy { w in
        let both = a.mask[word: w] & b.mask[word: w]
        return a.maskedKey[word: w] & both == b.maskedKey[word: w] & both
    }
}

private func keyInside(_ flow: CachedFlow, _ rng: inout SplitMix64) -> FlowKey {
    let other = randomKey(&rng)
    var key = FlowKey()
    for w in 0..<FlowKey.wordCount { key[word: w] = flow.maskedKey[word: w] | (other[word: w] & ~flow.mask[word: w]) }
    return key
}

@Suite struct RevalidationPropertyTests {
    @Test func keptEntriesAreRightRemovedOnesChangedAndNoneOverlap() {
        var rng = SplitMix64(seed: TestSeed.resolve(0x5e7a))
        var failures = 0
        func fail(_ message: String) {
            failures += 1
            if failures <= 3 { Issue.record("\(message) (\(TestSeed.replay(rng.seed)))") }
        }
        var nextID: UInt64 = 0
        for _ in 0..<40 {
            var rules = (0..<Int.random(in: 1...25, using: &rng)).map { _ in
                nextID += 1
                return randomRule(id: nextID, &rng)
            }
            let before = TestFlowTable(rules)
            var cache = MegaflowTable(capacity: 10_000, version: before.table.version)
            for _ in 0..<200 {
                if case .install(let flow) = before.view.decide(randomKey(&rng)) { _ = cache.install(flow, now: 0) }
            }
            // One to three changes: add, delete, or change a rule's actions (mod-flows).
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                switch Int.random(in: 0..<3, using: &rng) {
                case 0:
                    nextID += 1
                    rules.append(randomRule(id: nextID, &rng))
                case 1 where rules.count > 1:
                    rules.remove(at: Int.random(in: 0..<rules.count, using: &rng))
                default:
                    let i = Int.random(in: 0..<rules.count, using: &rng)
                    rules[i].actions = randomRule(id: 0, &rng).actions
                }
            }
            let after = TestFlowTable(rules)
            let previous = cache.all
            let removed = cache.revalidate(after.view)
            if removed.count + cache.count != previous.count { fail("entries lost: \(previous.count) → \(removed.count) + \(cache.count)") }
            for entry in removed {
                if case .install(let fresh) = after.view.decide(entry.flow.maskedKey), fresh.sameResult(as: entry.flow) {
                    fail("removed an unchanged entry")
                }
            }
            for entry in cache.all {
                for _ in 0..<10 {
                    let key = keyInside(entry.flow, &rng)
                    let rule = after.scan(key)
                    if rule?.id != entry.flow.ruleID || (rule?.actions ?? []) != entry.flow.actions {
                        fail("kept entry of rule \(String(describing: entry.flow.ruleID)) is wrong for \(key): now \(String(describing: rule?.id))")
                    }
                }
            }
            // Fresh installs of the new version next to what was kept: never an overlap.
            for _ in 0..<100 {
                if case .install(let flow) = after.view.decide(randomKey(&rng)) { _ = cache.install(flow, now: 0) }
            }
            let all = cache.all
            for i in all.indices {
                for j in all.indices where j > i && overlap(all[i].flow, all[j].flow) { fail("entries \(i) and \(j) overlap") }
            }
        }
        #expect(failures == 0, "\(TestSeed.replay(rng.seed))")
    }
}
