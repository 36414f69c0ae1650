import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket
import VSwiftTesting

/// Whatever arrives on port 4342: never a trap, always counted, no state changed without a check
/// passed, memory bounded.
@Suite struct HostileControlInputTests {
    func plane() -> XTRControlPlane {
        var plane = XTRControlPlane(mapCacheCapacity: 64, now: 0)
        _ = plane.apply(World.site(eid: "10.1.0.0/16", rloc: World.rlocA), localRLOCs: [World.rlocA], now: 0)
        return plane
    }

    /// One valid message of each type an xTR may receive, from the sender's side.
    func validMessages(_ plane: inout XTRControlPlane) throws -> [[UInt8]] {
        let result8 = plane.tick(now: 1)
        let register = try World.register(try #require(result8.first))
        let notify = try World.notify(acknowledging: register)
        let unsolicited = try MapNotify(nonce: 5, records: register.records).encoded(authenticatingWith: World.key)
        let request = MapRequest(nonce: 1, itrRLOCs: [LISPAddress(World.rlocB)],
                                 records: [WireEID(instanceID: World.iid, World.ip("10.1.0.1"), maskLength: 32)])
        let ecm = EncapsulatedControlMessage(message: .mapRequest(request), innerSource: LISPAddress(World.rlocB),
                                             innerDestination: LISPAddress(World.ip("10.1.0.1")))
        let reply = MapReply(nonce: 3, records: [World.positiveRecord(World.prefix("10.2.0.0/16"), rloc: World.rlocB)])
        let negative = MapReply(nonce: 4, records: [.negative(eid: World.wire(World.prefix("10.3.0.0/16")), action: .dropNoReason)])
        return [notify, unsolicited, try ControlMessage.mapRequest(request).encoded(),
                try ControlMessage.encapsulated(ecm).encoded(), try ControlMessage.mapReply(reply).encoded(),
                try ControlMessage.mapReply(negative).encoded(), try register.encoded(authenticatingWith: World.key)]
    }

    func total(_ report: XTRControlReport) -> UInt64 {
        report.received.values.reduce(0, +) + report.refused.values.reduce(0, +)
    }

    @Test func everyTruncationOfEveryMessageTypeIsRefusedAsMalformed() throws {
        var plane = plane()
        let messages = try validMessages(&plane)
        let before = plane.report(now: 1)
        var truncations: UInt64 = 0
        for message in messages {
            for length in 0..<message.count {
                let out = plane.receive(Array(message[..<length]), from: World.mapServer, sourcePort: 4342, now: 1)
                #expect(out.isEmpty)
                truncations += 1
            }
        }
        let after = plane.report(now: 1)
        #expect(after.refused["malformed"]! - before.refused["malformed"]! == truncations)
        #expect(after.mapCache.isEmpty)
        #expect(after.registrations.first?.state == .registering)
    }

    @Test func randomBytesAndMutatedMessagesNeverTrapAndAreAllCounted() throws {
        var random = SplitMix64(seed: TestSeed.override ?? 0x16e)
        var plane = plane()
        let messages = try validMessages(&plane)
        var before = total(plane.report(now: 1))
        for round in 0..<4000 {
            let bytes: [UInt8]
            if round % 2 == 0 {
                bytes = random.bytes(Int(random.next() % 200))
            } else {
                var mutated = messages[Int(random.next() % UInt64(messages.count))]
                for _ in 0..<(1 + random.next() % 4) where !mutated.isEmpty {
                    mutated[Int(random.next() % UInt64(mutated.count))] = UInt8(truncatingIfNeeded: random.next())
                }
                bytes = mutated
            }
            _ = plane.receive(bytes, from: World.rlocB, sourcePort: 4342, now: 1 + Double(round) / 1000)
            let now = total(plane.report(now: 1))
            // Every datagram lands in at least one counter.
            #expect(now > before, "round \(round) seed \(random.seed)")
            before = now
        }
        // Unsolicited replies installed nothing.
        #expect(plane.report(now: 10).mapCache.isEmpty)
        #expect(plane.report(now: 10).refused["unsolicited"]! > 0)
    }

    @Test func aFloodOfMissesToRandomEIDsKeepsThePendingTableBounded() throws {
        var random = SplitMix64(seed: TestSeed.override ?? 0x16e1)
        var plane = plane()
        var sent = 0
        for _ in 0..<5 {
            let misses = (0..<1000).map { _ in
                MapCacheMiss(instanceID: World.iid, destination: IPAddress(ipv4: UInt32(truncatingIfNeeded: random.next())),
                             source: World.ip("10.1.0.1"))
            }
            sent += plane.handleMisses(misses, now: 1).count
        }
        #expect(sent == 1024)
        #expect(plane.report(now: 1).refused["table_full"] == 5000 - 1024)
        // Given up after their attempts, the table empties and new misses are asked again.
        var t = 1.0
        while t < 10 { t += 0.5; _ = plane.tick(now: t) }
        #expect(plane.report(now: 10).refused["timeout"] == 1024)
        let result9 = plane.handleMisses([MapCacheMiss(instanceID: World.iid, destination: World.ip("10.9.9.9"), source: World.ip("10.1.0.1"))], now: 10)
        #expect(result9.count == 1)
    }

    @Test func messagesForAMapServerAreRefusedAsUnknownTypes() throws {
        var plane = plane()
        let messages = try validMessages(&plane)
        _ = plane.receive(messages.last!, from: World.rlocB, sourcePort: 4342, now: 1)
        let ack = try MapNotify(nonce: 1, records: []).encoded(authenticatingWith: World.key, acknowledgement: true)
        _ = plane.receive(ack, from: World.rlocB, sourcePort: 4342, now: 1)
        _ = plane.receive([0x60, 0, 0, 0], from: World.rlocB, sourcePort: 4342, now: 1) // type 6, Map-Referral
        #expect(plane.report(now: 1).refused["unknown_type"] == 3)
    }
}
