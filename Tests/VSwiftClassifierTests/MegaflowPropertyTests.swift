// The megaflow property (issue 17): for a key k classified to rule r with megaflow mask m, every
// key k' with k' & m == k & m classifies to r as well, and has the same megaflow. Random rule sets
// (overlapping priorities, wildcards, prefixes), random keys, then random keys inside each megaflow
// (the wildcarded bits randomised), against a linear scan. Seeds as in ClassifierPropertyTests:
//     VSWIFT_TEST_SEED=0x… swift test --skip-build --filter MegaflowPropertyTests
import Testing
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftClassifier

/// Small value domains so that random rules overlap and random keys hit them.
private func randomKey(_ rng: inout SplitMix64) -> FlowKey {
    var key = FlowKey()
    key.set(.inPort, UInt64.random(in: 1...3, using: &rng))
    key.set(.dlType, [0x0800, 0x0806, 0x86dd, 0x0800].randomElement(using: &rng)!)
    key.set(.vlanTCI, Bool.random(using: &rng) ? 0 : 0x1000 | UInt64.random(in: 1...3, using: &rng))
    key.set(.dlSrc, [0x0200_0000_0001, 0x0200_0000_0002].randomElement(using: &rng)!)
    key.set(.dlDst, [0x0200_0000_0000, 0x5254_00b8_2775, 0xffff_ffff_ffff, 0x0100_5e00_0001].randomElement(using: &rng)!)
    key.set(.nwSrc, 0x0a01_0100 | UInt64.random(in: 0...7, using: &rng) << 5 | UInt64.random(in: 0...3, using: &rng))
    key.set(.nwDst, 0x0a01_0200 | UInt64.random(in: 0...255, using: &rng))
    key.set(.nwProto, [6, 17, 1].randomElement(using: &rng)!)
    key.set(.nwTTL, UInt64.random(in: 1...3, using: &rng))
    key.set(.nwFrag, [0, 0, 0, 1, 3].randomElement(using: &rng)!)
    key.set(.tpSrc, [1024, 5000].randomElement(using: &rng)!)
    key.set(.tpDst, [80, 81, 443, 4341, 53].randomElement(using: &rng)!)
    key.set(.ipv6SrcLow, UInt64.random(in: 0...3, using: &rng))
    key.set(.tunId, UInt64.random(in: 0...2, using: &rng))
    return key
}

private func randomMatch(_ rng: inout SplitMix64) -> Match {
    let template = randomKey(&rng)
    var match = Match()
    if Bool.random(using: &rng) { match.set(.inPort, template.get(.inPort)) }
    if Int.random(in: 0..<3, using: &rng) == 0 { match.set(.dlType, template.get(.dlType)) }
    if Int.random(in: 0..<4, using: &rng) == 0 {
        match.set(.vlanTCI, template.get(.vlanTCI), mask: [0xffff, 0x1000, 0x0fff].randomElement(using: &rng)!)
    }
    if Int.random(in: 0..<4, using: &rng) == 0 { match.set(.dlSrc, template.get(.dlSrc)) }
    if Int.random(in: 0..<3, using: &rng) == 0 {
        match.set(.dlDst, template.get(.dlDst), mask: Bool.random(using: &rng) ? 0xffff_ffff_ffff : 0x0100_0000_0000)
    }
    if Bool.random(using: &rng) {
        let prefix = UInt64.random(in: 16...32, using: &rng)
        match.set(.nwSrc, template.get(.nwSrc), mask: (0xffff_ffff << (32 - prefix)) & 0xffff_ffff)
    }
    if Int.random(in: 0..<3, using: &rng) == 0 {
        let prefix = UInt64.random(in: 24...32, using: &rng)
        match.set(.nwDst, template.get(.nwDst), mask: (0xffff_ffff << (32 - prefix)) & 0xffff_ffff)
    }
    if Int.random(in: 0..<4, using: &rng) == 0 { match.set(.nwProto, template.get(.nwProto)) }
    if Int.random(in: 0..<8, using: &rng) == 0 { match.set(.nwTTL, template.get(.nwTTL)) }
    if Int.random(in: 0..<8, using: &rng) == 0 { match.set(.nwFrag, template.get(.nwFrag), mask: [1, 2, 3].randomElement(using: &rng)!) }
    if Int.random(in: 0..<4, using: &rng) == 0 { match.set(.tpDst, template.get(.tpDst), mask: Bool.random(using: &rng) ? 0xffff : 0xfff0) }
    if Int.random(in: 0..<6, using: &rng) == 0 { match.set(.tpSrc, template.get(.tpSrc)) }
    if Int.random(in: 0..<8, using: &rng) == 0 { match.set(.ipv6SrcLow, template.get(.ipv6SrcLow)) }
    if Int.random(in: 0..<6, using: &rng) == 0 { match.set(.tunId, template.get(.tunId)) }
    return match
}

private func randomEntries(_ count: Int, _ rng: inout SplitMix64) -> [ClassifierEntry] {
    (0..<count).map { i in
        // Few priorities, so equal priorities (ties broken by sequence) are common.
        ClassifierEntry(match: randomMatch(&rng), priority: UInt16.random(in: 0...6, using: &rng) * 10,
                        sequence: UInt64(i), rule: RuleIndex(i))
    }
}

/// The reference: every rule, highest priority first, earliest sequence among equals.
private func linearScan(_ entries: [ClassifierEntry], _ key: FlowKey) -> RuleIndex {
    var best: ClassifierEntry?
    for entry in entries where entry.match.matches(key) {
        if let b = best, b.priority > entry.priority || (b.priority == entry.priority && b.sequence < entry.sequence) { continue }
        best = entry
    }
    return best?.rule ?? .miss
}

/// A key inside `megaflow`: its kept bits, and elsewhere the bits of another random key (values
/// rules look at) or, one time in four, of random words.
private func keyInside(_ megaflow: Megaflow, _ rng: inout SplitMix64) -> FlowKey {
    let other = randomKey(&rng)
    let noise = Int.random(in: 0..<4, using: &rng) == 0
    var key = FlowKey()
    for w in 0..<FlowKey.wordCount {
        let free = noise ? rng.next() : other[word: w]
        key[word: w] = megaflow.maskedKey[word: w] | (free & ~megaflow.mask[word: w])
    }
    return key
}

/// Checks the property on `table` (built from `entries`) for `keys` random keys and `inside`
/// keys inside each one's megaflow; returns the number of failures (the first few are recorded).
private func checkProperty(_ table: ClassifierTable, _ entries: [ClassifierEntry], keys: Int, inside: Int,
                           _ rng: inout SplitMix64) -> Int {
    var failures = 0
    for _ in 0..<keys {
        let key = randomKey(&rng)
        let megaflow = table.megaflowLookup(key)
        let expected = linearScan(entries, key)
        if megaflow.rule != expected || table.lookup(key) != expected {
            failures += 1
            if failures <= 3 { Issue.record("key \(key): megaflow \(megaflow.rule), scan \(expected) (\(TestSeed.replay(rng.seed)))") }
            continue
        }
        for w in 0..<FlowKey.wordCount where megaflow.maskedKey[word: w] & ~megaflow.mask[word: w] != 0 {
            failures += 1
            Issue.record("masked key has bits outside the mask in word \(w)")
        }
        for _ in 0..<inside {
            let other = keyInside(megaflow, &rng)
            let again = table.megaflowLookup(other)
            let scanned = linearScan(entries, other)
            // Same rule, and the same megaflow (so two entries of one table version never overlap).
            if scanned != megaflow.rule || again.mask != megaflow.mask || again.maskedKey != megaflow.maskedKey {
                failures += 1
                if failures <= 3 {
                    Issue.record("""
                        key \(key) → \(megaflow.rule) with mask \(megaflow.mask); \(other) inside it → \(scanned), \
                        mask \(again.mask) (\(TestSeed.replay(rng.seed)))
                        """)
                }
            }
        }
    }
    return failures
}

private extension ClassifierTable {
    func lookup(_ key: FlowKey) -> RuleIndex {
        var key = key
        return withUnsafePointer(to: &key) { lookup($0) }
    }
}

@Suite struct MegaflowPropertyTests {
    @Test func everyKeyInsideAMegaflowClassifiesToTheSameRule() {
        var rng = SplitMix64(seed: TestSeed.resolve(0x4d65_6761))
        var failures = 0
        for _ in 0..<60 {
            let entries = randomEntries(Int.random(in: 1...40, using: &rng), &rng)
            let table = ClassifierTable(entries)
            failures += checkProperty(table, entries, keys: 40, inside: 20, &rng)
        }
        #expect(failures == 0, "\(TestSeed.replay(rng.seed))")
    }

    @Test func holdsAtAThousandRules() {
        var rng = SplitMix64(seed: TestSeed.resolve(0x1000))
        var failures = 0
        for _ in 0..<2 {
            let entries = randomEntries(1000, &rng)
            let table = ClassifierTable(entries)
            failures += checkProperty(table, entries, keys: 200, inside: 10, &rng)
        }
        #expect(failures == 0, "\(TestSeed.replay(rng.seed))")
    }

    /// Tables made by adding to and removing from another (the control plane's incremental
    /// versions; removal leaves empty subtables behind) keep the property.
    @Test func holdsForIncrementalTables() {
        var rng = SplitMix64(seed: TestSeed.resolve(0x17b))
        var failures = 0
        for _ in 0..<20 {
            let first = randomEntries(30, &rng)
            let more = randomEntries(10, &rng).enumerated().map { i, e in
                ClassifierEntry(match: e.match, priority: e.priority, sequence: UInt64(30 + i), rule: RuleIndex(30 + i))
            }
            let added = ClassifierTable(ClassifierTable(first), adding: more)
            let all = first + more
            failures += checkProperty(added, all, keys: 20, inside: 10, &rng)
            // Remove the rules whose match no other rule has (the removal initialiser's contract).
            let unique = all.filter { e in all.filter { $0.match == e.match }.count == 1 }
            let removed = Array(unique.prefix(unique.count / 2))
            let removedRules = Set(removed.map(\.rule.rawValue))
            if let smaller = ClassifierTable(added, removing: removed.map(\.match), where: { removedRules.contains($0.rawValue) }) {
                failures += checkProperty(smaller, all.filter { !removedRules.contains($0.rule.rawValue) }, keys: 20, inside: 10, &rng)
            } else {
                Issue.record("removal refused")
            }
        }
        #expect(failures == 0, "\(TestSeed.replay(rng.seed))")
    }

    /// The property has teeth: a naive megaflow (the shape and the winning rule's mask only,
    /// forgetting the subtables that were examined and missed) must be caught by the same check.
    @Test func aMaskWithoutTheMissedSubtablesIsCaught() {
        var rng = SplitMix64(seed: TestSeed.resolve(0x4e41))
        var counterexamples = 0
        for _ in 0..<20 where counterexamples == 0 {
            let entries = randomEntries(30, &rng)
            for _ in 0..<40 {
                let key = randomKey(&rng)
                let rule = linearScan(entries, key)
                var mask = FlowShape.mask(of: key)
                if let position = rule.position {
                    for w in 0..<FlowKey.wordCount { mask[word: w] |= entries[position].match.mask[word: w] }
                }
                var masked = FlowKey()
                for w in 0..<FlowKey.wordCount { masked[word: w] = key[word: w] & mask[word: w] }
                let naive = Megaflow(rule: rule, mask: mask, maskedKey: masked)
                for _ in 0..<20 where linearScan(entries, keyInside(naive, &rng)) != rule { counterexamples += 1 }
            }
        }
        #expect(counterexamples > 0)
    }

    /// A miss's mask is the union of every non-empty subtable's mask (all are examined) and the shape.
    @Test func aMissKeepsEveryExaminedSubtablesMask() {
        var a = Match()
        a.set(.nwDst, 0x0a00_0001)
        var b = Match()
        b.set(.tpDst, 80)
        let table = ClassifierTable([
            ClassifierEntry(match: a, priority: 10, sequence: 0, rule: RuleIndex(0)),
            ClassifierEntry(match: b, priority: 5, sequence: 1, rule: RuleIndex(1)),
        ])
        var key = FlowKey()
        key.set(.inPort, 1)
        key.set(.dlType, 0x0800)
        key.set(.nwProto, 17)
        key.set(.nwDst, 0x0a00_0002)
        key.set(.tpDst, 81)
        let megaflow = table.megaflowLookup(key)
        #expect(megaflow.rule == .miss)
        #expect(megaflow.mask.get(.nwDst) == 0xffff_ffff)
        #expect(megaflow.mask.get(.tpDst) == 0xffff)
        #expect(megaflow.mask.get(.inPort) == 0xffff_ffff)
        #expect(megaflow.mask.get(.nwProto) == 0xff)
        #expect(megaflow.mask.get(.nwSrc) == 0)
        // A hit in the higher-priority subtable stops the search: tp_dst stays wildcarded.
        key.set(.nwDst, 0x0a00_0001)
        let hit = table.megaflowLookup(key)
        #expect(hit.rule == RuleIndex(0))
        #expect(hit.mask.get(.tpDst) == 0)
    }
}
