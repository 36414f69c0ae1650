// Property tests: random rule sets and packets against a linear scan. Every generator is a
// SplitMix64 started from a fixed seed, so each run is the same; a failure's message names its seed
// as VSWIFT_TEST_SEED=0x…, and running with that variable set replays it (every test then starts
// from that seed):
//     VSWIFT_TEST_SEED=0x… swift test --skip-build --filter ClassifierPropertyTests
// VSWIFT_TEST_SEED=random explores fresh seeds.
import Testing
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftClassifier

/// Small value domains so random rules overlap and random packets hit them.
private func randomPacket(_ rng: inout SplitMix64) -> FlowKey {
    var key = FlowKey()
    // Fields in the words only "wide" rule sets match (the cache's two-slot entries and bypass).
    for field in wideFields { key.set(field, UInt64.random(in: 0...1, using: &rng)) }
    key.set(.inPort, UInt64.random(in: 1...4, using: &rng))
    key.set(.dlType, [0x0800, 0x0806, 0x86dd].randomElement(using: &rng)!)
    key.set(.vlanTCI, Bool.random(using: &rng) ? 0 : 0x1000 | UInt64.random(in: 1...3, using: &rng))
    key.set(.dlDst, [0x0200_0000_0000, 0x5254_00b8_2775, 0xffff_ffff_ffff, 0x0100_5e00_0001].randomElement(using: &rng)!)
    key.set(.nwSrc, 0x0a01_0100 | UInt64.random(in: 0...7, using: &rng) << 5 | UInt64.random(in: 0...3, using: &rng))
    key.set(.nwDst, 0x0a01_0200 | UInt64.random(in: 0...3, using: &rng))
    key.set(.nwProto, [6, 17, 1].randomElement(using: &rng)!)
    key.set(.tpDst, [80, 81, 443, 4341, 53].randomElement(using: &rng)!)
    key.set(.tunId, UInt64.random(in: 0...2, using: &rng))
    return key
}

/// One field in each of the words w5…w13 that the basic generator leaves alone.
private let wideFields: [FlowField] = [.ipv6Label, .ipv6SrcHigh, .ipv6SrcLow, .ipv6DstHigh, .ipv6DstLow, .arpSha, .arpTha, .tunSrc]

private func randomMatch(_ rng: inout SplitMix64, wide: Bool = false) -> Match {
    let template = randomPacket(&rng)
    var match = Match()
    if wide {
        for field in wideFields where Int.random(in: 0..<4, using: &rng) == 0 { match.set(field, template.get(field)) }
    }
    if Bool.random(using: &rng) { match.set(.inPort, template.get(.inPort)) }
    if Int.random(in: 0..<3, using: &rng) == 0 { match.set(.dlType, template.get(.dlType)) }
    if Int.random(in: 0..<4, using: &rng) == 0 { match.set(.vlanTCI, template.get(.vlanTCI), mask: [0xffff, 0x1000, 0x0fff].randomElement(using: &rng)!) }
    if Int.random(in: 0..<3, using: &rng) == 0 {
        match.set(.dlDst, template.get(.dlDst), mask: Bool.random(using: &rng) ? 0xffff_ffff_ffff : 0x0100_0000_0000)
    }
    if Int.random(in: 0..<2, using: &rng) == 0 {
        let prefix = UInt64.random(in: 24...32, using: &rng)
        match.set(.nwSrc, template.get(.nwSrc), mask: (0xffff_ffff << (32 - prefix)) & 0xffff_ffff)
    }
    if Int.random(in: 0..<4, using: &rng) == 0 { match.set(.nwDst, template.get(.nwDst)) }
    if Int.random(in: 0..<4, using: &rng) == 0 { match.set(.tpDst, template.get(.tpDst), mask: Bool.random(using: &rng) ? 0xffff : 0xfff0) }
    if Int.random(in: 0..<6, using: &rng) == 0 { match.set(.tunId, template.get(.tunId)) }
    return match
}

/// The reference: scan every rule, highest priority first, earliest sequence among equals.
private func linearScan(_ entries: [ClassifierEntry], _ packet: FlowKey) -> RuleIndex {
    var best: ClassifierEntry?
    for entry in entries where entry.match.matches(packet) {
        if let b = best, b.priority > entry.priority || (b.priority == entry.priority && b.sequence < entry.sequence) { continue }
        best = entry
    }
    return best?.rule ?? .miss
}

/// `table.lookup(burst:...)` on `packets` in bursts of `burstSize` (at most the scratch capacity;
/// a few keys per burst make the lookup search several subtables of one priority together).
private func burstLookup(_ table: ClassifierTable, _ packets: [FlowKey], scratch: borrowing ClassifierBurstScratch,
                         burstSize: Int = ClassifierBurstScratch.capacity) -> [RuleIndex] {
    var results = [RuleIndex](repeating: RuleIndex(rawValue: -2), count: packets.count)
    let which = (0..<ClassifierBurstScratch.capacity).map { UInt8($0) }
    for start in stride(from: 0, to: packets.count, by: burstSize) {
        let count = min(burstSize, packets.count - start)
        packets.withUnsafeBufferPointer { keys in
            results.withUnsafeMutableBufferPointer { out in
                table.lookup(burst: keys.baseAddress! + start, which: which, count: count, results: out.baseAddress! + start, scratch: scratch)
            }
        }
    }
    return results
}

/// `cache.lookup(burst:...)` on `packets` in bursts of at most the scratch capacity.
private func burstLookup(_ cache: inout ExactMatchCache, _ table: ClassifierTable, _ packets: [FlowKey]) -> [RuleIndex] {
    var results = [RuleIndex](repeating: RuleIndex(rawValue: -2), count: packets.count)
    for start in stride(from: 0, to: packets.count, by: ClassifierBurstScratch.capacity) {
        let count = min(ClassifierBurstScratch.capacity, packets.count - start)
        packets.withUnsafeBufferPointer { keys in
            results.withUnsafeMutableBufferPointer { out in
                cache.lookup(burst: keys.baseAddress! + start, count: count, in: table, results: out.baseAddress! + start)
            }
        }
    }
    return results
}

/// An exact-match cache in a class, so tests can keep several in an array.
private final class CacheBox {
    var cache: ExactMatchCache
    init(capacity: Int, thrashInsertionInverse: UInt64 = 32) {
        cache = ExactMatchCache(capacity: capacity, thrashInsertionInverse: thrashInsertionInverse)
    }
}

@Suite("Tuple space classifier")
struct ClassifierPropertyTests {
    @Test("agrees with a linear scan for random rule sets and packets, with and without the cache, before and after deletions",
          arguments: 0..<40)
    func agreesWithLinearScan(argument: UInt64) {
        let seed = TestSeed.resolve(argument &* 7919 &+ 1)
        var rng = SplitMix64(seed: seed)
        var cache = ExactMatchCache(capacity: 256)
        for _ in 0..<50 {
            let ruleCount = Int.random(in: 0...120, using: &rng)
            var entries: [ClassifierEntry] = (0..<ruleCount).map { i in
                ClassifierEntry(match: randomMatch(&rng), priority: UInt16.random(in: 0...5, using: &rng),
                                sequence: UInt64(i), rule: RuleIndex(Int(i)))
            }
            for round in 0..<2 {
                let table = ClassifierTable(entries)
                for _ in 0..<100 {
                    var packet = randomPacket(&rng)
                    let expected = linearScan(entries, packet)
                    let direct = table.lookup(&packet)
                    let cached1 = cache.lookup(&packet, in: table)
                    let cached2 = cache.lookup(&packet, in: table)  // second time: a hit
                    #expect(direct == expected, "\(TestSeed.replay(seed)) round \(round)")
                    #expect(cached1 == expected && cached2 == expected, "\(TestSeed.replay(seed)) round \(round) (cache)")
                }
                // Random deletions, then check again with a new version (the cache must not serve stale results).
                entries.removeAll { _ in Int.random(in: 0..<3, using: &rng) == 0 }
            }
        }
    }

    /// Rule sets over up to 13 words (one-slot, two-slot and bypassing cache entries), packets in
    /// bursts with repeats, through caches of every policy: a normal one, a tiny one where flows
    /// evict each other, and one so small it thrashes and inserts only now and then.
    @Test("burst lookups and every cache policy agree with a linear scan", arguments: 0..<30)
    func burstsAgreeWithLinearScan(argument: UInt64) {
        let seed = TestSeed.resolve(argument &* 104_729 &+ 7)
        var rng = SplitMix64(seed: seed)
        // Boxed: a cache is noncopyable, and an Array holds only copyable elements.
        let caches = [CacheBox(capacity: 256), CacheBox(capacity: 8, thrashInsertionInverse: 4),
                      CacheBox(capacity: 2, thrashInsertionInverse: 2)]
        let scratch = ClassifierBurstScratch()
        for _ in 0..<40 {
            let ruleCount = Int.random(in: 0...120, using: &rng)
            let wide = Bool.random(using: &rng)
            let entries: [ClassifierEntry] = (0..<ruleCount).map { i in
                ClassifierEntry(match: randomMatch(&rng, wide: wide), priority: UInt16.random(in: 0...5, using: &rng),
                                sequence: UInt64(i), rule: RuleIndex(Int(i)))
            }
            let table = ClassifierTable(entries)
            // Bursts of every length up to past one scratch, with repeated flows in them.
            let distinct = (0..<Int.random(in: 1...40, using: &rng)).map { _ in randomPacket(&rng) }
            let packets = (0..<Int.random(in: 1...150, using: &rng)).map { _ in distinct.randomElement(using: &rng)! }
            let expected = packets.map { linearScan(entries, $0) }
            #expect(burstLookup(table, packets, scratch: scratch) == expected, "\(TestSeed.replay(seed)) (classifier burst)")
            let burstSize = Int.random(in: 1...ClassifierBurstScratch.capacity, using: &rng)
            #expect(burstLookup(table, packets, scratch: scratch, burstSize: burstSize) == expected,
                    "\(TestSeed.replay(seed)) (classifier bursts of \(burstSize))")
            for c in caches.indices {
                for pass in 0..<3 {
                    #expect(burstLookup(&caches[c].cache, table, packets) == expected, "\(TestSeed.replay(seed)) cache \(c) pass \(pass) (burst)")
                    var single = packets
                    let one = single.indices.map { i in caches[c].cache.lookup(&single[i], in: table) }
                    #expect(one == expected, "\(TestSeed.replay(seed)) cache \(c) pass \(pass) (one by one)")
                }
            }
        }
        let thrashing = caches[2].cache.thrashing
        #expect(thrashing, "a 2-slot cache facing 40 flows should be thrashing")
    }

    /// A table big enough that bursts prefetch signatures and slots in separate passes; with all
    /// rules at one priority and few keys per burst, several subtables are searched together.
    @Test(arguments: [false, true])
    func largeTableBurstsAgreeWithSingleLookups(samePriority: Bool) {
        var rng = SplitMix64(seed: TestSeed.resolve(99))
        let replay = TestSeed.replay(rng.seed)
        var entries: [ClassifierEntry] = []
        for i in 0..<30_000 {
            var match = Match()
            match.set(.dlType, 0x0800)
            match.set(.nwDst, UInt64(0x0a00_0000 + i))
            switch i % 3 {
            case 0: match.set(.tpDst, UInt64(i % 7))
            case 1: match.set(.inPort, UInt64(1 + i % 2))
            default: break
            }
            entries.append(ClassifierEntry(match: match, priority: samePriority ? 1 : UInt16(i % 3), sequence: UInt64(i), rule: RuleIndex(Int(i))))
        }
        var catchAll = Match()
        catchAll.set(.dlType, 0x0800)
        entries.append(ClassifierEntry(match: catchAll, priority: 0, sequence: 1_000_000, rule: RuleIndex(30_000)))
        let table = ClassifierTable(entries)
        #expect(table.memoryBytes > ClassifierTable.cacheResidentBytes, "\(replay)")
        let packets: [FlowKey] = (0..<2_000).map { _ in
            var key = FlowKey()
            key.set(.inPort, UInt64.random(in: 1...3, using: &rng))
            key.set(.dlType, Bool.random(using: &rng) ? 0x0800 : 0x86dd)
            key.set(.nwDst, UInt64(0x0a00_0000 + Int.random(in: 0..<31_000, using: &rng)))
            key.set(.tpDst, UInt64.random(in: 0..<8, using: &rng))
            return key
        }
        var single = packets
        let expected = single.indices.map { table.lookup(&single[$0]) }
        for i in stride(from: 0, to: packets.count, by: 100) { #expect(expected[i] == linearScan(entries, packets[i]), "\(replay)") }
        let scratch = ClassifierBurstScratch()
        var cache = ExactMatchCache(capacity: 64)
        #expect(burstLookup(table, packets, scratch: scratch) == expected, "\(replay)")
        for burstSize in [1, 2, 5, 16] {
            #expect(burstLookup(table, packets, scratch: scratch, burstSize: burstSize) == expected, "bursts of \(burstSize) \(replay)")
        }
        #expect(burstLookup(&cache, table, packets) == expected, "\(replay)")
        #expect(burstLookup(&cache, table, packets) == expected, "\(replay)")
    }

    @Test("a table extended with new rules and shrunk in place, several times over, looks up exactly as one built from its rules",
          arguments: 0..<12)
    func incrementalChangesMatchAFullBuild(argument: UInt64) throws {
        let seed = TestSeed.resolve(argument &* 104_729 &+ 3)
        var rng = SplitMix64(seed: seed)
        var cache = ExactMatchCache(capacity: 256)
        for _ in 0..<6 {
            // Sequence and rule index both count up, so rule indexes stay unique across removals.
            var sequence: UInt64 = 0
            func newEntries(_ count: Int) -> [ClassifierEntry] {
                (0..<count).map { _ in
                    sequence += 1
                    return ClassifierEntry(match: randomMatch(&rng), priority: UInt16.random(in: 0...5, using: &rng),
                                           sequence: sequence, rule: RuleIndex(Int(sequence)))
                }
            }
            var entries = newEntries(Int.random(in: 0...80, using: &rng))
            var table = ClassifierTable(entries)
            for round in 0..<6 {
                // Sometimes one rule (the add-flow case), sometimes several, sometimes into an empty table.
                let added = newEntries(Int.random(in: 0..<3, using: &rng) == 0 ? 1 : Int.random(in: 1...30, using: &rng))
                entries += added
                table = ClassifierTable(table, adding: added)
                // And a few removed in place: rules whose match no other rule has (the condition
                // for removing in place).
                var uses: [[FlowKey]: Int] = [:]
                for entry in entries { uses[[entry.match.key, entry.match.mask], default: 0] += 1 }
                let unique = entries.indices.filter { uses[[entries[$0].match.key, entries[$0].match.mask]] == 1 }
                let removing = Array(unique.shuffled(using: &rng).prefix(Int.random(in: 0...3, using: &rng)))
                if !removing.isEmpty {
                    let removed = Set(removing.map { entries[$0].rule })
                    let shrunk = ClassifierTable(table, removing: removing.map { entries[$0].match }, where: { removed.contains($0) })
                    table = try #require(shrunk, "\(TestSeed.replay(seed)) round \(round): removal refused")
                    entries.removeAll { removed.contains($0.rule) }
                }
                let full = ClassifierTable(entries)
                #expect(table.ruleCount == full.ruleCount)
                // Removal in place keeps the union of masks: at least the words a full build looks at.
                #expect(table.significantWords.bits & full.significantWords.bits == full.significantWords.bits)
                for _ in 0..<100 {
                    var packet = randomPacket(&rng)
                    let expected = linearScan(entries, packet)
                    #expect(table.lookup(&packet) == expected, "\(TestSeed.replay(seed)) round \(round)")
                    #expect(full.lookup(&packet) == expected, "\(TestSeed.replay(seed)) round \(round) (full build)")
                    #expect(cache.lookup(&packet, in: table) == expected, "\(TestSeed.replay(seed)) round \(round) (cache)")
                }
            }
        }
    }

    @Test func emptyTableMatchesNothing() {
        let table = ClassifierTable([])
        var packet = FlowKey()
        #expect(table.lookup(&packet) == .miss)
    }

    @Test func equalPriorityTiesGoToTheEarlierRule() {
        var a = Match()
        a.set(.inPort, 1)
        var b = Match()
        b.set(.dlType, 0x0800)
        let table = ClassifierTable([
            ClassifierEntry(match: b, priority: 5, sequence: 9, rule: RuleIndex(2)),
            ClassifierEntry(match: a, priority: 5, sequence: 3, rule: RuleIndex(1)),
        ])
        var packet = FlowKey()
        packet.set(.inPort, 1)
        packet.set(.dlType, 0x0800)
        #expect(table.lookup(&packet) == RuleIndex(1))
    }
}
