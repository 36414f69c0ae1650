import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// RFC 9301 §6.1: an ETR whose mapping changed solicits the ITRs that cached it.
@Suite struct SolicitMapRequestTests {
    static let movedRLOC = IPAddress("198.51.100.9")!

    /// A site (10.1.0.0/16 at rlocA) that has learned 10.2.0.0/16 at rlocB through a Map-Reply.
    func siteTalkingToB() throws -> XTRControlPlane {
        var plane = XTRControlPlane(mapCacheCapacity: 64, now: 0)
        _ = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 0)
        let out = plane.handleMisses([MapCacheMiss(instanceID: World.iid, destination: IPAddress("10.2.0.9")!,
                                                   source: IPAddress("10.1.0.5")!)], now: 1)
        let request = try #require(try out.compactMap { try? World.encapsulatedRequest($0).1 }.first)
        let record = World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB)
        _ = plane.receive(try ControlMessage.mapReply(MapReply(nonce: request.nonce, records: [record])).encoded(),
                          from: World.mapResolver, sourcePort: 4342, now: 1.1)
        return plane
    }

    @Test func rfc9301_6_1_aMovedRLOCSolicitsEverySiteInTheMapCacheNamingOurPrefix() throws {
        var plane = try siteTalkingToB()
        let out = plane.apply(World.site(eid: "10.1.0.0/16", rloc: Self.movedRLOC), localRLOCs: [Self.movedRLOC], now: 2)
        let smrs = out.filter { $0.destination == World.rlocB }
        #expect(smrs.count == 1)
        let smr = try #require(smrs.first)
        #expect(smr.destinationPort == 4342)
        guard case .mapRequest(let request) = try World.decode(smr) else { throw TestFailure("not a plain Map-Request") }
        #expect(request.solicitMapRequest)
        // One record (RFC 9301 §5.2: a sender sends one): the site's prefix we cache; our changed
        // prefix is the Source EID (the layout OpenOverlayRouter sends and acts on); D set (§5.2:
        // an SMR needs no Map-Reply).
        #expect(request.records == [World.wire(World.prefix("10.2.0.0/16"))])
        #expect(request.sourceEID == .instanceID(World.iid, maskLength: 0, address: LISPAddress(World.ip("10.1.0.0"))))
        #expect(request.dontMapReply)
        #expect(request.itrRLOCs == [LISPAddress(Self.movedRLOC)])
        #expect(plane.report(now: 2).sent["smr"] == 1)
        // The new registration goes out too.
        #expect(out.contains { $0.destination == World.mapServer })
    }

    @Test func rfc9301_6_1_anUnchangedMappingSolicitsNobody() throws {
        var plane = try siteTalkingToB()
        let out = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 2)
        #expect(!out.contains { $0.destination == World.rlocB })
        #expect(plane.report(now: 2).sent["smr"] == 0)
    }

    /// The receiving ITR (which caches 10.1.0.0/16) asks the mapping system again.
    @Test func rfc9301_6_1_theSolicitedSiteAsksItsMapResolverAgain() throws {
        var moved = try siteTalkingToB()
        // Site B caches site A's prefix.
        var siteB = XTRControlPlane(mapCacheCapacity: 64, now: 0)
        _ = siteB.apply(World.site(eid: "10.2.0.0/16", rloc: World.rlocB), localRLOCs: [World.rlocB], now: 0)
        let asked = siteB.handleMisses([MapCacheMiss(instanceID: World.iid, destination: IPAddress("10.1.0.5")!,
                                                     source: IPAddress("10.2.0.9")!)], now: 1)
        let request = try #require(try asked.compactMap { try? World.encapsulatedRequest($0).1 }.first)
        _ = siteB.receive(try ControlMessage.mapReply(MapReply(nonce: request.nonce, records: [
            World.positiveRecord(World.prefix("10.1.0.0/16"), rloc: World.rlocA),
        ])).encoded(), from: World.mapResolver, sourcePort: 4342, now: 1.1)
        // The SMR names our changed prefix by an address in it (its Source EID): found by a lookup
        // in the published snapshot, as the daemon publishes one after every change.
        _ = siteB.takeSnapshotIfChanged(now: 1.1)
        let smr = try #require(moved.apply(World.site(eid: "10.1.0.0/16", rloc: Self.movedRLOC), localRLOCs: [Self.movedRLOC], now: 3)
            .first { $0.destination == World.rlocB })
        let again = siteB.receive(smr.bytes, from: Self.movedRLOC, sourcePort: 4342, now: 3)
        let (_, smrInvoked) = try World.encapsulatedRequest(try #require(again.first))
        #expect(again.first?.destination == World.mapResolver)
        #expect(smrInvoked.smrInvoked)
        #expect(smrInvoked.records == [World.wire(World.prefix("10.1.0.0/16"))])
    }

    /// RFC 9301 §5.2 ("a sender MUST only send Map-Requests containing one record") and §6.1: each
    /// SMR names one changed prefix (its Source EID; the one record is the site's prefix we cache),
    /// and only changed ones (added, moved or removed) are named.
    @Test func rfc9301_5_2_eachSMRNamesOneChangedPrefix() throws {
        var plane = try siteTalkingToB()
        var config = World.site(eid: "10.1.0.0/16", rloc: World.rlocA)
        config.localEIDs.append(LocalEIDConfiguration(prefix: World.prefix("10.9.0.0/16"), rlocs: [LocalRLOCConfiguration(address: World.rlocA)]))
        config.localEIDs.append(LocalEIDConfiguration(prefix: World.prefix("10.8.0.0/16"), rlocs: [LocalRLOCConfiguration(address: World.rlocA)]))
        func sourceEIDs(_ out: [OutgoingDatagram]) throws -> [LISPAddress] {
            try out.filter { $0.destination == World.rlocB }.map { datagram in
                guard case .mapRequest(let request) = try World.decode(datagram) else { throw TestFailure("not a Map-Request") }
                #expect(request.solicitMapRequest && request.dontMapReply)
                #expect(request.records == [World.wire(World.prefix("10.2.0.0/16"))])
                return request.sourceEID
            }
        }
        func address(_ text: String) -> LISPAddress { .instanceID(World.iid, maskLength: 0, address: LISPAddress(World.ip(text))) }
        #expect(try sourceEIDs(plane.apply(config, localRLOCs: [World.rlocA], now: 2)) == [address("10.9.0.0"), address("10.8.0.0")])
        // One removed: only it is named.
        config.localEIDs.removeLast()
        #expect(try sourceEIDs(plane.apply(config, localRLOCs: [World.rlocA], now: 3)) == [address("10.8.0.0")])
    }
}
