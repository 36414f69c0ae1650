import Testing
import VSwiftLISPControl
import VSwiftPacket
import VSwiftTesting

/// Every input is hostile: truncated, padded, lying counts and lengths, unknown types and AFIs,
/// bad inner headers. Each is a typed error, never a trap, and costs work bounded by its length.
@Suite("LISP control messages: hostile input")
struct HostileInputTests {
    func expectError(_ expected: ControlMessageError, _ bytes: [UInt8], limits: DecodeLimits = .default,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try ControlMessage.decode(bytes, limits: limits) }
    }

    @Test func everyTruncationOfEveryVectorIsRefused() {
        for (name, bytes) in Vectors.all {
            for length in 0..<bytes.count {
                #expect(throws: ControlMessageError.self, "\(name) cut to \(length)") {
                    try ControlMessage.decode(Array(bytes[0..<length]))
                }
            }
        }
    }

    @Test func trailingBytesAreRefused() {
        for (name, bytes) in Vectors.all where ControlMessageType.of(bytes) != 8 {
            #expect(throws: ControlMessageError.trailingBytes(count: 1), "\(name)") {
                try ControlMessage.decode(bytes + [0])
            }
        }
        // In an ECM the inner IP length no longer matches.
        expectError(.badInnerHeader(.lengthMismatch), Vectors.ecmIPv4 + [0])
        expectError(.badInnerHeader(.lengthMismatch), Vectors.ecmIPv6 + [0])
    }

    @Test func rfc9301_5_1_unknownMessageTypes() {
        for type: UInt8 in [0, 6, 7, 9, 15] {
            expectError(.unknownMessageType(type), [type << 4] + [UInt8](repeating: 0, count: 40))
        }
        expectError(.truncated, [])
        expectError(.messageTooLong(70_000), [0x20] + [UInt8](repeating: 0, count: 69_999))
    }

    @Test func countsThatOverflowTheMessage() {
        // Map-Reply Record Count 255 (over the cap) and 100 (under it) with no records behind.
        let header = Vectors.hex("20 00 00 ff  01 02 03 04 05 06 07 08")
        expectError(.tooManyRecords(255), header)
        var under = header
        under[3] = 100
        expectError(.truncated, under)
        // Locator Count 255 (over the cap) and 60 (under it) with no locators behind.
        var record = Array(Vectors.negativeMapReply(act: 0))
        record[16] = 255
        expectError(.tooManyLocators(255), record)
        record[16] = 60
        expectError(.truncated, record)
        // ITR-RLOC Count 31 (32 RLOCs) with none present.
        var request = Vectors.mapRequestSMRInvoked
        request[2] = 0x1f
        expectError(.truncated, Array(request[0..<24]))
        // Map-Request Record Count 0.
        request = Vectors.mapRequestSMRInvoked
        request[3] = 0
        expectError(.noRecords, Array(request[0..<24]))
    }

    @Test func locatorsAcrossRecordsAreCapped() {
        // 20 records of 60 AFI-0 locators each: every record within the per-record cap, 1,200 in all.
        var bytes = Vectors.hex("20 00 00 14  00 00 00 00 00 00 00 01")
        for _ in 0..<20 {
            bytes += Vectors.hex("00 00 00 0f  3c 00 00 00  00 00  00 00")
            for _ in 0..<60 { bytes += Vectors.hex("01 64 ff 00 00 01 00 00") }
        }
        expectError(.tooManyLocators(1_020 + 60), bytes)
        #expect(throws: Never.self) {
            try ControlMessage.decode(bytes, limits: DecodeLimits(maxLocatorsPerMessage: 1_200))
        }
        expectError(.tooManyRecords(20), bytes, limits: DecodeLimits(maxRecords: 19))
    }

    @Test func rfc9301_addressesAndLCAFs() {
        // Unknown plain AFI (3): its length is unknown, so it is refused.
        var bytes = Vectors.mapRequestSMRInvoked
        bytes[13] = 3
        expectError(.unknownAFI(3), bytes)
        // IPv4 EID with mask-len 33.
        bytes = Vectors.mapRequestSMRInvoked
        bytes[25] = 33
        expectError(.maskLengthTooLong(33), bytes)
        // RFC 8060 §3: an LCAF Length past the message.
        let lcafHeader = Vectors.hex("20 00 00 01  00 00 00 00 00 00 00 01  00 00 00 0f  00 18 10 00  00 00")
        expectError(.truncated, lcafHeader + Vectors.hex("40 03 00 00 02 00 ff ff 00 00 00 01"))
        // RFC 8060 §4.1: an Instance ID LCAF whose Length is short of its address, or past it.
        expectError(.badLCAFLength(type: 2, length: 5), lcafHeader + Vectors.hex("40 03 00 00 02 00 00 05 00 00 00 01 00"))
        expectError(.badLCAFLength(type: 2, length: 11),
                    lcafHeader + Vectors.hex("40 03 00 00 02 00 00 0b 00 00 00 01 00 01 0a 00 00 00 00"))
        // An LCAF inside an Instance ID LCAF.
        expectError(.nestedLCAF, lcafHeader + Vectors.hex("40 03 00 00 02 00 00 0c 00 00 00 01 40 03 00 00 02 00 00 00"))
    }

    @Test func rfc9301_5_2_itrRLOCsOfAnyAFIDecodeAndReencode() throws {
        // AFI 0 and an Instance ID LCAF as ITR-RLOCs: not usable as reply addresses, but well formed.
        let bytes = Vectors.hex("""
            10 00 01 01  01 02 03 04 05 06 07 08  00 00
            00 00
            40 03 00 00 02 00 00 0a 00 00 00 05 00 01 c0 00 02 01
            00 18 00 01 0a 02 00 00
            """)
        let message = try ControlMessage.decode(bytes)
        #expect(try message.encoded() == bytes)
    }

    @Test func rfc8060_unknownLCAFTypeIsSkippedByLengthAndKept() throws {
        // A Map-Reply whose first locator is an LCAF of type 10 (ELP), then a plain RLOC.
        let bytes = Vectors.hex("""
            20 00 00 01  00 00 00 00 00 00 00 01
            00 00 00 0f  02 18 10 00  00 00  00 01 0a 02 00 00
            01 64 ff 00 00 01  40 03 00 07 0a 05 00 03 aa bb cc   # LCAF flags 7, type 10, Rsvd2 5, 3 bytes
            01 64 ff 00 00 01  00 01 c0 00 02 07
            """)
        guard case .mapReply(let reply) = try ControlMessage.decode(bytes) else {
            Issue.record("not a Map-Reply")
            return
        }
        #expect(reply.records[0].locators.map(\.address) == [
            .unknownLCAF(type: 10, flags: 7, reserved2: 5, body: [0xaa, 0xbb, 0xcc]), .ipv4(0xc000_0207)])
        #expect(try ControlMessage.mapReply(reply).encoded() == bytes)
    }

    @Test func rfc9301_5_8_badInnerHeaders() {
        func ecm4(_ edit: (inout [UInt8]) -> Void) -> [UInt8] {
            var b = Vectors.ecmIPv4
            edit(&b)
            return b
        }
        expectError(.badInnerHeader(.badIPv4Checksum), ecm4 { $0[14] ^= 1 })
        expectError(.badInnerHeader(.notIP), ecm4 { $0[4] = 0x55 })
        expectError(.badInnerHeader(.badHeaderLength), ecm4 { $0[4] = 0x44 })
        expectError(.badInnerHeader(.lengthMismatch), ecm4 { $0[7] = 0x3b })
        expectError(.badInnerHeader(.fragment), ecm4 { $0[10] = 0x20 }) // MF
        expectError(.badInnerHeader(.notUDP), ecm4 { $0[13] = 6 })
        expectError(.badInnerHeader(.lengthMismatch), ecm4 { $0[29] = 0x27 })
        expectError(.badInnerHeader(.badUDPChecksum), ecm4 { $0[31] ^= 1 })
        expectError(.badInnerHeader(.badUDPChecksum), ecm4 { $0[40] ^= 1 }) // a payload byte
        expectError(.badInnerHeader(.notControlPort(4341)), ecm4 { $0[27] = 0xf5 })
        // A zero UDP checksum is "none" over IPv4 only.
        #expect(throws: Never.self) { try ControlMessage.decode(ecm4 { $0[30] = 0; $0[31] = 0 }) }
        var v6 = Vectors.ecmIPv6
        v6[50] = 0
        v6[51] = 0
        expectError(.badInnerHeader(.badUDPChecksum), v6)
        v6 = Vectors.ecmIPv6
        v6[10] = 6
        expectError(.badInnerHeader(.notUDP), v6)
        // An ECM in an ECM.
        let nested = Vectors.hex("80 00 00 00") + Vectors.ecmIPv4
        #expect(throws: ControlMessageError.self) { try ControlMessage.decode(nested) }
        expectError(.truncated, Vectors.hex("80 00 00 00"))
    }

    @Test func encodingRefusesWhatDecodingWould() {
        let eid = EIDPrefix(.ipv4(0x0a00_0000), maskLength: 8)
        let rloc = LISPAddress.ipv4(0xc000_0201)
        let cases: [(ControlMessage, ControlMessageEncodingError)] = [
            (.mapRequest(MapRequest(nonce: 1, itrRLOCs: [], records: [eid])), .badITRRLOCCount(0)),
            (.mapRequest(MapRequest(nonce: 1, itrRLOCs: Array(repeating: rloc, count: 33), records: [eid])), .badITRRLOCCount(33)),
            (.mapRequest(MapRequest(nonce: 1, itrRLOCs: [rloc], records: [])), .noRecords),
            (.mapRequest(MapRequest(nonce: 1, itrRLOCs: [rloc], records: [EIDPrefix(.ipv4(0), maskLength: 33)])), .maskLengthTooLong(33)),
            (.mapReply(MapReply(nonce: 1, records: [MappingRecord(eid: eid, mapVersion: 0x1000, locators: [])])), .mapVersionTooLarge(0x1000)),
            (.mapReply(MapReply(nonce: 1, records: [.negative(eid: eid, action: MapReplyAction(rawValue: 8))])), .actionTooLarge(8)),
            (.mapReply(MapReply(nonce: 1, records: [MappingRecord(eid: eid, locators: Array(repeating: LocatorRecord(address: rloc), count: 65))])), .tooManyLocators(65)),
            (.mapReply(MapReply(nonce: 1, records: Array(repeating: .negative(eid: eid, action: .dropNoReason), count: 129))), .tooManyRecords(129)),
            (.mapReply(MapReply(nonce: 1, records: [.negative(eid: EIDPrefix(.instanceID(1, maskLength: 0, address: .instanceID(2, maskLength: 0, address: .none)), maskLength: 0), action: .noAction)])), .nestedLCAF),
            (.encapsulated(EncapsulatedControlMessage(message: .mapReply(MapReply(nonce: 1, records: [])), innerSource: rloc, innerDestination: .ipv6(IPAddress(high: 1, low: 1)))), .innerFamilyMismatch),
            (.encapsulated(EncapsulatedControlMessage(message: .mapReply(MapReply(nonce: 1, records: [])), innerSource: .none, innerDestination: .none)), .notAnIPAddress),
            (.encapsulated(EncapsulatedControlMessage(message: .encapsulated(EncapsulatedControlMessage(message: .mapReply(MapReply(nonce: 1, records: [])), innerSource: rloc, innerDestination: rloc)), innerSource: rloc, innerDestination: rloc)), .nestedEncapsulation),
        ]
        for (message, error) in cases {
            #expect(throws: error) { try message.encoded() }
        }
    }

    // MARK: Seeded property tests

    @Test func randomBytesNeverTrapAndWhatDecodesIsAFixedPoint() throws {
        var g = SplitMix64(seed: TestSeed.resolve(0x16a1))
        let replay = TestSeed.replay(g.seed)
        var decoded = 0
        for _ in 0..<20_000 {
            var bytes = g.bytes(Int(g.next() % 160))
            // Half the inputs get a known type, so the parsers beyond the type switch are reached.
            if !bytes.isEmpty, g.next() & 1 == 0 {
                let types: [UInt8] = [1, 2, 3, 4, 5, 8]
                bytes[0] = types[Int(g.next() % 6)] << 4 | bytes[0] & 0x0f
            }
            decoded += try checkFixedPoint(bytes, replay) ? 1 : 0
        }
        _ = decoded
    }

    @Test func mutatedVectorsNeverTrapAndWhatDecodesIsAFixedPoint() throws {
        var g = SplitMix64(seed: TestSeed.resolve(0x16a2))
        let replay = TestSeed.replay(g.seed)
        var decoded = 0
        let vectors = Vectors.all
        for _ in 0..<10_000 {
            var bytes = vectors[Int(g.next() % UInt64(vectors.count))].1
            for _ in 0...(g.next() % 3) {
                bytes[Int(g.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: g.next())
            }
            decoded += try checkFixedPoint(bytes, replay) ? 1 : 0
        }
        // Mutations of reserved bits, nonces and addresses still decode: the property was exercised.
        #expect(decoded > 1_000, "\(replay)")
    }

    /// Decodes `bytes`; when that succeeds, the message encodes, and the encoding decodes to the same
    /// message. Returns whether it decoded.
    func checkFixedPoint(_ bytes: [UInt8], _ replay: String) throws -> Bool {
        let message: ControlMessage
        do {
            message = try ControlMessage.decode(bytes)
        } catch {
            return false
        }
        let encoded = try message.encoded()
        let again = try ControlMessage.decode(encoded)
        if again != message { Issue.record("\(bytes) decodes to \(message), re-encoded to \(again) (\(replay))") }
        return true
    }

    @Test func randomModelsRoundTrip() throws {
        var g = ModelGenerator(seed: TestSeed.resolve(0x16a3))
        let replay = TestSeed.replay(g.random.seed)
        for _ in 0..<3_000 {
            let message = g.message()
            let bytes = try message.encoded()
            let decoded = try ControlMessage.decode(bytes)
            if decoded != message { Issue.record("\(message) decodes as \(decoded) (\(replay))") }
            // Every prefix of a valid message is refused.
            let cut = Int(g.random.next() % UInt64(bytes.count))
            if (try? ControlMessage.decode(Array(bytes[0..<cut]))) != nil { Issue.record("\(message) cut to \(cut) decodes (\(replay))") }
        }
    }
}
