import Testing
import VSwiftLISPControl
import VSwiftPacket

/// Each message of RFC 9301 §5 against a hand-written vector (`Vectors`): the value model encodes
/// to the vector byte for byte, and the vector decodes to the model.
@Suite("LISP control messages: RFC 9301 vectors")
struct MessageVectorTests {
    static func ip(_ text: String) -> IPAddress { IPAddress(text)! }
    static func v4(_ text: String) -> LISPAddress { LISPAddress(ip(text)) }
    static func v6(_ text: String) -> LISPAddress { .ipv6(ip(text)) }

    func check(_ message: ControlMessage, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try message.encoded() == bytes, sourceLocation: sourceLocation)
        #expect(try ControlMessage.decode(bytes) == message, sourceLocation: sourceLocation)
    }

    static let smrInvokedRequest = MapRequest(
        nonce: 0x0102_0304_0506_0708, sourceEID: v4("10.1.0.1"), itrRLOCs: [v4("192.0.2.1")],
        records: [EIDPrefix(v4("10.2.0.0"), maskLength: 24)], smrInvoked: true)

    @Test func rfc9301_5_2_mapRequestSMRInvoked() throws {
        try check(.mapRequest(Self.smrInvokedRequest), Vectors.mapRequestSMRInvoked)
    }

    @Test func rfc9301_5_2_rlocProbeWithMapReplyRecordAndInstanceIDv6() throws {
        let own = MappingRecord(
            eid: EIDPrefix(instanceID: 1000, Self.ip("2001:db8:1::"), maskLength: 64), ttl: 1440,
            locators: [LocatorRecord(address: Self.v4("192.0.2.1"), priority: 1, weight: 100, local: true)])
        let request = MapRequest(
            nonce: 0xdead_beef_0000_0001, sourceEID: .none,
            itrRLOCs: [Self.v4("192.0.2.1"), Self.v6("2001:db8::1")],
            records: [EIDPrefix(instanceID: 1000, Self.ip("2001:db8:2::"), maskLength: 64)],
            probe: true, localXTR: true, dontMapReply: true, mapReplyRecord: own)
        try check(.mapRequest(request), Vectors.mapRequestProbe)
        #expect(request.records[0].address.instanceID == 1000)
        #expect(request.records[0].description == "[1000]2001:db8:2::/64")
    }

    @Test func rfc9301_5_4_mapReplyTwoLocatorsInstanceIDv4() throws {
        let record = MappingRecord(
            eid: EIDPrefix(instanceID: 1000, Self.ip("10.2.0.0"), maskLength: 24), ttl: 1440, mapVersion: 42,
            locators: [LocatorRecord(address: Self.v4("192.0.2.2"), priority: 1, weight: 50),
                       LocatorRecord(address: Self.v6("2001:db8::2"), priority: 2, weight: 50, reachable: false)])
        try check(.mapReply(MapReply(nonce: 0x0102_0304_0506_0708, records: [record], echoNonceCapable: true)),
                  Vectors.mapReply)
    }

    @Test(arguments: 0...7)
    func rfc9301_5_4_negativeMapReplyEachACT(act: Int) throws {
        let action = MapReplyAction(rawValue: UInt8(act))
        let record = MappingRecord.negative(eid: EIDPrefix(Self.v4("10.3.0.0"), maskLength: 16), ttl: 15, action: action)
        try check(.mapReply(MapReply(nonce: 0x0102_0304_0506_0708, records: [record])),
                  Vectors.negativeMapReply(act: UInt8(act)))
        let names = ["no-action", "natively-forward", "send-map-request", "drop", "drop-policy-denied",
                     "drop-auth-failure", "unassigned-6", "unassigned-7"]
        #expect(action.description == names[act])
    }

    @Test func rfc9301_5_4_actNamedValues() {
        #expect(MapReplyAction.noAction.rawValue == 0)
        #expect(MapReplyAction.nativelyForward.rawValue == 1)
        #expect(MapReplyAction.sendMapRequest.rawValue == 2)
        #expect(MapReplyAction.dropNoReason.rawValue == 3)
        #expect(MapReplyAction.dropPolicyDenied.rawValue == 4)
        #expect(MapReplyAction.dropAuthenticationFailure.rawValue == 5)
    }

    static let registeredRecord = MappingRecord(
        eid: EIDPrefix(instanceID: 1000, ip("10.1.0.0"), maskLength: 16), ttl: 1440,
        locators: [LocatorRecord(address: v4("192.0.2.1"), priority: 1, weight: 100)])
    static let identity = XTRIdentity(xtrIDHigh: 0x1011_1213_1415_1617, xtrIDLow: 0x1819_1a1b_1c1d_1e1f, siteID: 7)

    static var register: MapRegister {
        MapRegister(nonce: 0x1122_3344_5566_7788, records: [registeredRecord], keyID: 1,
                    authenticationData: Array(Vectors.mapRegister[16..<36]), wantMapNotify: true,
                    xtrIdentity: identity)
    }

    @Test func rfc9301_5_6_mapRegisterWithXTRIDAndWantMapNotify() throws {
        try check(.mapRegister(Self.register), Vectors.mapRegister)
    }

    @Test func rfc9301_5_6_mapRegisterFlags() throws {
        // P (bit 4), S (bit 5), R (bit 7) and M (bit 23), one at a time, on an otherwise empty register.
        let cases: [(MapRegister, UInt32)] = [
            (MapRegister(nonce: 1, records: [], proxyMapReply: true, wantMapNotify: false), 1 << 27),
            (MapRegister(nonce: 1, records: [], securityCapable: true, wantMapNotify: false), 1 << 26),
            (MapRegister(nonce: 1, records: [], rBit: true, wantMapNotify: false), 1 << 24),
            (MapRegister(nonce: 1, records: [], wantMapNotify: true), 1 << 8),
        ]
        for (register, bit) in cases {
            let word = UInt32(3) << 28 | bit
            let bytes = [UInt8(word >> 24), UInt8(word >> 16 & 0xff), UInt8(word >> 8 & 0xff), UInt8(word & 0xff)]
                + [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
            try check(.mapRegister(register), bytes)
        }
    }

    @Test func rfc9301_5_7_mapNotifyAndAck() throws {
        let notify = MapNotify(nonce: 0x1122_3344_5566_7788, records: [Self.registeredRecord], keyID: 1,
                               authenticationData: Array(Vectors.mapRegister[16..<36]), xtrIdentity: Self.identity)
        try check(.mapNotify(notify), Vectors.mapNotify)
        var ack = notify
        ack.xtrIdentity = nil
        var ackBytes = Vectors.mapNotifyAck
        ackBytes[0] = 0x50 // Type=5 without I
        ackBytes.removeLast(24)
        try check(.mapNotifyAck(ack), ackBytes)
    }

    @Test func rfc9301_5_8_ecmIPv4() throws {
        let ecm = EncapsulatedControlMessage(
            message: .mapRequest(Self.smrInvokedRequest), innerSource: Self.v4("10.1.0.1"),
            innerDestination: Self.v4("10.2.0.5"), sourcePort: 49152)
        try check(.encapsulated(ecm), Vectors.ecmIPv4)
        #expect(ecm.mapRequest == Self.smrInvokedRequest)
    }

    @Test func rfc9301_5_8_ecmIPv6() throws {
        let ecm = EncapsulatedControlMessage(
            message: .mapRequest(Self.smrInvokedRequest), innerSource: Self.v6("2001:db8:1::1"),
            innerDestination: Self.v6("2001:db8:2::5"), sourcePort: 49152)
        try check(.encapsulated(ecm), Vectors.ecmIPv6)
    }

    @Test func rfc9301_5_8_ecmFlags() throws {
        for (index, bit) in [UInt8(0x08), 0x04, 0x02, 0x01].enumerated() {
            var ecm = EncapsulatedControlMessage(
                message: .mapRequest(Self.smrInvokedRequest), innerSource: Self.v4("10.1.0.1"),
                innerDestination: Self.v4("10.2.0.5"), sourcePort: 49152)
            ecm.security = index == 0
            ecm.ddt = index == 1
            ecm.toETR = index == 2
            ecm.toMapServer = index == 3
            var bytes = Vectors.ecmIPv4
            bytes[0] |= bit
            try check(.encapsulated(ecm), bytes)
        }
    }

    @Test func rfc9301_5_2_mapRequestFlagsEachAlone() throws {
        // A (bit 4), S (bit 7), p (bit 8): the bits the other vectors leave clear.
        var a = Self.smrInvokedRequest
        a.smrInvoked = false
        a.authoritative = true
        var s = a
        s.authoritative = false
        s.solicitMapRequest = true
        var p = a
        p.authoritative = false
        p.pitr = true
        for (request, word) in [(a, UInt32(0x1800_0001)), (s, 0x1100_0001), (p, 0x1080_0001)] {
            var bytes = Vectors.mapRequestSMRInvoked
            bytes[0] = UInt8(word >> 24)
            bytes[1] = UInt8(word >> 16 & 0xff)
            try check(.mapRequest(request), bytes)
        }
    }

    @Test func rfc8060_4_1_instanceIDAddresses() throws {
        let eid4 = LISPAddress.instanceID(7, maskLength: 0, address: .ipv4(0x0a00_0000))
        let eid6 = LISPAddress.instanceID(0xffff_ffff, maskLength: 0, address: Self.v6("2001:db8::"))
        #expect(eid4.description == "[7]10.0.0.0")
        #expect(eid6.description == "[4294967295]2001:db8::")
        #expect(eid4.ipAddress == Self.ip("10.0.0.0"))
        #expect(eid6.maxMaskLength == 128)
        #expect(LISPAddress.instanceID(1, maskLength: 8, address: .none).description == "[1/8]none")
    }
}
