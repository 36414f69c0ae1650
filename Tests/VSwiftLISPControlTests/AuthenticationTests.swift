import Testing
@testable import VSwiftLISPControl

/// RFC 9301 §5.6–5.7 authentication: HMAC over the whole message with the Authentication Data
/// zeroed, key id 1 = HMAC-SHA-1-96, 2 = HMAC-SHA-256-128. The expected MACs were computed with
/// Python's hmac module (see `Vectors`).
@Suite("LISP control authentication (RFC 9301 §5.6)")
struct AuthenticationTests {
    static let sha1 = AuthenticationKey(algorithm: .hmacSHA1_96, secret: Vectors.key)
    static let sha256 = AuthenticationKey(algorithm: .hmacSHA256_128, secret: Vectors.key)

    @Test func rfc2202_hmacSHA1TestCase2() {
        // RFC 2202 §3 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = AuthenticationAlgorithm.hmacSHA1_96.mac(Array("what do ya want for nothing?".utf8),
                                                          secret: Array("Jefe".utf8))
        #expect(mac == Vectors.hex("ef fc df 6a e5 eb 2f a2 d2 74 16 d5 f1 84 df 9c 25 9a 7c 79"))
    }

    @Test func rfc9301_5_6_signsTheRegisterVector() throws {
        let bytes = try MessageVectorTests.register.encoded(authenticatingWith: Self.sha1)
        #expect(bytes == Vectors.mapRegister)
        try ControlAuthentication.verify(bytes, key: Self.sha1)
    }

    @Test(arguments: [(1, 12), (2, 32), (2, 16)])
    func rfc9301_5_6_otherKeyIDsAndLengths(keyID: Int, length: Int) throws {
        let algorithm = AuthenticationAlgorithm(rawValue: UInt16(keyID))!
        let key = AuthenticationKey(algorithm: algorithm, secret: Vectors.key, sentLength: length)
        let bytes = try MessageVectorTests.register.encoded(authenticatingWith: key)
        let expected: [UInt8] = switch (keyID, length) {
        case (1, 12): Vectors.sha1Truncated
        case (2, 32): Vectors.sha256Full
        default: Vectors.sha256Truncated
        }
        #expect(bytes[12...15] == [0, UInt8(keyID), 0, UInt8(length)])
        #expect(Array(bytes[16..<16 + length]) == expected)
        // Everything else is the 20-byte vector's, with the other field.
        #expect(Array(bytes[(16 + length)...]) == Array(Vectors.mapRegister[36...]))
        try ControlAuthentication.verify(bytes, key: key)
        // The receiver's key need not say which length the sender chose.
        try ControlAuthentication.verify(bytes, key: AuthenticationKey(algorithm: algorithm, secret: Vectors.key))
    }

    @Test func rfc9301_5_7_mapNotifyAndAckAuthenticated() throws {
        let notify = MapNotify(nonce: 9, records: [MessageVectorTests.registeredRecord])
        for ack in [false, true] {
            let bytes = try notify.encoded(authenticatingWith: Self.sha256, acknowledgement: ack)
            #expect(bytes[0] >> 4 == (ack ? 5 : 4))
            try ControlAuthentication.verify(bytes, key: Self.sha256)
            switch try ControlMessage.decode(bytes) {
            case .mapNotify(let m) where !ack, .mapNotifyAck(let m) where ack:
                #expect(m.keyID == 2 && m.authenticationData.count == 32 && m.records == notify.records)
            default:
                Issue.record("decoded as another message type")
            }
        }
    }

    @Test func wrongKeyIDIsItsOwnError() throws {
        #expect(throws: AuthenticationError.wrongKeyID(1)) {
            try ControlAuthentication.verify(Vectors.mapRegister, key: Self.sha256)
        }
        var unauthenticated = Vectors.mapRegister
        unauthenticated[13] = 0 // key id 0: "no authentication" is never accepted
        #expect(throws: AuthenticationError.wrongKeyID(0)) {
            try ControlAuthentication.verify(unauthenticated, key: Self.sha1)
        }
    }

    @Test func wrongLengthIsItsOwnError() throws {
        // Key id 1 with a 32-byte field: well formed, but not an HMAC-SHA-1 length.
        let key = AuthenticationKey(algorithm: .hmacSHA256_128, secret: Vectors.key)
        var bytes = try MessageVectorTests.register.encoded(authenticatingWith: key)
        bytes[13] = 1
        #expect(throws: AuthenticationError.wrongLength(32)) { try ControlAuthentication.verify(bytes, key: Self.sha1) }
        #expect(throws: AuthenticationError.badSentLength(21)) {
            try MessageVectorTests.register.encoded(
                authenticatingWith: AuthenticationKey(algorithm: .hmacSHA1_96, secret: Vectors.key, sentLength: 21))
        }
    }

    @Test func badMACIsItsOwnError() throws {
        // Any flipped bit, in the MAC or anywhere else in the message, fails as .badMAC.
        for index in [0, 5, 16, 35, 36, Vectors.mapRegister.count - 1] {
            var bytes = Vectors.mapRegister
            bytes[index] ^= 0x01
            #expect(throws: AuthenticationError.badMAC, "byte \(index)") {
                try ControlAuthentication.verify(bytes, key: Self.sha1)
            }
        }
        let otherKey = AuthenticationKey(algorithm: .hmacSHA1_96, password: "vswift-kez")
        #expect(throws: AuthenticationError.badMAC) { try ControlAuthentication.verify(Vectors.mapRegister, key: otherKey) }
    }

    @Test func malformedAuthenticatedMessages() {
        // Too short for the header, a type without authentication, a length past the end.
        for bytes in [Array(Vectors.mapRegister[0..<15]), Vectors.mapReply, Vectors.mapRequestSMRInvoked] {
            #expect(throws: AuthenticationError.malformed) { try ControlAuthentication.verify(bytes, key: Self.sha1) }
        }
        var long = Vectors.mapRegister
        long[14] = 0xff
        #expect(throws: AuthenticationError.malformed) { try ControlAuthentication.verify(long, key: Self.sha1) }
        #expect(throws: AuthenticationError.malformed) { try ControlAuthentication.verify([], key: Self.sha1) }
    }

    @Test func keysNeverPrintTheirSecret() {
        let key = AuthenticationKey(algorithm: .hmacSHA256_128, password: "s3cret-s3cret")
        #expect(key.description == "hmac-sha-256-128 (algorithm id 2, key id 0, 13-byte secret, sends 32 bytes)")
        #expect(!String(reflecting: key).contains("s3cret"))
        #expect(!"\(key)".contains("115")) // no byte values either ("s" is 115)
    }

    @Test func constantTimeCompare() {
        #expect(ControlAuthentication.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!ControlAuthentication.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!ControlAuthentication.constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(ControlAuthentication.constantTimeEqual([], []))
    }
}
