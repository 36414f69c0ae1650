import Testing
@testable import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// RFC 9301 §5.4 ("It is RECOMMENDED that a Map-Reply for the same destination RLOC be sent to no
/// more than one packet every 3 seconds") and §6.1 (the same for SMRs): a burst of 4 per
/// destination RLOC, then one every 3 s; other destinations are not affected; the table is bounded.
@Suite struct DestinationRateLimitTests {
    static let itrRLOC = IPAddress("203.0.113.9")!
    static let otherITR = IPAddress("203.0.113.10")!

    func etr() -> XTRControlPlane {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        _ = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 0)
        return plane
    }

    func request(_ itr: IPAddress, nonce: UInt64, probe: Bool = false) throws -> [UInt8] {
        try ControlMessage.mapRequest(MapRequest(
            nonce: nonce, itrRLOCs: [LISPAddress(itr)],
            records: [WireEID(instanceID: World.iid, World.ip("10.1.7.7"), maskLength: 32)], probe: probe)).encoded()
    }

    @Test func rfc9301_5_4_mapRepliesToOneDestinationRLOCAreLimitedToOneEveryThreeSecondsAfterABurst() throws {
        var plane = etr()
        var sent: [Double] = []
        // A request every 100 ms for 12 s from one ITR-RLOC, RLOC-probes among them.
        for step in 0..<120 {
            let t = 1 + Double(step) * 0.1
            let out = plane.receive(try request(Self.itrRLOC, nonce: UInt64(step), probe: step % 2 == 0), from: Self.itrRLOC, sourcePort: 4342, now: t)
            if !out.isEmpty { sent.append(t) }
        }
        // 4 at once (1.0–1.3), then one per 3 s (about 4.0, 7.0, 10.0).
        #expect(sent.count == 7, "\(sent)")
        #expect(sent.prefix(4).allSatisfy { $0 < 1.35 })
        for (a, b) in zip(sent.dropFirst(4), sent.dropFirst(5)) { #expect(b - a >= 2.85, "\(sent)") }
        let report = plane.report(now: 13)
        #expect(report.refused["destination_rate_limited"] == 113)
        #expect(report.sent["map-reply"] == 7)
        // Another ITR is answered meanwhile.
        #expect(plane.receive(try request(Self.otherITR, nonce: 1000), from: Self.otherITR, sourcePort: 4342, now: 12.95).count == 1)
    }

    @Test func rfc9301_5_4_theDestinationTableIsBounded() {
        var limit = DestinationRateLimit(interval: 3, burst: 1, capacity: 8)
        for i in 0..<8 { #expect(limit.take(IPAddress(ipv4: UInt32(0x0a00_0000 + i)), now: 0) == .allowed) }
        // Full of recent destinations: a new one is refused, a known one limited.
        #expect(limit.take(IPAddress(ipv4: 0x0a00_0100), now: 1) == .full)
        #expect(limit.take(IPAddress(ipv4: 0x0a00_0000), now: 1) == .limited)
        // Once their buckets have refilled they are forgotten and make room.
        #expect(limit.take(IPAddress(ipv4: 0x0a00_0100), now: 3.5) == .allowed)
        #expect(limit.buckets.count <= 8)
    }

    @Test func rfc9301_6_1_smrsToOneDestinationRLOCAreLimitedToOneEveryThreeSecondsAfterABurst() throws {
        // A site that caches 10.2.0.0/16 at rlocB and changes its RLOC every second.
        var plane = XTRControlPlane(mapCacheCapacity: 64, now: 0)
        _ = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 0)
        let out = plane.handleMisses([MapCacheMiss(instanceID: World.iid, destination: World.ip("10.2.0.9"), source: World.ip("10.1.0.5"))], now: 1)
        let request = try #require(try out.compactMap { try? World.encapsulatedRequest($0).1 }.first)
        _ = plane.receive(try ControlMessage.mapReply(MapReply(nonce: request.nonce, records: [
            World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB),
        ])).encoded(), from: World.mapResolver, sourcePort: 4342, now: 1.1)
        var smrTimes: [Double] = []
        for step in 0..<30 {
            let t = 2 + Double(step)
            let rloc = IPAddress(ipv4: 0xc633_6410 + UInt32(step)) // 198.51.100.16 + step
            let sent = plane.apply(World.site(eid: "10.1.0.0/16", rloc: rloc), localRLOCs: [rloc], now: t)
            if sent.contains(where: { $0.destination == World.rlocB }) { smrTimes.append(t) }
        }
        // The burst (t = 2, 3, 4, 5, the bucket refilling meanwhile), then one every 3 s: over
        // 30 changes in 29 s, 4 + 29 / 3 at most.
        #expect(Array(smrTimes.prefix(4)) == [2, 3, 4, 5])
        #expect((12...14).contains(smrTimes.count), "\(smrTimes)")
        for (a, b) in zip(smrTimes.dropFirst(6), smrTimes.dropFirst(7)) { #expect(b - a >= 3, "\(smrTimes)") }
        #expect(plane.report(now: 40).sent["smr"] == UInt64(smrTimes.count))
        #expect(plane.report(now: 40).refused["destination_rate_limited"] == UInt64(30 - smrTimes.count))
    }
}
