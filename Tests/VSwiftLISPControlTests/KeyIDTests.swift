import Testing
@testable import VSwiftLISPControl

/// RFC 9301 §5.6: the 16 bits RFC 6830 called "Key ID" are now Key ID (8 bits: "a key-id value
/// that identifies a pre-shared secret between an ETR and a Map-Server") and Algorithm ID (8 bits,
/// §12.5). With Algorithm IDs 1 and 2 (no KDF) the per-message key is "PSK[Key ID]", the secret
/// itself: the Key ID changes the MAC only as a byte of the message it covers. The expected MACs
/// were computed with Python's hmac module over `Vectors.mapRegister` with the field set and the
/// Authentication Data zeroed.
@Suite("LISP authentication Key ID (RFC 9301 §5.6, §12.5)")
struct KeyIDTests {
    @Test func rfc9301_5_6_keyID7WithHMACSHA1IsSentAndAuthenticatedOverTheField() throws {
        let key = AuthenticationKey(algorithm: .hmacSHA1_96, keyID: 7, secret: Vectors.key)
        #expect(key.field == 0x0701)
        let bytes = try MessageVectorTests.register.encoded(authenticatingWith: key)
        var expected = Vectors.mapRegister
        expected[12] = 7 // Key ID 7; expected[13] stays Algorithm ID 1
        expected.replaceSubrange(16..<36, with: Vectors.hex("31 35 21 4e a0 b9 d5 fc 7f ed a8 74 e6 76 0e 25 b0 21 25 00"))
        #expect(bytes == expected)
        try ControlAuthentication.verify(bytes, key: key)
    }

    @Test func rfc9301_5_6_keyID255WithHMACSHA256() throws {
        let key = AuthenticationKey(algorithm: .hmacSHA256_128, keyID: 255, secret: Vectors.key)
        let bytes = try MessageVectorTests.register.encoded(authenticatingWith: key)
        #expect(Array(bytes[12...15]) == [0xff, 0x02, 0x00, 0x20])
        #expect(Array(bytes[16..<48]) == Vectors.hex("""
            22 47 05 b3 ac b6 36 5b f3 ef 9f ae a4 b8 60 84 39 d2 19 d3 7e 83 12 22 05 5d d6 a8 7e 39 94 b9
            """))
        #expect(Array(bytes[48...]) == Array(Vectors.mapRegister[36...]))
        try ControlAuthentication.verify(bytes, key: key)
        guard case .mapRegister(let decoded) = try ControlMessage.decode(bytes) else { Issue.record("not a Map-Register"); return }
        #expect(decoded.keyID == 0xff02)
    }

    /// A message under another Key ID names another secret: refused before the MAC is computed,
    /// whether only the Key ID or only the Algorithm ID differs.
    @Test func rfc9301_5_6_anotherKeyIDOrAlgorithmIsRefused() throws {
        let key7 = AuthenticationKey(algorithm: .hmacSHA1_96, keyID: 7, secret: Vectors.key)
        let bytes = try MessageVectorTests.register.encoded(authenticatingWith: key7)
        for other in [
            AuthenticationKey(algorithm: .hmacSHA1_96, keyID: 0, secret: Vectors.key),
            AuthenticationKey(algorithm: .hmacSHA1_96, keyID: 8, secret: Vectors.key),
            AuthenticationKey(algorithm: .hmacSHA256_128, keyID: 7, secret: Vectors.key),
        ] {
            #expect(throws: AuthenticationError.wrongKeyID(0x0701)) { try ControlAuthentication.verify(bytes, key: other) }
        }
        // The Key ID is covered by the MAC: rewriting it (and claiming the other secret) fails.
        var rewritten = bytes
        rewritten[12] = 8
        #expect(throws: AuthenticationError.badMAC) {
            try ControlAuthentication.verify(rewritten, key: AuthenticationKey(algorithm: .hmacSHA1_96, keyID: 8, secret: Vectors.key))
        }
    }

    @Test func rfc9301_5_7_mapNotifyCarriesTheKeyID() throws {
        let key = AuthenticationKey(algorithm: .hmacSHA256_128, keyID: 3, secret: Vectors.key, sentLength: 16)
        let bytes = try MapNotify(nonce: 5, records: [MessageVectorTests.registeredRecord]).encoded(authenticatingWith: key)
        #expect(Array(bytes[12...15]) == [3, 2, 0, 16])
        try ControlAuthentication.verify(bytes, key: key)
    }

    @Test(arguments: [
        ("hmac-sha-1-96", 1), ("HMAC-SHA-1-96-None", 1), ("hmac-sha1-96", 1), ("sha1", 1), ("SHA-1", 1), ("1", 1),
        ("hmac-sha-256-128", 2), ("HMAC-SHA-256-128-None", 2), ("hmac-sha256-128", 2), ("sha256", 2), ("sha-256", 2),
        ("sha2", 2), ("2", 2),
    ])
    func rfc9301_12_5_algorithmNames(name: String, id: UInt16) {
        #expect(AuthenticationAlgorithm(name: name)?.rawValue == id)
    }

    @Test(arguments: ["", "0", "none", "3", "HMAC-SHA256-128+HKDF-SHA256", "md5", "sha-1-96-none-none", "sha384"])
    func rfc9301_12_5_otherAlgorithmsAreNotNamed(name: String) {
        #expect(AuthenticationAlgorithm(name: name) == nil)
    }
}
