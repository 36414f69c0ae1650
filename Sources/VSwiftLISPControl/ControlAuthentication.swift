import Crypto

/// MAC algorithms of Map-Register / Map-Notify authentication, by Algorithm ID (RFC 9301 §5.6 and
/// §12.5, the "LISP Algorithm ID Numbers" registry, which RFC 6830 named "LISP Key ID Numbers"):
/// 1 = HMAC-SHA-1-96-None (RFC 2404), 2 = HMAC-SHA-256-128-None (RFC 4868); 0 means none, which we
/// never accept. Not done: 3, HMAC-SHA256-128+HKDF-SHA256 (a per-message key derived from the
/// nonce), which §5.6 says implementations SHOULD implement.
/// On the wire the 16 bits before the Authentication Data Length are RFC 9301's Key ID (8 bits,
/// which pre-shared secret: `AuthenticationKey.keyID`) and Algorithm ID (8 bits, this). RFC 6830
/// had one 16-bit "Key ID" there (RFC 9301 §11); with RFC 9301's Key ID 0 the two read alike, so
/// RFC 6830's "key id 1 and 2" are these algorithms (`keyID` in `MapRegister`/`MapNotify` is the
/// whole 16-bit field).
public enum AuthenticationAlgorithm: UInt16, Hashable, Sendable, CaseIterable {
    case hmacSHA1_96 = 1
    case hmacSHA256_128 = 2

    /// RFC 6830's 16-bit Key ID for this algorithm (RFC 9301's Key ID 0 and this Algorithm ID).
    public var keyID: UInt16 { rawValue }

    /// The name RFC 9301 §12.5 gives it, less the "-None" KDF suffix.
    public var name: String { self == .hmacSHA1_96 ? "hmac-sha-1-96" : "hmac-sha-256-128" }

    /// An algorithm by the names operators write: the registry's names with or without "-None"
    /// and the hyphen after "sha" (`hmac-sha-256-128`, `HMAC-SHA-256-128-None`, `hmac-sha256-128`),
    /// the hash alone (`sha1`, `sha-256`, `sha256`; `sha2` as Cisco's `hash-function sha2`), or
    /// the number (`1`, `2`). Case does not matter. Nil for anything else (0 "None" included).
    public init?(name: String) {
        var text = name.lowercased()
        if text.hasSuffix("-none") { text.removeLast(5) }
        switch text {
        case "1", "sha1", "sha-1", "hmac-sha1", "hmac-sha-1", "hmac-sha1-96", "hmac-sha-1-96": self = .hmacSHA1_96
        case "2", "sha2", "sha256", "sha-256", "hmac-sha256", "hmac-sha-256", "hmac-sha256-128", "hmac-sha-256-128":
            self = .hmacSHA256_128
        default: return nil
        }
    }

    /// The truncated MAC the algorithm's name gives (96 or 128 bits).
    public var truncatedLength: Int { self == .hmacSHA1_96 ? 12 : 16 }
    /// The whole HMAC output (SHA-1: 20 bytes, SHA-256: 32 bytes).
    public var digestLength: Int { self == .hmacSHA1_96 ? 20 : 32 }

    /// Authentication Data lengths accepted on receipt. The Authentication Data Length field, not
    /// the key id, gives the field's size (§5.6), and deployed implementations disagree on it:
    /// OpenOverlayRouter and VPP (and tcpdump's sample captures) send the whole HMAC (20 or 32
    /// bytes) under key ids 1 and 2, the RFCs' algorithm names truncate it (12 or 16). Both are the
    /// same HMAC, one a prefix of the other, so both are accepted; anything else is `wrongLength`.
    public func accepts(length: Int) -> Bool { length == truncatedLength || length == digestLength }

    func mac(_ message: [UInt8], secret: [UInt8]) -> [UInt8] {
        let key = SymmetricKey(data: secret)
        switch self {
        case .hmacSHA1_96: return Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: key))
        case .hmacSHA256_128: return Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
        }
    }
}

/// A Map-Server's shared key: the algorithm, RFC 9301's Key ID and the secret, the configured
/// password as bytes (implementations take the password's bytes as the HMAC key, as
/// `init(password:)` does).
public struct AuthenticationKey: Hashable, Sendable {
    public var algorithm: AuthenticationAlgorithm
    /// RFC 9301 §5.6's Key ID: "a key-id value that identifies a pre-shared secret between an ETR
    /// and a Map-Server", so that a site can rotate between secrets "in a nondisruptive way". It
    /// names the secret; it changes nothing in the MAC's computation (the Algorithm IDs we support
    /// have no KDF: per-msg-key = PSK[Key ID], the secret itself). 0 is what RFC 6830 peers send.
    public var keyID: UInt8
    public var secret: [UInt8]
    /// How many bytes of the HMAC to send: `digestLength` (the default, what deployed map-servers
    /// send and check) or `truncatedLength` (the algorithm's name).
    public var sentLength: Int

    public init(algorithm: AuthenticationAlgorithm, keyID: UInt8 = 0, secret: [UInt8], sentLength: Int? = nil) {
        self.algorithm = algorithm
        self.keyID = keyID
        self.secret = secret
        self.sentLength = sentLength ?? algorithm.digestLength
    }

    public init(algorithm: AuthenticationAlgorithm, keyID: UInt8 = 0, password: String, sentLength: Int? = nil) {
        self.init(algorithm: algorithm, keyID: keyID, secret: Array(password.utf8), sentLength: sentLength)
    }

    /// The 16 bits on the wire before the Authentication Data Length: Key ID, then Algorithm ID
    /// (RFC 9301 §5.6's figure).
    public var field: UInt16 { UInt16(keyID) << 8 | algorithm.rawValue }
}

extension AuthenticationKey: CustomStringConvertible {
    /// The algorithm and sizes, never the secret (keys end up in logs and `show` output otherwise).
    public var description: String {
        "\(algorithm.name) (algorithm id \(algorithm.rawValue), key id \(keyID), \(secret.count)-byte secret, sends \(sentLength) bytes)"
    }
}

/// Why an authenticated message (Map-Register, Map-Notify, Map-Notify-Ack) was refused: each a
/// separate counter.
public enum AuthenticationError: Error, Hashable, Sendable {
    /// Not a Map-Register, Map-Notify or Map-Notify-Ack (no authentication field), or shorter than
    /// its header, or its Authentication Data runs past the end.
    case malformed
    /// The Key ID and Algorithm ID (the 16-bit field, RFC 9301 §5.6) are not the ones configured
    /// for the peer (Algorithm ID 0 = unauthenticated included).
    case wrongKeyID(UInt16)
    /// The Authentication Data Length is not one the key's algorithm produces.
    case wrongLength(UInt16)
    /// The MAC does not verify.
    case badMAC
    /// The key's `sentLength` is not one its algorithm produces (a configuration error).
    case badSentLength(Int)
}

/// HMAC authentication of Map-Register and Map-Notify(-Ack), RFC 9301 §5.6–5.7: the MAC is computed
/// over the whole message, from the type field to its last byte, with the Authentication Data
/// field set to zero, and then written into that field. RFC 9301 §5.6 says "through the end of the
/// last RLOC-Record", which would leave out an xTR-ID and site-ID. We never send the I bit, so
/// this differs from the text only for a received Map-Notify that carries them (OpenOverlayRouter
/// echoes its xTR-ID): which bytes its map-server MACs there is not checked against one yet.
/// These functions work on the encoded bytes, so what is verified is exactly what was received.
public enum ControlAuthentication {
    /// Offset of the Authentication Data: type word (4), nonce (8), key id (2), length (2).
    static let dataOffset = AuthenticatedBody.authenticationDataOffset

    /// The key id, authentication data range, of an encoded authenticated message.
    static func field(_ message: [UInt8]) throws(AuthenticationError) -> (keyID: UInt16, range: Range<Int>) {
        guard message.count >= dataOffset, let type = ControlMessageType.of(message),
              type == ControlMessageType.mapRegister || type == ControlMessageType.mapNotify
                || type == ControlMessageType.mapNotifyAck
        else { throw .malformed }
        let keyID = UInt16(message[12]) << 8 | UInt16(message[13])
        let length = Int(message[14]) << 8 | Int(message[15])
        guard dataOffset + length <= message.count else { throw .malformed }
        return (keyID, dataOffset..<dataOffset + length)
    }

    /// Writes the MAC into an encoded message whose Key ID and Algorithm ID are `key`'s and whose Authentication Data
    /// field (of `key.sentLength` bytes) is there, its contents ignored.
    public static func sign(_ message: inout [UInt8], key: AuthenticationKey) throws(AuthenticationError) {
        let (keyID, range) = try field(message)
        guard keyID == key.field else { throw .wrongKeyID(keyID) }
        guard range.count == key.sentLength, key.algorithm.accepts(length: range.count) else {
            throw .wrongLength(UInt16(range.count))
        }
        for i in range { message[i] = 0 }
        let mac = key.algorithm.mac(message, secret: key.secret)
        for (i, byte) in zip(range, mac) { message[i] = byte }
    }

    /// Checks the MAC of a received message against `key`. Distinct errors for a wrong key id, a
    /// wrong length and a bad MAC; the comparison takes the same time wherever the MAC differs.
    public static func verify(_ message: [UInt8], key: AuthenticationKey) throws(AuthenticationError) {
        let (keyID, range) = try field(message)
        guard keyID == key.field else { throw .wrongKeyID(keyID) }
        guard key.algorithm.accepts(length: range.count) else { throw .wrongLength(UInt16(range.count)) }
        var zeroed = message
        for i in range { zeroed[i] = 0 }
        let expected = key.algorithm.mac(zeroed, secret: key.secret)
        guard constantTimeEqual(message[range], expected[0..<range.count]) else { throw .badMAC }
    }

    /// Equal lengths and bytes, looking at every byte whatever the first difference (the lengths
    /// are public: they are on the wire).
    static func constantTimeEqual(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }
}

extension MapRegister {
    /// The message with Key ID, Algorithm ID and Authentication Data computed with `key` (the
    /// model's own 16-bit `keyID` and authentication data are replaced).
    public func encoded(authenticatingWith key: AuthenticationKey) throws -> [UInt8] {
        guard key.algorithm.accepts(length: key.sentLength) else { throw AuthenticationError.badSentLength(key.sentLength) }
        var copy = self
        copy.keyID = key.field
        copy.authenticationData = [UInt8](repeating: 0, count: key.sentLength)
        var bytes = try ControlMessage.mapRegister(copy).encoded()
        try ControlAuthentication.sign(&bytes, key: key)
        return bytes
    }
}

extension MapNotify {
    /// A Map-Notify (or, with `acknowledgement`, a Map-Notify-Ack) authenticated with `key`.
    public func encoded(authenticatingWith key: AuthenticationKey, acknowledgement: Bool = false) throws -> [UInt8] {
        guard key.algorithm.accepts(length: key.sentLength) else { throw AuthenticationError.badSentLength(key.sentLength) }
        var copy = self
        copy.keyID = key.field
        copy.authenticationData = [UInt8](repeating: 0, count: key.sentLength)
        var bytes = try (acknowledgement ? ControlMessage.mapNotifyAck(copy) : .mapNotify(copy)).encoded()
        try ControlAuthentication.sign(&bytes, key: key)
        return bytes
    }
}
