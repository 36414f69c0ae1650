import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket

/// Many local EIDs: the Record Count of a Map-Register is 8 bits (RFC 9301 §5.6) and a message must
/// fit 576 bytes of IPv4 packet (1,280 of IPv6) when the path MTU is unknown (§5), so the records go
/// in several Map-Registers, each with its own nonce, authentication, Map-Notify and
/// retransmission (§5.7); a Map-Reply keeps what fits one message.
@Suite struct MapRegisterSplittingTests {
    /// `count` /24 EIDs (10.a.b.0/24) in instance `World.iid`, each with RLOC A.
    static func site(eids count: Int, key: AuthenticationKey = World.key) -> LISPControlConfiguration {
        var config = World.site(eid: "10.0.0.0/24", rloc: World.rlocA, key: key)
        config.localEIDs = (0..<count).map { n in
            LocalEIDConfiguration(prefix: World.prefix("10.\(n / 256).\(n % 256).0/24"),
                                  rlocs: [LocalRLOCConfiguration(address: World.rlocA)])
        }
        return config
    }

    @Test(arguments: [World.key, AuthenticationKey(algorithm: .hmacSHA1_96, password: "site-secret", sentLength: 12)])
    func rfc9301_5_6_fourThousandEIDsGoInSeveralAuthenticatedMapRegistersEachEIDOnce(key: AuthenticationKey) throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        let out = plane.apply(Self.site(eids: 4096, key: key), localRLOCs: [World.rlocA], now: 0)
        #expect(out.count > 1)
        var seen: [WireEID: Int] = [:]
        var nonces: Set<UInt64> = []
        for datagram in out {
            #expect(datagram.destination == World.mapServer && datagram.destinationPort == 4342)
            #expect(datagram.bytes.count <= 576 - 20 - 8)
            try ControlAuthentication.verify(datagram.bytes, key: key)
            let register = try World.register(datagram)
            #expect(register.wantMapNotify && register.keyID == key.algorithm.keyID)
            #expect(register.records.count <= 255)
            nonces.insert(register.nonce)
            for record in register.records { seen[record.eid, default: 0] += 1 }
        }
        #expect(nonces.count == out.count, "each message has its own nonce")
        #expect(seen.count == 4096 && seen.values.allSatisfy { $0 == 1 }, "every EID exactly once")
        #expect(plane.report(now: 0).sent["map-register"] == UInt64(out.count))
    }

    @Test func rfc9301_5_7_eachMapRegisterIsAcknowledgedAloneAndOnlyTheLostOneIsRetransmitted() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        let registers = try plane.apply(Self.site(eids: 300), localRLOCs: [World.rlocA], now: 0).map(World.register)
        #expect(registers.count >= 3)
        let lost = registers.count / 2
        for (i, register) in registers.enumerated() where i != lost {
            #expect(plane.receive(try World.notify(acknowledging: register), from: World.mapServer, sourcePort: 4342, now: 0.2).isEmpty)
        }
        #expect(plane.report(now: 0.5).registrations.first?.state == .registering, "one message is not acknowledged")
        #expect(plane.report(now: 0.5).received["map-notify"] == UInt64(registers.count - 1))
        // Its Map-Notify never came: it alone goes again, same records, new nonce.
        let again = try plane.tick(now: 1).map(World.register)
        #expect(again.count == 1)
        #expect(again.first?.records == registers[lost].records)
        #expect(again.first?.nonce != registers[lost].nonce)
        // A late Map-Notify for the first send is stale; the current one registers the site.
        _ = plane.receive(try World.notify(acknowledging: registers[lost]), from: World.mapServer, sourcePort: 4342, now: 1.1)
        #expect(plane.report(now: 1.1).refused["nonce"] == 1)
        _ = plane.receive(try World.notify(acknowledging: try #require(again.first)), from: World.mapServer, sourcePort: 4342, now: 1.2)
        #expect(plane.report(now: 1.2).registrations.first?.state == .registered)
        #expect(plane.report(now: 1.2).registrations.first?.notifiesAccepted == UInt64(registers.count))
        // Nothing more until the 60 s refresh, which sends every message once.
        #expect(plane.tick(now: 59.9).isEmpty)
        #expect(plane.tick(now: 61).count == registers.count)
    }

    /// One nonce, one Map-Reply: an answer with more records than one datagram carries keeps the
    /// covering record and the more specific ones that fit, and says so in a counter.
    @Test func rfc9301_5_aMapReplyStaysWithinTheMessageSizeLimit() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        var config = Self.site(eids: 200)
        config.localEIDs.insert(LocalEIDConfiguration(prefix: World.prefix("10.0.0.0/8"), rlocs: [LocalRLOCConfiguration(address: World.rlocB)]), at: 0)
        _ = plane.apply(config, localRLOCs: [World.rlocA], now: 0)
        let request = MapRequest(nonce: 9, sourceEID: .none, itrRLOCs: [LISPAddress(IPAddress("203.0.113.9")!)],
                                 records: [WireEID(instanceID: World.iid, World.ip("10.200.0.1"), maskLength: 32)])
        let out = plane.receive(try ControlMessage.mapRequest(request).encoded(), from: IPAddress("203.0.113.9")!, sourcePort: 4342, now: 1)
        let datagram = try #require(out.first)
        #expect(out.count == 1 && datagram.bytes.count <= 576 - 20 - 8)
        let reply = try World.reply(datagram)
        #expect(reply.nonce == 9)
        #expect(reply.records.first?.eid == WireEID(instanceID: World.iid, World.ip("10.0.0.0"), maskLength: 8))
        #expect(reply.records.count > 1 && reply.records.count < 201)
        #expect(plane.report(now: 1).refused["reply_truncated"] == 1)
    }

    @Test func recordGroupsKeepOrderAndWholeRecordsWithinTheBound() throws {
        let records = (0..<1000).map { n in
            World.positiveRecord(World.prefix("10.\(n / 256).\(n % 256).0/24"), rloc: World.rlocA)
        }
        for ipv4 in [true, false] {
            let bound = RecordBatching.maxPayload(ipv4: ipv4)
            let groups = RecordBatching.groups(records, headerBytes: 48, maxPayload: bound)
            #expect(Array(groups.joined()) == records)
            for group in groups {
                let size = 48 + group.map { RecordBatching.encodedLength($0)! }.reduce(0, +)
                #expect(size <= bound && group.count <= 128)
            }
        }
        #expect(RecordBatching.maxPayload(ipv4: true) == 548 && RecordBatching.maxPayload(ipv4: false) == 1232)
        // A record larger than the bound goes alone.
        let big = MappingRecord(eid: World.wire(World.prefix("10.9.0.0/16")), locators: (0..<64).map {
            LocatorRecord(address: LISPAddress(IPAddress(high: 0x2001_0db8_0000_0000, low: UInt64($0))))
        })
        let mixed = RecordBatching.groups([records[0], big, records[1]], headerBytes: 48, maxPayload: 1232)
        #expect(mixed.map(\.count) == [1, 1, 1])
        #expect(RecordBatching.groups([], headerBytes: 48, maxPayload: 548).isEmpty)
    }

    /// RFC 9301 §5.6: the nonce "is incremented each time a Map-Register message is sent", and a
    /// map-server drops one not greater than the last it saw from us, even after we restart.
    @Test func rfc9301_5_6_mapRegisterNoncesIncreaseAcrossMessagesRetransmissionsAndRestarts() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        var nonces = try plane.apply(Self.site(eids: 100), localRLOCs: [World.rlocA], now: 0).map { try World.register($0).nonce }
        nonces += try plane.tick(now: 1).map { try World.register($0).nonce }
        #expect(nonces.count > 2)
        #expect(zip(nonces, nonces.dropFirst()).allSatisfy { $0 < $1 }, "\(nonces)")
        // A restart (a new control plane, nothing kept) starts above every nonce sent before.
        var restarted = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        let after = try restarted.apply(Self.site(eids: 1), localRLOCs: [World.rlocA], now: 0).map { try World.register($0).nonce }
        #expect(try #require(after.first) > nonces.max()!)
    }

    /// RFC 9301 §5.5: "the list of Locators in a Locator-Set MUST be sorted in order of ascending
    /// IP address where an IPv4 Routing Locator Address is considered numerically 'less than' an
    /// IPv6 Routing Locator Address" (the same record format goes in Map-Register).
    @Test func rfc9301_5_5_ourLocatorsGoInAscendingOrderIPv4First() throws {
        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        var config = World.site(eid: "10.1.0.0/16", rloc: World.rlocA)
        config.localEIDs[0].rlocs = [World.rlocA6, World.rlocB, World.rlocA].map { LocalRLOCConfiguration(address: $0) }
        let register = try World.register(try #require(plane.apply(config, localRLOCs: [World.rlocA], now: 0).first))
        #expect(register.records.first?.locators.map(\.address) == [World.rlocA, World.rlocB, World.rlocA6].map { LISPAddress($0) })
        let request = MapRequest(nonce: 3, itrRLOCs: [LISPAddress(IPAddress("203.0.113.9")!)],
                                 records: [WireEID(instanceID: World.iid, World.ip("10.1.2.3"), maskLength: 32)])
        let reply = try World.reply(try #require(plane.receive(try ControlMessage.mapRequest(request).encoded(),
                                                               from: IPAddress("203.0.113.9")!, sourcePort: 4342, now: 1).first))
        #expect(reply.records.first?.locators.map(\.address) == [World.rlocA, World.rlocB, World.rlocA6].map { LISPAddress($0) })
    }
}
