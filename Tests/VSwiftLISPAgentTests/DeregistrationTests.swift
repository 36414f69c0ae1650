import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// RFC 9301 §5.6/§5.4 (Record TTL 0: "the entry MUST be removed ... immediately") and §8.2 (a
/// registration otherwise lasts until the map-server's three-minute timeout): a local EID removed,
/// a map-server removed or the control plane shut down (an empty configuration) withdraws what
/// that map-server had from us with an authenticated Map-Register of TTL-0 records.
@Suite struct DeregistrationTests {
    static let other = IPAddress("192.0.2.9")!

    func twoEIDs(_ servers: [IPAddress] = [World.mapServer]) -> LISPControlConfiguration {
        var config = World.site(eid: "10.1.0.0/16", rloc: World.rlocA)
        config.localEIDs.append(LocalEIDConfiguration(prefix: World.prefix("2001:db8:1::/48"), rlocs: [LocalRLOCConfiguration(address: World.rlocA6)]))
        config.mapServers = servers.map { MapServerConfiguration(address: $0, key: World.key) }
        return config
    }

    func registers(_ out: [OutgoingDatagram], to server: IPAddress = World.mapServer) throws -> [MapRegister] {
        try out.filter { $0.destination == server }.compactMap {
            guard case .mapRegister(let register) = try World.decode($0) else { return nil }
            try ControlAuthentication.verify($0.bytes, key: World.key)
            return register
        }
    }

    @Test func rfc9301_5_6_aRemovedEIDIsWithdrawnWithATTL0MapRegister() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        let first = try registers(plane.apply(twoEIDs(), localRLOCs: [World.rlocA, World.rlocA6], now: 0))
        #expect(first.count == 1 && first[0].records.count == 2)
        var config = twoEIDs()
        config.localEIDs.removeLast()
        let out = try registers(plane.apply(config, localRLOCs: [World.rlocA, World.rlocA6], now: 5))
        // The withdrawal (first), then the registration of what is left.
        #expect(out.count == 2)
        let withdrawal = out[0]
        #expect(!withdrawal.wantMapNotify)
        #expect(withdrawal.records.map(\.eid) == [WireEID(instanceID: World.iid, World.ip("2001:db8:1::"), maskLength: 48)])
        #expect(withdrawal.records.allSatisfy { $0.ttl == 0 })
        #expect(withdrawal.nonce > first[0].nonce)
        #expect(out[1].wantMapNotify && out[1].records.map(\.ttl) == [1440])
        #expect(out[1].nonce > withdrawal.nonce)
        #expect(plane.report(now: 5).sent["deregistration"] == 1)
    }

    @Test func rfc9301_8_2_anEmptyConfigurationWithdrawsEverythingFromEveryMapServer() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        _ = plane.apply(twoEIDs([World.mapServer, Self.other]), localRLOCs: [World.rlocA, World.rlocA6], now: 0)
        let out = plane.apply(LISPControlConfiguration(), localRLOCs: [], now: 5)
        for server in [World.mapServer, Self.other] {
            let withdrawals = try registers(out, to: server)
            #expect(withdrawals.count == 1)
            #expect(withdrawals.first?.records.count == 2)
            #expect(withdrawals.first?.records.allSatisfy { $0.ttl == 0 } == true)
        }
        #expect(out.count == 2)
        // Nothing more is sent afterwards.
        #expect(plane.tick(now: 100).isEmpty)
    }

    @Test func rfc9301_8_2_aRemovedMapServerIsToldAndTheOthersAreNot() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        _ = plane.apply(twoEIDs([World.mapServer, Self.other]), localRLOCs: [World.rlocA, World.rlocA6], now: 0)
        let out = plane.apply(twoEIDs([World.mapServer]), localRLOCs: [World.rlocA, World.rlocA6], now: 5)
        #expect(try registers(out, to: Self.other).map(\.records.count) == [2])
        #expect(try registers(out, to: Self.other).allSatisfy { $0.records.allSatisfy { $0.ttl == 0 } })
        // The map-server kept is not told anything withdrawn (its retransmission may be due).
        #expect(try registers(out, to: World.mapServer).allSatisfy { $0.records.allSatisfy { $0.ttl == 1440 } })
    }

    @Test func nothingRegisteredNothingWithdrawn() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        // Map-servers but no local EID: no Map-Register was ever sent.
        var config = twoEIDs()
        config.localEIDs = []
        _ = plane.apply(config, localRLOCs: [World.rlocA], now: 0)
        #expect(plane.apply(LISPControlConfiguration(), localRLOCs: [], now: 1).isEmpty)
    }
}
