import Testing
import VSwiftPacket
@testable import VSwiftClassifier

/// Deterministic generator so a failure can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Small value domains so random rules overlap and random packets hit them.
private func randomPacket(_ rng: inout SplitMix64) -> FlowKey {
    var key = FlowKey()
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

private func randomMatch(_ rng: inout SplitMix64) -> Match {
    let template = randomPacket(&rng)
    var match = Match()
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
private func linearScan(_ entries: [ClassifierEntry], _ packet: FlowKey) -> Int32 {
    var best: ClassifierEntry?
    for entry in entries where entry.match.matches(packet) {
        if let b = best, b.priority > entry.priority || (b.priority == entry.priority && b.sequence < entry.sequence) { continue }
        best = entry
    }
    return best?.payload ?? -1
}

@Suite("Tuple space classifier")
struct ClassifierPropertyTests {
    @Test("agrees with a linear scan for random rule sets and packets, with and without the cache, before and after deletions",
          arguments: 0..<40)
    func agreesWithLinearScan(seed: UInt64) {
        var rng = SplitMix64(state: seed &* 7919 &+ 1)
        var cache = ExactMatchCache(capacity: 256)
        defer { cache.destroy() }
        for _ in 0..<50 {
            let ruleCount = Int.random(in: 0...120, using: &rng)
            var entries: [ClassifierEntry] = (0..<ruleCount).map { i in
                ClassifierEntry(match: randomMatch(&rng), priority: UInt16.random(in: 0...5, using: &rng),
                                sequence: UInt64(i), payload: Int32(i))
            }
            for round in 0..<2 {
                let table = ClassifierTable(entries)
                for _ in 0..<100 {
                    var packet = randomPacket(&rng)
                    let expected = linearScan(entries, packet)
                    let direct = table.lookup(&packet)
                    let cached1 = cache.lookup(&packet, in: table)
                    let cached2 = cache.lookup(&packet, in: table)  // second time: a hit
                    #expect(direct == expected, "seed \(seed) round \(round)")
                    #expect(cached1 == expected && cached2 == expected, "seed \(seed) round \(round) (cache)")
                }
                // Random deletions, then check again with a new version (the cache must not serve stale results).
                entries.removeAll { _ in Int.random(in: 0..<3, using: &rng) == 0 }
            }
        }
    }

    @Test("a table extended with new rules and shrunk in place, several times over, looks up exactly as one built from its rules",
          arguments: 0..<12)
    func incrementalChangesMatchAFullBuild(seed: UInt64) throws {
        var rng = SplitMix64(state: seed &* 104_729 &+ 3)
        var cache = ExactMatchCache(capacity: 256)
        defer { cache.destroy() }
        for _ in 0..<6 {
            // Sequence and payload both count up, so payloads stay unique across removals.
            var sequence: UInt64 = 0
            func newEntries(_ count: Int) -> [ClassifierEntry] {
                (0..<count).map { _ in
                    sequence += 1
                    return ClassifierEntry(match: randomMatch(&rng), priority: UInt16.random(in: 0...5, using: &rng),
                                           sequence: sequence, payload: Int32(sequence))
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
                    let payloads = Set(removing.map { entries[$0].payload })
                    let shrunk = ClassifierTable(table, removing: removing.map { entries[$0].match }, where: { payloads.contains($0) })
                    table = try #require(shrunk, "seed \(seed) round \(round): removal refused")
                    entries.removeAll { payloads.contains($0.payload) }
                }
                let full = ClassifierTable(entries)
                #expect(table.ruleCount == full.ruleCount)
                // Removal in place keeps the union of masks: at least the words a full build looks at.
                #expect(table.significantWords.bits & full.significantWords.bits == full.significantWords.bits)
                for _ in 0..<100 {
                    var packet = randomPacket(&rng)
                    let expected = linearScan(entries, packet)
                    #expect(table.lookup(&packet) == expected, "seed \(seed) round \(round)")
                    #expect(full.lookup(&packet) == expected, "seed \(seed) round \(round) (full build)")
                    #expect(cache.lookup(&packet, in: table) == expected, "seed \(seed) round \(round) (cache)")
                }
            }
        }
    }

    @Test func emptyTableMatchesNothing() {
        let table = ClassifierTable([])
        var packet = FlowKey()
        #expect(table.lookup(&packet) == -1)
    }

    @Test func equalPriorityTiesGoToTheEarlierRule() {
        var a = Match()
        a.set(.inPort, 1)
        var b = Match()
        b.set(.dlType, 0x0800)
        let table = ClassifierTable([
            ClassifierEntry(match: b, priority: 5, sequence: 9, payload: 2),
            ClassifierEntry(match: a, priority: 5, sequence: 3, payload: 1),
        ])
        var packet = FlowKey()
        packet.set(.inPort, 1)
        packet.set(.dlType, 0x0800)
        #expect(table.lookup(&packet) == 1)
    }
}
