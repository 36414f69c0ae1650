import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

@Suite struct ETRRegistrationTests {
    @Test func rfc9301_5_6_registerSentOnApplyCarriesEveryLocalEIDAndAVerifiableHMAC() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        var config = World.site(eid: "10.1.0.0/16", rloc: World.rlocA)
        config.localEIDs.append(LocalEIDConfiguration(prefix: World.prefix("2001:db8:1::/48"),
                                                      rlocs: [LocalRLOCConfiguration(address: World.rlocA6, priority: 2, weight: 50)]))
        let out = plane.apply(config, localRLOCs: [World.rlocA, World.rlocA6], now: 0)
        #expect(out.count == 1)
        let datagram = try #require(out.first)
        #expect(datagram.destination == World.mapServer)
        #expect(datagram.destinationPort == 4342)
        try ControlAuthentication.verify(datagram.bytes, key: World.key)
        #expect(throws: AuthenticationError.self) {
            try ControlAuthentication.verify(datagram.bytes, key: AuthenticationKey(algorithm: .hmacSHA256_128, password: "other"))
        }
        let register = try World.register(datagram)
        #expect(register.wantMapNotify)
        #expect(register.keyID == 2)
        #expect(register.records.count == 2)
        let v4 = register.records[0]
        #expect(v4.eid == WireEID(instanceID: World.iid, World.ip("10.1.0.0"), maskLength: 16))
        #expect(v4.ttl == 1440)
        #expect(v4.authoritative)
        #expect(v4.locators == [LocatorRecord(address: LISPAddress(World.rlocA), priority: 1, weight: 100, local: true, reachable: true)])
        let v6 = register.records[1]
        #expect(v6.eid == WireEID(instanceID: World.iid, World.ip("2001:db8:1::"), maskLength: 48))
        #expect(v6.locators.map(\.priority) == [2])
        #expect(v6.locators.allSatisfy { $0.local })
        #expect(plane.report(now: 0).registrations.map(\.state) == [.registering])
        #expect(plane.report(now: 0).sent["map-register"] == 1)
    }

    @Test func rfc9301_5_7_retransmitsWithNewNoncesUntilMapNotifyThen_8_2_EveryMinute() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        var sends: [(Double, MapRegister)] = []
        for d in plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 0) {
            sends.append((0, try World.register(d)))
        }
        var t = 0.0
        while t < 10 {
            t += 0.25
            for d in plane.tick(now: t) { sends.append((t, try World.register(d))) }
        }
        // 0, 1, 3, 7 (intervals 1, 2, 4), then 15...
        #expect(sends.map(\.0) == [0, 1, 3, 7])
        #expect(Set(sends.map(\.1.nonce)).count == 4)
        // The map-server answers the last one.
        let last = sends.last!.1
        let result10 = plane.receive(try World.notify(acknowledging: last), from: World.mapServer, sourcePort: 4342, now: 10)
        #expect(result10.isEmpty)
        #expect(plane.report(now: 10).registrations.first?.state == .registered)
        #expect(plane.report(now: 10).registrations.first?.notifiesAccepted == 1)
        #expect(plane.nextDeadline == 67)
        let result11 = plane.tick(now: 66.9)
        #expect(result11.isEmpty)
        let periodic = plane.tick(now: 67)
        #expect(periodic.count == 1)
        // Still registered while the refresh awaits its own Map-Notify (the map-server keeps a
        // registration three minutes).
        #expect(plane.report(now: 68).registrations.first?.state == .registered)
        #expect(plane.nextDeadline == 68)
        // Never acknowledged again: back to registering once the three minutes are over.
        #expect(plane.report(now: 190.1).registrations.first?.state == .registering)
    }

    @Test func rfc9301_5_7_mapNotifyWithWrongKeyOrStaleNonceIsRefusedAndCounted() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        let result12 = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 0)
        let first = try World.register(try #require(result12.first))
        let result13 = plane.tick(now: 1)
        let second = try World.register(try #require(result13.first))
        // Wrong key.
        let forged = try World.notify(acknowledging: second, key: AuthenticationKey(algorithm: .hmacSHA256_128, password: "guess"))
        let result14 = plane.receive(forged, from: World.mapServer, sourcePort: 4342, now: 1.1)
        #expect(result14.isEmpty)
        // Wrong Algorithm ID (SHA-1 with the right password): refused as a key id mismatch.
        let wrongID = try World.notify(acknowledging: second, key: AuthenticationKey(algorithm: .hmacSHA1_96, password: "site-secret"))
        let result15 = plane.receive(wrongID, from: World.mapServer, sourcePort: 4342, now: 1.1)
        #expect(result15.isEmpty)
        // Tampered after signing.
        var tampered = try World.notify(acknowledging: second)
        tampered[tampered.count - 1] ^= 1
        let result16 = plane.receive(tampered, from: World.mapServer, sourcePort: 4342, now: 1.1)
        #expect(result16.isEmpty)
        // Authentic, but for the Map-Register the second one replaced.
        let result17 = plane.receive(try World.notify(acknowledging: first), from: World.mapServer, sourcePort: 4342, now: 1.2)
        #expect(result17.isEmpty)
        let report = plane.report(now: 2)
        #expect(report.refused["authentication"] == 2)
        #expect(report.refused["key_id"] == 1)
        #expect(report.refused["nonce"] == 1)
        #expect(report.received["map-notify"] == 0)
        #expect(report.registrations.first?.state == .registering)
        #expect(report.registrations.first?.notifiesAccepted == 0)
    }

    @Test func rfc9301_5_7_unsolicitedMapNotifyIsAckedWithItsNonceAndTheKey() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        _ = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 0)
        let change = MapNotify(nonce: 0x1234_5678_9abc_def0,
                               records: [World.positiveRecord(World.prefix("10.1.0.0/16"), rloc: World.rlocB)])
        let bytes = try change.encoded(authenticatingWith: World.key)
        let out = plane.receive(bytes, from: World.mapServer, sourcePort: 4342, now: 0.5)
        #expect(out.count == 1)
        let ack = try #require(out.first)
        #expect(ack.destination == World.mapServer)
        try ControlAuthentication.verify(ack.bytes, key: World.key)
        guard case .mapNotifyAck(let decoded) = try World.decode(ack) else { Issue.record("not an ack"); return }
        #expect(decoded.nonce == change.nonce)
        #expect(decoded.records == change.records)
        // It registers nothing.
        #expect(plane.report(now: 1).registrations.first?.state == .registering)
        #expect(plane.report(now: 1).received["map-notify-unsolicited"] == 1)
        #expect(plane.report(now: 1).sent["map-notify-ack"] == 1)
        // An unauthenticated one is not acked.
        let unsigned = try ControlMessage.mapNotify(change).encoded()
        let result18 = plane.receive(unsigned, from: World.mapServer, sourcePort: 4342, now: 0.6)
        #expect(result18.isEmpty)
        #expect(plane.report(now: 1).refused["authentication"] == 1)
    }

    @Test func configurationChangeRegistersAgainAndNoEIDsIsIdle() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        let result19 = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 0)
        let register = try World.register(try #require(result19.first))
        _ = plane.receive(try World.notify(acknowledging: register), from: World.mapServer, sourcePort: 4342, now: 0.1)
        #expect(plane.report(now: 1).registrations.first?.state == .registered)
        // Same configuration: nothing to send.
        let result20 = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 2)
        #expect(result20.isEmpty)
        // A new RLOC: registered again at once, registering until acknowledged.
        let moved = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocB), localRLOCs: [World.rlocB], now: 3)
        #expect(try moved.map { try World.register($0).records.first?.locators.first?.address } == [LISPAddress(World.rlocB)])
        #expect(plane.report(now: 3).registrations.first?.state == .registering)
        // No local EIDs: idle; what was registered is withdrawn (Record TTL 0, DeregistrationTests).
        var empty = World.site(eid: "10.1.0.0/16", rloc: World.rlocA)
        empty.localEIDs = []
        let result21 = plane.apply(empty, localRLOCs: [World.rlocA], now: 4)
        #expect(try result21.map { try World.register($0).records.map(\.ttl) } == [[0]])
        #expect(plane.report(now: 4).registrations.first?.state == .idle)
        let result22 = plane.tick(now: 100)
        #expect(result22.isEmpty)
    }
}
