import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// What OpenOverlayRouter 1.3.0 (an independent xTR) sent to vswift site A when both were sites
/// of one mapping system, instance id 1000 (by hand, bench/results/archive/2026-12-07-interop-oor-xtr.md).
/// The bytes are the UDP payloads of the tshark capture of that run, written out by hand: site A
/// is 10.41.1.0/24 and fd00:41:1::/64 at 192.168.41.1, OOR's site B 10.41.2.0/24 and
/// fd00:41:2::/64 at 192.168.41.2 (192.168.41.12 after it moved), the mapping system 192.168.41.100.
@Suite struct OpenOverlayRouterVectorTests {
    static let rlocA = IPAddress("192.168.41.1")!
    static let movedA = IPAddress("192.168.41.11")!
    static let rlocOOR = IPAddress("192.168.41.2")!
    static let movedOOR = IPAddress("192.168.41.12")!
    static let mappingSystem = IPAddress("192.168.41.100")!

    /// OOR's Map-Reply for [1000] 10.41.2.0/24 (A bit, TTL 10 minutes, IID mask-len 32, one
    /// locator 192.168.41.2 priority 1 weight 100, L and R set); nonce at bytes 4..<12.
    static let mapReply4 = hex("200000014c259e356599f8810000000a011810000000400300000220000a000003e800010a2902000164ff0000050001c0a82902")
    /// The same for [1000] fd00:41:2::/64.
    static let mapReply6 = hex("200000010cf3867c392c56090000000a0140100000004003000002200016000003e80002fd0000410002000000000000000000000164ff0000050001c0a82902")
    /// OOR's Solicit-Map-Request after its RLOC moved to 192.168.41.12: S bit, nonce 0, Source EID
    /// [1000] 10.41.2.0 (its changed prefix, IID mask-len 32), ITR-RLOC 192.168.41.12, one record:
    /// [1000] 10.41.1.0/24, the prefix of ours it caches.
    static let smr = hex("110000010000000000000000400300000220000a000003e800010a2902000001c0a8290c0018400300000200000a000003e800010a290100")
    /// OOR's RLOC-probe: P bit, no Source EID, ITR-RLOC 192.168.41.2, record [1000] 10.41.1.0/24.
    static let rlocProbe = hex("120000017fdbd76fdc63d95a00000001c0a829020018400300000200000a000003e800010a290100")
    /// OOR's Encapsulated Map-Request for [1000] 10.41.1.1/32 (inner 10.41.2.1 → 10.41.1.1, UDP
    /// 4342 → 4342, Source EID [1000] 10.41.2.1 with IID mask-len 32), as the mapping system
    /// forwarded it to our ETR unchanged.
    static let encapsulatedRequest = hex("800000004500005400204000ff1164250a2902010a29010110f610f60040c531100000017e1f166bc2a60c7e400300000220000a000003e800010a2902010001c0a829020020400300000220000a000003e800010a290101")

    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var i = text.startIndex
        while i < text.endIndex {
            let j = text.index(i, offsetBy: 2)
            bytes.append(UInt8(text[i..<j], radix: 16)!)
            i = j
        }
        return bytes
    }

    static func configuration(rloc: IPAddress) -> LISPControlConfiguration {
        let rlocs = [LocalRLOCConfiguration(address: rloc, priority: 1, weight: 100)]
        return LISPControlConfiguration(
            mapServers: [MapServerConfiguration(address: mappingSystem,
                                                key: AuthenticationKey(algorithm: .hmacSHA1_96, password: "site-a-secret"))],
            mapResolvers: [mappingSystem],
            localEIDs: [LocalEIDConfiguration(prefix: World.prefix("10.41.1.0/24"), rlocs: rlocs),
                        LocalEIDConfiguration(prefix: World.prefix("fd00:41:1::/64"), rlocs: rlocs)])
    }

    /// OOR's reply bytes with the nonce of the request they answer.
    static func answering(_ reply: [UInt8], nonce: UInt64) -> [UInt8] {
        var bytes = reply
        for k in 0..<8 { bytes[4 + k] = UInt8(truncatingIfNeeded: nonce >> (56 - 8 * k)) }
        return bytes
    }

    /// Site A having asked about 10.41.2.1 and fd00:41:2::1 and taken OOR's answers.
    func siteACachingOOR() throws -> XTRControlPlane {
        var plane = XTRControlPlane(mapCacheCapacity: 64, now: 0)
        _ = plane.apply(Self.configuration(rloc: Self.rlocA), localRLOCs: [Self.rlocA], now: 0)
        for (destination, source, reply) in [("10.41.2.1", "10.41.1.1", Self.mapReply4), ("fd00:41:2::1", "fd00:41:1::1", Self.mapReply6)] {
            let out = plane.handleMisses([MapCacheMiss(instanceID: World.iid, destination: World.ip(destination),
                                                       source: World.ip(source))], now: 1)
            let request = try #require(try out.compactMap { try? World.encapsulatedRequest($0).1 }.first)
            _ = plane.receive(Self.answering(reply, nonce: request.nonce), from: Self.rlocOOR, sourcePort: 4342, now: 1.1)
        }
        #expect(plane.report(now: 1.1).received["map-reply"] == 2)
        _ = plane.takeSnapshotIfChanged(now: 1.1)
        let cache = plane.report(now: 1.1).mapCache
        #expect(cache.map(\.eidPrefix).sorted() == ["10.41.2.0/24", "fd00:41:2::/64"])
        #expect(cache.allSatisfy { $0.instanceID == World.iid && $0.rlocs.map(\.address) == ["192.168.41.2"] })
        return plane
    }

    /// The failure the run found: our SMR named both our prefixes in one Map-Request and no Source
    /// EID; OOR logged "More than one EID record in SMR request. Discarding!" and kept sending to
    /// our old RLOC. RFC 9301 §5.3: "a sender MUST only send Map-Requests containing one record";
    /// §6.1: an SMR for each locator of each map-cache entry. Now: one SMR per prefix of ours, with
    /// OOR's layout (Source EID = our changed prefix, record = its prefix we cache).
    @Test func rfc9301_5_3_6_1_ourSMRsToOORCarryOneRecordEachInTheLayoutOORSends() throws {
        var plane = try siteACachingOOR()
        let out = plane.apply(Self.configuration(rloc: Self.movedA), localRLOCs: [Self.movedA], now: 2)
        let smrs = try out.filter { $0.destination == Self.rlocOOR }.map { datagram -> MapRequest in
            #expect(datagram.destinationPort == 4342)
            guard case .mapRequest(let request) = try World.decode(datagram) else { throw TestFailure("not a Map-Request") }
            return request
        }
        #expect(smrs.count == 2)
        #expect(smrs.allSatisfy { $0.solicitMapRequest && $0.records.count == 1 && $0.itrRLOCs == [LISPAddress(Self.movedA)] })
        for (source, record) in [("10.41.1.0", "10.41.2.0/24"), ("fd00:41:1::", "fd00:41:2::/64")] {
            let sourceEID = LISPAddress.instanceID(World.iid, maskLength: 0, address: LISPAddress(World.ip(source)))
            #expect(smrs.contains { $0.sourceEID == sourceEID && $0.records == [World.wire(World.prefix(record))] })
        }
        #expect(plane.report(now: 2).sent["smr"] == 2)
        // The same shape as OOR's own SMR.
        guard case .mapRequest(let theirs) = try ControlMessage.decode(Self.smr) else { throw TestFailure("OOR's SMR does not decode") }
        #expect(theirs.solicitMapRequest && theirs.records.count == 1)
        #expect(theirs.sourceEID.instanceID == World.iid && smrs.allSatisfy { $0.sourceEID.instanceID == World.iid })
    }

    /// OOR's SMR (nonce 0, Source EID with IID mask-len 32, our prefix as the record): we ask the
    /// mapping system again about its prefix (SMR-invoked), not its sender.
    @Test func rfc9301_6_1_oorSMRMakesUsAskTheMappingSystemAgain() throws {
        var plane = try siteACachingOOR()
        let out = plane.receive(Self.smr, from: Self.movedOOR, sourcePort: 4342, now: 5)
        #expect(out.count == 1)
        let datagram = try #require(out.first)
        #expect(datagram.destination == Self.mappingSystem)
        let (_, invoked) = try World.encapsulatedRequest(datagram)
        #expect(invoked.smrInvoked)
        #expect(invoked.records == [World.wire(World.prefix("10.41.2.0/24"))])
        #expect(plane.report(now: 5).received["smr"] == 1)
    }

    /// RFC 9301 §5.3/§5.4: OOR's RLOC-probe is answered to its ITR-RLOC with P, its nonce and our
    /// record, the probed locator marked.
    @Test func rfc9301_5_4_oorRLOCProbeIsAnsweredWithPAndItsNonce() throws {
        var plane = try siteACachingOOR()
        let out = plane.receive(Self.rlocProbe, from: Self.rlocOOR, sourcePort: 4342, now: 5)
        let datagram = try #require(out.first)
        #expect(datagram.destination == Self.rlocOOR && datagram.destinationPort == 4342)
        let reply = try World.reply(datagram)
        #expect(reply.probe)
        #expect(reply.nonce == 0x7fdb_d76f_dc63_d95a)
        #expect(reply.records.map(\.eid) == [World.wire(World.prefix("10.41.1.0/24"))])
        #expect(reply.records[0].locators.first?.probed == true)
        #expect(plane.report(now: 5).received["rloc-probe"] == 1)
    }

    /// RFC 9301 §5.8, §8.2: OOR's ECM Map-Request, forwarded by the map-server, is answered to its
    /// ITR-RLOC at the inner UDP source port (OOR's IID mask-len 32 read as one instance id).
    @Test func rfc9301_5_8_oorForwardedMapRequestIsAnsweredToItsITRRLOC() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 64, now: 0)
        _ = plane.apply(Self.configuration(rloc: Self.rlocA), localRLOCs: [Self.rlocA], now: 0)
        let out = plane.receive(Self.encapsulatedRequest, from: Self.mappingSystem, sourcePort: 4342, now: 1)
        let datagram = try #require(out.first)
        #expect(datagram.destination == Self.rlocOOR && datagram.destinationPort == 4342)
        let reply = try World.reply(datagram)
        #expect(reply.nonce == 0x7e1f_166b_c2a6_0c7e)
        #expect(!reply.probe)
        #expect(reply.records.map(\.eid) == [World.wire(World.prefix("10.41.1.0/24"))])
    }

    /// After OOR's RLOC moved, its data plane kept sending from the old address: each packet was
    /// refused (unknown_rloc, the old RLOC is in no mapping) and asked the mapping system about
    /// its source EID (first contact), whose answer names the new RLOC — so the next packet asked
    /// again, twice a second with a ping every 0.5 s. RFC 9301 §5.3: "Map-Requests MUST be rate
    /// limited to 1 per second per EID-prefix", answered or not.
    @Test func rfc9301_5_3_askingAboutTheSameSourceEIDAgainWaitsASecondEvenWhenAnswered() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 64, now: 0)
        _ = plane.apply(Self.configuration(rloc: Self.rlocA), localRLOCs: [Self.rlocA], now: 0)
        // What the worker queues for a packet from an unknown RLOC: its inner source as destination.
        let firstContact = MapCacheMiss(instanceID: World.iid, destination: World.ip("10.41.2.1"), source: World.ip("10.41.1.1"))
        let out = plane.handleMisses([firstContact], now: 1)
        let request = try #require(try out.compactMap { try? World.encapsulatedRequest($0).1 }.first)
        var movedReply = Self.answering(Self.mapReply4, nonce: request.nonce)
        movedReply.replaceSubrange(movedReply.count - 4..<movedReply.count, with: [192, 168, 41, 12])
        _ = plane.receive(movedReply, from: Self.movedOOR, sourcePort: 4342, now: 1.001)
        #expect(plane.report(now: 1.001).received["map-reply"] == 1)
        #expect(plane.handleMisses([firstContact], now: 1.5).isEmpty)
        #expect(plane.report(now: 1.5).refused["rate_limited"] == 1)
        #expect(plane.handleMisses([firstContact], now: 2.001).count == 1)
    }
}
