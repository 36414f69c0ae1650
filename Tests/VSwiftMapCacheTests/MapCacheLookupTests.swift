// The snapshot's longest-prefix match against a linear scan (seeded property tests: a failure
// names its seed as VSWIFT_TEST_SEED=0x…, which replays it), and the RLOC choice of RFC 9301 §5.4
// (priority, weight, 255) with RFC 9300 §10's down locators skipped.
import Testing
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftMapCache

private func v4(_ text: String) -> IPAddress { IPAddress(text)! }

private func prefix(_ iid: UInt32, _ text: String) -> EIDPrefix { EIDPrefix(instanceID: iid, text)! }

private func snapshot(_ prefixes: [EIDPrefix], locators: [Locator] = [Locator(address: v4("192.0.2.1"), priority: 1, weight: 1)]) -> MapCacheSnapshot {
    let marks = UseMarks(capacity: max(prefixes.count, 1))
    return MapCacheSnapshot(prefixes.enumerated().map { SnapshotEntry(prefix: $1, locators: locators, markSlot: $0) }, marks: marks)
}

/// The longest prefix of `prefixes` covering `address` in `iid`, by looking at every one.
private func linearScan(_ prefixes: [EIDPrefix], iid: UInt32, _ address: IPAddress) -> EIDPrefix? {
    var best: EIDPrefix?
    for p in prefixes where p.instanceID == iid && p.contains(address) {
        if best == nil || p.length > best!.length { best = p }
    }
    return best
}

/// A random address near `bases` (so prefixes overlap), of the family of `ipv4`.
private func randomAddress(_ rng: inout SplitMix64, ipv4: Bool, bases: [IPAddress]) -> IPAddress {
    let base = bases.randomElement(using: &rng)!
    if ipv4 {
        // Flip a few of the low bits: most addresses share long prefixes with the base.
        let flips = UInt32.random(in: 0...0xffff, using: &rng) & (UInt32.max >> UInt32.random(in: 8...31, using: &rng))
        return IPAddress(ipv4: base.ipv4 ^ flips)
    }
    let shift = UInt64.random(in: 0...63, using: &rng)
    if Bool.random(using: &rng) { return IPAddress(high: base.high, low: base.low ^ (rng.next() >> shift)) }
    return IPAddress(high: base.high ^ (rng.next() >> (shift | 16)), low: rng.next())
}

@Suite struct MapCacheLookupTests {
    @Test("LPM per instance id equals a linear scan (IPv4 and IPv6, overlapping prefixes)", arguments: [0x5eed_0001, 0x5eed_0002, 0x5eed_0003] as [UInt64])
    func lpmAgainstLinearScan(fixed: UInt64) {
        let seed = TestSeed.resolve(fixed)
        var rng = SplitMix64(seed: seed)
        let basesV4 = (0..<4).map { _ in IPAddress(ipv4: UInt32(truncatingIfNeeded: rng.next())) }
        let basesV6 = (0..<4).map { _ in IPAddress(high: 0x2001_0db8_0000_0000 | rng.next() >> 32, low: rng.next()) }
        var set = Set<EIDPrefix>()
        let count = Int.random(in: 50...600, using: &rng)
        while set.count < count {
            let iid = UInt32.random(in: 0...2, using: &rng)
            let ipv4 = Bool.random(using: &rng)
            let address = randomAddress(&rng, ipv4: ipv4, bases: ipv4 ? basesV4 : basesV6)
            let length = ipv4 ? Int.random(in: 0...32, using: &rng) : Int.random(in: 0...128, using: &rng)
            set.insert(EIDPrefix(instanceID: iid, address: address, length: length)!)
        }
        let prefixes = Array(set)
        let table = snapshot(prefixes)
        for _ in 0..<4000 {
            let iid = UInt32.random(in: 0...3, using: &rng)
            let ipv4 = Bool.random(using: &rng)
            let address = randomAddress(&rng, ipv4: ipv4, bases: ipv4 ? basesV4 : basesV6)
            let expected = linearScan(prefixes, iid: iid, address)
            let entry = table.lookup(instanceID: iid, destination: address)
            let got = entry < 0 ? nil : table.prefixes[Int(entry)]
            #expect(got == expected, "iid \(iid) \(address): \(TestSeed.replay(seed))")
            if got != expected { return }
        }
        // The burst lookup answers as the single one, for bursts of every size.
        let scratch = MapCacheBurstScratch()
        for _ in 0..<200 {
            let n = Int.random(in: 0...MapCacheBurstScratch.capacity, using: &rng)
            let iids = (0..<n).map { _ in UInt32.random(in: 0...3, using: &rng) }
            let addresses = (0..<n).map { _ -> IPAddress in
                let ipv4 = Bool.random(using: &rng)
                return randomAddress(&rng, ipv4: ipv4, bases: ipv4 ? basesV4 : basesV6)
            }
            var results = [Int32](repeating: -2, count: n)
            results.withUnsafeMutableBufferPointer { r in
                table.lookup(burst: n, instanceIDs: iids, destinations: addresses, results: r.baseAddress!, scratch: scratch)
            }
            for i in 0..<n where results[i] != table.lookup(instanceID: iids[i], destination: addresses[i]) {
                Issue.record("burst \(i) of \(n): \(addresses[i]) \(TestSeed.replay(seed))")
                return
            }
        }
    }

    @Test("LPM with every length of one address present (the markers' best-prefix pointers)")
    func everyLength() {
        let address = IPAddress("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff")!
        // Every other length, so a lookup passes markers whose best prefix is shorter.
        let prefixes = stride(from: 0, through: 128, by: 2).map { EIDPrefix(instanceID: 7, address: address, length: $0)! }
        let table = snapshot(prefixes)
        for length in 0...128 {
            // An address that agrees with `address` on exactly `length` bits.
            var probe = address
            if length < 128 {
                if length < 64 { probe.high ^= 1 << UInt64(63 - length) } else { probe.low ^= 1 << UInt64(127 - length) }
            }
            let entry = table.lookup(instanceID: 7, destination: probe)
            #expect(table.prefixes[Int(entry)].length == UInt8(length & ~1), "agreeing on \(length) bits")
        }
    }

    @Test("instance ids and families never match each other; ::/0 does not cover IPv4")
    func isolation() {
        let table = snapshot([prefix(1, "10.0.0.0/8"), prefix(2, "0.0.0.0/0"), prefix(1, "::/0"), prefix(3, "::ffff:0:0/32")])
        #expect(table.prefixes[Int(table.lookup(instanceID: 1, destination: v4("10.1.2.3")))] == prefix(1, "10.0.0.0/8"))
        #expect(table.lookup(instanceID: 1, destination: v4("11.1.2.3")) == -1)
        #expect(table.prefixes[Int(table.lookup(instanceID: 2, destination: v4("11.1.2.3")))] == prefix(2, "0.0.0.0/0"))
        #expect(table.prefixes[Int(table.lookup(instanceID: 1, destination: IPAddress("2001:db8::1")!))] == prefix(1, "::/0"))
        #expect(table.lookup(instanceID: 2, destination: IPAddress("2001:db8::1")!) == -1)
        // An IPv4-mapped address is IPv4 (as everywhere in vswift): "::ffff:0:0/128" is 0.0.0.0
        // with an IPv4 length, refused; "::ffff:0:0/32" is 0.0.0.0/32.
        #expect(EIDPrefix(instanceID: 3, "::ffff:0:0/96") == nil)
        #expect(table.lookup(instanceID: 3, destination: IPAddress("2001:db8::1")!) == -1)
        // Only the low 24 bits of an instance id count (the LISP header's field).
        #expect(table.lookup(instanceID: 0x100_0001, destination: v4("10.1.2.3")) == table.lookup(instanceID: 1, destination: v4("10.1.2.3")))
        #expect(snapshot([]).lookup(instanceID: 0, destination: v4("10.0.0.1")) == -1)
    }

    @Test("EID prefixes are canonical and bounded (24-bit instance id, family lengths)")
    func prefixValidation() {
        #expect(prefix(0, "10.1.2.3/8") == prefix(0, "10.0.0.0/8"))
        #expect(prefix(0, "2001:db8::1/32").description == "[0]2001:db8::/32")
        #expect(EIDPrefix(instanceID: 0, "10.0.0.0/33") == nil)
        #expect(EIDPrefix(instanceID: 0, "::/129") == nil)
        #expect(EIDPrefix(instanceID: 0x100_0000, "10.0.0.0/8") == nil)
        #expect(EIDPrefix(instanceID: 0, "10.0.0.0/-1") == nil)
        #expect(EIDPrefix(instanceID: 0, "10.0.0.0") == nil)
        #expect(EIDPrefix(instanceID: 0, "10.0.0.0/+8") == nil)
    }

    @Test("hostile input: a repeated prefix keeps the last entry; over 255 locators are cut; bad text is refused")
    func hostileInput() {
        let marks = UseMarks(capacity: 4)
        let a = v4("192.0.2.1"), b = v4("192.0.2.2")
        let table = MapCacheSnapshot([
            SnapshotEntry(prefix: prefix(0, "10.0.0.0/8"), locators: [Locator(address: a, priority: 1, weight: 1)], markSlot: 0),
            SnapshotEntry(prefix: prefix(0, "10.0.0.0/8"), locators: [Locator(address: b, priority: 1, weight: 1)], markSlot: 1),
            SnapshotEntry(prefix: prefix(0, "11.0.0.0/8"),
                          locators: (0..<300).map { Locator(address: IPAddress(ipv4: UInt32($0)), priority: 1, weight: 1) }, markSlot: 2),
        ], marks: marks)
        #expect(table.resolve(instanceID: 0, destination: v4("10.1.1.1"), flowHash: 0).rloc == b)
        var seen = Set<IPAddress>()
        var rng = SplitMix64(seed: TestSeed.resolve(0xfeed_0005))
        for _ in 0..<20_000 { seen.insert(table.resolve(instanceID: 0, destination: v4("11.1.1.1"), flowHash: rng.next()).rloc) }
        #expect(seen.count == LocatorSelection.slots)   // 255 usable, 128 slots: each slot its own
        #expect(seen.allSatisfy { $0.ipv4 < 255 })
        for text in ["", "/", "10.0.0.0/", "/8", "10.0.0.0/8/8", "10.0.0.0/99999999999999999999999", "10.0.0.256/8",
                     "2001:db8::/1 28", "::/-0", "10.0.0.0/ 8", "ｆｅ80::/10", "1.2.3.4/３２"] {
            #expect(EIDPrefix(instanceID: 0, text) == nil, "\(text)")
        }
    }

    // MARK: RLOC choice

    private func shares(_ locators: [Locator], samples: Int = 200_000, seed: UInt64) -> [IPAddress: Double] {
        let table = snapshot([prefix(0, "10.0.0.0/8")], locators: locators)
        let entry = table.lookup(instanceID: 0, destination: v4("10.0.0.1"))
        #expect(table.action(of: entry) == .encapsulate)
        var rng = SplitMix64(seed: seed)
        var counts: [IPAddress: Int] = [:]
        for _ in 0..<samples { counts[table.locator(of: entry, flowHash: rng.next()), default: 0] += 1 }
        return counts.mapValues { Double($0) / Double(samples) }
    }

    @Test("RFC 9301 §5.4 weights 30, 20, 20, 10 give 37.5 %, 25 %, 25 %, 12.5 % (within 1 %)")
    func weightedSpread() {
        let seed = TestSeed.resolve(0xfeed_0001)
        let rlocs = (1...4).map { v4("192.0.2.\($0)") }
        let got = shares(zip(rlocs, [30, 20, 20, 10] as [UInt8]).map { Locator(address: $0, priority: 1, weight: $1) }, seed: seed)
        for (rloc, expected) in zip(rlocs, [0.375, 0.25, 0.25, 0.125]) {
            #expect(abs(got[rloc, default: 0] - expected) < 0.01, "\(rloc): \(got[rloc, default: 0]) \(TestSeed.replay(seed))")
        }
    }

    @Test("the lowest priority wins; weight 0 beside others gets nothing; all 0 spreads evenly")
    func priorityAndZeroWeights() {
        let seed = TestSeed.resolve(0xfeed_0002)
        let a = v4("192.0.2.1"), b = v4("192.0.2.2"), c = v4("192.0.2.3")
        var got = shares([Locator(address: a, priority: 2, weight: 100), Locator(address: b, priority: 1, weight: 1),
                          Locator(address: c, priority: 1, weight: 0)], seed: seed)
        #expect(got == [b: 1.0])
        got = shares([Locator(address: a, priority: 5, weight: 0), Locator(address: b, priority: 5, weight: 0),
                      Locator(address: c, priority: 5, weight: 0)], seed: seed)
        for rloc in [a, b, c] { #expect(abs(got[rloc, default: 0] - 1.0 / 3) < 0.01, "\(rloc) \(TestSeed.replay(seed))") }
    }

    @Test("down locators are skipped (RFC 9300 §10): the next priority takes over; 255 is never used")
    func downAndUnusable() {
        let seed = TestSeed.resolve(0xfeed_0003)
        let a = v4("192.0.2.1"), b = v4("192.0.2.2"), c = v4("192.0.2.3")
        var got = shares([Locator(address: a, priority: 1, weight: 50, isUp: false), Locator(address: b, priority: 1, weight: 50),
                          Locator(address: c, priority: 2, weight: 50)], seed: seed)
        #expect(got == [b: 1.0])
        got = shares([Locator(address: a, priority: 1, weight: 50, isUp: false), Locator(address: b, priority: 1, weight: 50, isUp: false),
                      Locator(address: c, priority: 2, weight: 50)], seed: seed)
        #expect(got == [c: 1.0])
        // All down, or all of priority 255: a positive entry that cannot be used.
        for locators in [[Locator(address: a, priority: 1, weight: 1, isUp: false)],
                         [Locator(address: a, priority: 255, weight: 1), Locator(address: b, priority: 255, weight: 9)], []] {
            let table = snapshot([prefix(0, "10.0.0.0/8")], locators: locators)
            let resolution = table.resolve(instanceID: 0, destination: v4("10.9.9.9"), flowHash: 1)
            #expect(resolution.action == .noUsableLocator)
            #expect(resolution.entry == 0)
        }
    }

    @Test("a flow keeps its RLOC: the choice depends on the flow hash alone")
    func flowStickiness() {
        let locators = (1...5).map { Locator(address: v4("192.0.2.\($0)"), priority: 1, weight: UInt8($0 * 10)) }
        let table = snapshot([prefix(0, "10.0.0.0/8")], locators: locators)
        var rng = SplitMix64(seed: TestSeed.resolve(0xfeed_0004))
        for _ in 0..<1000 {
            let hash = rng.next()
            let first = table.resolve(instanceID: 0, destination: v4("10.0.0.1"), flowHash: hash).rloc
            #expect(table.resolve(instanceID: 0, destination: v4("10.200.0.1"), flowHash: hash).rloc == first)
        }
    }

    @Test("the selection table has 128 slots in proportion to weight (largest remainder)")
    func selectionTable() {
        let table = LocatorSelection.table([Locator(address: v4("192.0.2.1"), priority: 1, weight: 1),
                                            Locator(address: v4("192.0.2.2"), priority: 1, weight: 2)])
        #expect(table.count == LocatorSelection.slots)
        #expect(table.filter { $0 == 0 }.count == 43)
        #expect(table.filter { $0 == 1 }.count == 85)
        #expect(LocatorSelection.table([Locator(address: v4("192.0.2.1"), priority: 254, weight: 0)]) == [0])
    }

    @Test("negative entries carry their RFC 9301 §5.4 action; a miss is .miss")
    func negativeActions() {
        let marks = UseMarks(capacity: 8)
        let entries = NegativeAction.allCases.enumerated().map { i, action in
            SnapshotEntry(prefix: prefix(0, "10.\(i).0.0/16"), negative: action, locators: [], markSlot: i)
        }
        let table = MapCacheSnapshot(entries, marks: marks)
        for (i, action) in NegativeAction.allCases.enumerated() {
            let r = table.resolve(instanceID: 0, destination: v4("10.\(i).1.1"), flowHash: 0)
            #expect(r.action == MapCacheAction(action))
            #expect(marks.take(i))
        }
        #expect(table.resolve(instanceID: 0, destination: v4("11.0.0.1"), flowHash: 0).action == .miss)
        #expect(NegativeAction(rawValue: 6) == nil)
    }
}
