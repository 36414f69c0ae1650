import Testing
@testable import VSwiftDatapath

@Suite("MAC learning table")
struct MACLearningTableTests {
    let a: UInt64 = 0x5254_00b8_2775
    let b: UInt64 = 0x5254_001b_ead5

    @Test func learnsAndLooksUp() {
        let table = MACLearningTable(capacity: 64, agingSeconds: 300)
        defer { table.destroy() }
        #expect(table.lookup(a, now: 1000) == MACLearningTable.noPort)
        table.learn(a, port: 3, now: 1000)
        table.learn(b, port: 0, now: 1000)
        #expect(table.lookup(a, now: 1001) == 3)
        #expect(table.lookup(b, now: 1001) == 0)
    }

    @Test func aMoveUpdatesThePort() {
        let table = MACLearningTable(capacity: 64, agingSeconds: 300)
        defer { table.destroy() }
        table.learn(a, port: 1, now: 10)
        table.learn(a, port: 2, now: 11)
        #expect(table.lookup(a, now: 11) == 2)
        #expect(table.entries(now: 11).count == 1)
    }

    @Test func entriesAgeOutAndRefreshKeepsThem() {
        let table = MACLearningTable(capacity: 64, agingSeconds: 300)
        defer { table.destroy() }
        table.learn(a, port: 1, now: 1000)
        table.learn(b, port: 2, now: 1000)
        table.learn(b, port: 2, now: 1200)  // seen again
        #expect(table.lookup(a, now: 1299) == 1)
        #expect(table.lookup(a, now: 1300) == MACLearningTable.noPort)
        #expect(table.lookup(b, now: 1300) == 2)
        #expect(table.entries(now: 1300).map(\.mac) == [b])
    }

    @Test func forgetRemovesADeletedPortsEntries() {
        let table = MACLearningTable(capacity: 64, agingSeconds: 300)
        defer { table.destroy() }
        table.learn(a, port: 1, now: 5)
        table.learn(b, port: 2, now: 5)
        table.forget(port: 1)
        #expect(table.lookup(a, now: 5) == MACLearningTable.noPort)
        #expect(table.lookup(b, now: 5) == 2)
    }

    @Test func aFullNeighbourhoodEvictsTheLeastRecentlySeen() {
        // Capacity 8 = one probe window: the 9th MAC must evict the oldest.
        let table = MACLearningTable(capacity: 8, agingSeconds: 1000)
        defer { table.destroy() }
        for i in 0..<8 { table.learn(0x0200_0000_0000 + UInt64(i), port: PortSlot(rawValue: UInt16(i)), now: 100 + UInt64(i)) }
        table.learn(0x0200_0000_00ff, port: 9, now: 200)
        #expect(table.lookup(0x0200_0000_0000, now: 200) == MACLearningTable.noPort)
        #expect(table.lookup(0x0200_0000_00ff, now: 200) == 9)
        for i in 1..<8 { #expect(table.lookup(0x0200_0000_0000 + UInt64(i), now: 200) == PortSlot(rawValue: UInt16(i))) }
    }

    @Test func manyAddressesStayFindable() {
        let table = MACLearningTable(capacity: 8192, agingSeconds: 300)
        defer { table.destroy() }
        for i in 0..<2000 { table.learn(0x0600_0000_0000 | UInt64(i) << 8, port: PortSlot(rawValue: UInt16(i % 200)), now: 1) }
        var found = 0
        for i in 0..<2000 where table.lookup(0x0600_0000_0000 | UInt64(i) << 8, now: 1) == PortSlot(rawValue: UInt16(i % 200)) { found += 1 }
        #expect(found == 2000)
    }
}
