import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

@Suite struct MapRequestAnsweringTests {
    static let itrRLOC = IPAddress("203.0.113.9")!

    func etr() -> XTRControlPlane {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        var config = World.site(eid: "10.1.0.0/16", rloc: World.rlocA)
        config.localEIDs.append(LocalEIDConfiguration(prefix: World.prefix("10.1.2.0/24"),
                                                      rlocs: [LocalRLOCConfiguration(address: World.rlocB)]))
        _ = plane.apply(config, localRLOCs: [World.rlocA], now: 0)
        return plane
    }

    func request(_ eid: String, nonce: UInt64 = 77, probe: Bool = false) -> MapRequest {
        MapRequest(nonce: nonce, sourceEID: .none,
                   itrRLOCs: [LISPAddress(IPAddress("2001:db8::99")!), LISPAddress(Self.itrRLOC)],
                   records: [WireEID(instanceID: World.iid, World.ip(eid), maskLength: 32)], probe: probe)
    }

    @Test func rfc9301_5_5_plainMapRequestForOurEIDIsAnsweredToTheITRRLOCAtItsSourcePort() throws {
        var plane = etr()
        let out = plane.receive(try ControlMessage.mapRequest(request("10.1.7.7")).encoded(),
                                from: Self.itrRLOC, sourcePort: 61000, now: 1)
        let datagram = try #require(out.first)
        // The IPv4 ITR-RLOC: we have no IPv6 RLOC to answer the first one from.
        #expect(datagram.destination == Self.itrRLOC)
        #expect(datagram.destinationPort == 61000)
        let reply = try World.reply(datagram)
        #expect(reply.nonce == 77)
        #expect(!reply.probe)
        // RFC 9301 §5.5: the covering /16, and our /24 more specific than it.
        #expect(reply.records.map(\.eid) == [WireEID(instanceID: World.iid, World.ip("10.1.0.0"), maskLength: 16),
                                              WireEID(instanceID: World.iid, World.ip("10.1.2.0"), maskLength: 24)])
        #expect(reply.records[0].ttl == 1440)
        #expect(reply.records[0].locators.map(\.address) == [LISPAddress(World.rlocA)])
        #expect(reply.records[0].locators.allSatisfy { $0.local && $0.reachable })
        #expect(plane.report(now: 1).received["map-request"] == 1)
        #expect(plane.report(now: 1).sent["map-reply"] == 1)
    }

    @Test func rfc9301_5_5_theLongestLocalPrefixAnswersWithoutLessSpecificOnes() throws {
        var plane = etr()
        let out = plane.receive(try ControlMessage.mapRequest(request("10.1.2.3")).encoded(),
                                from: Self.itrRLOC, sourcePort: 4342, now: 1)
        let reply = try World.reply(try #require(out.first))
        #expect(reply.records.map(\.eid) == [WireEID(instanceID: World.iid, World.ip("10.1.2.0"), maskLength: 24)])
        #expect(reply.records[0].locators.map(\.address) == [LISPAddress(World.rlocB)])
    }

    @Test func rfc9301_5_8_mapRequestForwardedInAnECMIsAnsweredAtTheInnerSourcePort() throws {
        var plane = etr()
        let ecm = EncapsulatedControlMessage(message: .mapRequest(request("10.1.7.7", nonce: 5)),
                                             innerSource: LISPAddress(Self.itrRLOC),
                                             innerDestination: LISPAddress(World.ip("10.1.7.7")), sourcePort: 50123)
        let out = plane.receive(try ControlMessage.encapsulated(ecm).encoded(), from: World.mapServer, sourcePort: 4342, now: 1)
        let datagram = try #require(out.first)
        #expect(datagram.destination == Self.itrRLOC)
        #expect(datagram.destinationPort == 50123)
        #expect(try World.reply(datagram).nonce == 5)
    }

    @Test func mapRequestForAnEIDWeDoNotOwnIsRefusedAndCounted() throws {
        var plane = etr()
        for eid in ["10.2.0.1", "192.168.1.1"] {
            let result3 = plane.receive(try ControlMessage.mapRequest(request(eid)).encoded(), from: Self.itrRLOC, sourcePort: 4342, now: 1)
            #expect(result3.isEmpty)
        }
        // The right address in another instance id is not ours either.
        var other = request("10.1.7.7")
        other.records = [WireEID(instanceID: 7, World.ip("10.1.7.7"), maskLength: 32)]
        let result4 = plane.receive(try ControlMessage.mapRequest(other).encoded(), from: Self.itrRLOC, sourcePort: 4342, now: 1)
        #expect(result4.isEmpty)
        // A less specific prefix than ours is not ours.
        var wide = request("10.0.0.0")
        wide.records = [WireEID(instanceID: World.iid, World.ip("10.0.0.0"), maskLength: 8)]
        let result5 = plane.receive(try ControlMessage.mapRequest(wide).encoded(), from: Self.itrRLOC, sourcePort: 4342, now: 1)
        #expect(result5.isEmpty)
        #expect(plane.report(now: 1).refused["not_our_eid"] == 4)
        #expect(plane.report(now: 1).sent["map-reply"] == 0)
    }

    @Test func rfc9301_5_3_rlocProbeIsAnsweredWithThePBit() throws {
        var plane = etr()
        let out = plane.receive(try ControlMessage.mapRequest(request("10.1.7.7", nonce: 9, probe: true)).encoded(),
                                from: Self.itrRLOC, sourcePort: 4342, now: 1)
        let reply = try World.reply(try #require(out.first))
        #expect(reply.probe)
        #expect(reply.nonce == 9)
        #expect(reply.records[0].locators[0].probed)
        #expect(plane.report(now: 1).received["rloc-probe"] == 1)
    }

    @Test func rfc9301_5_3_dontMapReplyGetsNoAnswer() throws {
        var plane = etr()
        var quiet = request("10.1.7.7")
        quiet.dontMapReply = true
        let result6 = plane.receive(try ControlMessage.mapRequest(quiet).encoded(), from: Self.itrRLOC, sourcePort: 4342, now: 1)
        #expect(result6.isEmpty)
    }

    @Test func repliesAreRateLimitedWhateverTheRequestRate() throws {
        var plane = etr()
        // From 1,000 ITR-RLOCs (each within its own per-destination share): the global budget.
        func bytes(_ i: Int) throws -> [UInt8] {
            var asking = request("10.1.7.7")
            asking.itrRLOCs = [LISPAddress(IPAddress(ipv4: 0xcb00_7100 &+ UInt32(i) << 8))]
            return try ControlMessage.mapRequest(asking).encoded()
        }
        var sent = 0
        for i in 0..<1000 { sent += plane.receive(try bytes(i), from: Self.itrRLOC, sourcePort: 4342, now: 5).count }
        #expect(sent == 200)
        #expect(plane.report(now: 5).refused["rate_limited"] == 800)
        #expect(plane.report(now: 5).refused["destination_rate_limited"] == 0)
        // The budget refills with time.
        let result7 = plane.receive(try bytes(999), from: Self.itrRLOC, sourcePort: 4342, now: 5.5)
        #expect(result7.count == 1)
    }
}
