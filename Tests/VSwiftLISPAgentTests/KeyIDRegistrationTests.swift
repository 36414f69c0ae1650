import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftPacket

/// RFC 9301 §5.6–5.7 with a Key ID other than 0: the Map-Register carries the map-server's Key ID
/// and Algorithm ID, and a Map-Notify, whose fields "are copied from the corresponding
/// Map-Register", must carry the same ones.
@Suite struct KeyIDRegistrationTests {
    static let key9 = AuthenticationKey(algorithm: .hmacSHA256_128, keyID: 9, password: "site-secret")

    @Test func rfc9301_5_6_mapRegisterCarriesTheConfiguredKeyIDAndVerifiesUnderIt() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        let out = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA, key: Self.key9), localRLOCs: [World.rlocA], now: 0)
        let datagram = try #require(out.first)
        #expect(Array(datagram.bytes[12...13]) == [9, 2])
        try ControlAuthentication.verify(datagram.bytes, key: Self.key9)
        #expect(throws: AuthenticationError.wrongKeyID(0x0902)) { try ControlAuthentication.verify(datagram.bytes, key: World.key) }
        let register = try World.register(datagram)
        #expect(register.keyID == 0x0902)
        // The map-server's Map-Notify under Key ID 9 registers us.
        #expect(plane.receive(try World.notify(acknowledging: register, key: Self.key9), from: World.mapServer, sourcePort: 4342, now: 0.1).isEmpty)
        #expect(plane.report(now: 0.2).registrations.first?.state == .registered)
        #expect(plane.report(now: 0.2).received["map-notify"] == 1)
    }

    @Test func rfc9301_5_7_mapNotifyUnderAnotherKeyIDOrAlgorithmIsRefusedAndCounted() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        let out = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA, key: Self.key9), localRLOCs: [World.rlocA], now: 0)
        let register = try World.register(try #require(out.first))
        // The same secret under Key ID 0 (an RFC 6830 map-server), Key ID 10, and Key ID 9 with
        // HMAC-SHA-1: each a correct HMAC of its own bytes, none the Key ID we registered with.
        for other in [
            AuthenticationKey(algorithm: .hmacSHA256_128, keyID: 0, password: "site-secret"),
            AuthenticationKey(algorithm: .hmacSHA256_128, keyID: 10, password: "site-secret"),
            AuthenticationKey(algorithm: .hmacSHA1_96, keyID: 9, password: "site-secret"),
        ] {
            #expect(plane.receive(try World.notify(acknowledging: register, key: other), from: World.mapServer, sourcePort: 4342, now: 0.1).isEmpty)
        }
        // Unsolicited (a nonce we never sent) under another Key ID: no Map-Notify-Ack either.
        let unsolicited = try MapNotify(nonce: 77, records: register.records)
            .encoded(authenticatingWith: AuthenticationKey(algorithm: .hmacSHA256_128, keyID: 1, password: "site-secret"))
        #expect(plane.receive(unsolicited, from: World.mapServer, sourcePort: 4342, now: 0.1).isEmpty)
        let report = plane.report(now: 0.2)
        #expect(report.refused["key_id"] == 4)
        #expect(report.refused["authentication"] == 0)
        #expect(report.received["map-notify"] == 0)
        #expect(report.registrations.first?.state == .registering)
    }
}
