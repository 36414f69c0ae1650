/// The xTR-ID and site-ID a Map-Register carries when its I bit is set (RFC 9301 §5.6): 128 bits
/// that name the xTR across RLOC changes, and 64 bits that name its site.
public struct XTRIdentity: Hashable, Sendable {
    public var xtrIDHigh: UInt64
    public var xtrIDLow: UInt64
    public var siteID: UInt64

    public init(xtrIDHigh: UInt64, xtrIDLow: UInt64, siteID: UInt64) {
        self.xtrIDHigh = xtrIDHigh
        self.xtrIDLow = xtrIDLow
        self.siteID = siteID
    }
}

/// Map-Register (type 3, RFC 9301 §5.6): an ETR registers its EID prefixes with a Map-Server.
///
///     |Type=3 |P|S|I|R|      Reserved       |E|T|a|R|M| Record Count  |
///     |                         Nonce (64)                            |
///     |    Key ID     | Algorithm ID  |  Authentication Data Length   |
///     ~                     Authentication Data                       ~
///     |  Record Count mapping records (see `MappingRecord`)            |
///     |  xTR-ID (128) and site-ID (64), when I is set                  |
///
/// The Authentication Data is an HMAC over the whole message with the field zeroed
/// (`ControlAuthentication`); `encoded(authenticatingWith:)` fills it in. RFC 9301's bit 7 is
/// reserved (the first R above, see `rBit`); E, T, a and its own R (bit 22) are not modelled:
/// sent as 0, ignored on receipt (we use none of them).
public struct MapRegister: Hashable, Sendable {
    /// P: proxy Map-Reply: the Map-Server answers Map-Requests for these prefixes itself.
    public var proxyMapReply: Bool
    /// S: security-capable (LISP-SEC, RFC 9303).
    public var securityCapable: Bool
    /// R (bit 7): named in the figures of the RFC 6833bis drafts, OpenOverlayRouter and tcpdump
    /// (NAT traversal: relayed by an RTR); RFC 9301 reserves it. Kept so a received value survives.
    public var rBit: Bool
    /// M: want-map-notify: the Map-Server acknowledges with a Map-Notify (§5.7).
    public var wantMapNotify: Bool
    /// Echoed by the Map-Notify that acknowledges this register.
    public var nonce: UInt64
    /// RFC 9301 §5.6's Key ID (high byte: which pre-shared secret) and Algorithm ID (low byte:
    /// which MAC, §12.5 "LISP Algorithm ID Numbers"), read as one 16-bit field: RFC 6830's
    /// 16-bit Key ID, whose values 1 and 2 are byte for byte RFC 9301's Key ID 0 with Algorithm
    /// ID 1 (HMAC-SHA-1-96) and 2 (HMAC-SHA-256-128), what deployed map-servers send.
    public var keyID: UInt16
    public var authenticationData: [UInt8]
    public var records: [MappingRecord]
    /// I: the xTR-ID and site-ID follow the records.
    public var xtrIdentity: XTRIdentity?

    public init(nonce: UInt64, records: [MappingRecord], keyID: UInt16 = 0, authenticationData: [UInt8] = [],
                proxyMapReply: Bool = false, securityCapable: Bool = false, rBit: Bool = false,
                wantMapNotify: Bool = true, xtrIdentity: XTRIdentity? = nil) {
        self.nonce = nonce
        self.records = records
        self.keyID = keyID
        self.authenticationData = authenticationData
        self.proxyMapReply = proxyMapReply
        self.securityCapable = securityCapable
        self.rBit = rBit
        self.wantMapNotify = wantMapNotify
        self.xtrIdentity = xtrIdentity
    }

    var headerWord: UInt32 {
        var word = UInt32(ControlMessageType.mapRegister) << 28 | UInt32(records.count)
        if proxyMapReply { word |= 1 << 27 }
        if securityCapable { word |= 1 << 26 }
        if xtrIdentity != nil { word |= 1 << 25 }
        if rBit { word |= 1 << 24 }
        if wantMapNotify { word |= 1 << 8 }
        return word
    }

    static func decode(_ r: inout ByteReader, limits: DecodeLimits) throws(ControlMessageError) -> MapRegister {
        let body = try AuthenticatedBody.decode(&r, xtrIDPresent: { $0 & 1 << 25 != 0 }, limits: limits)
        let word = body.word
        return MapRegister(nonce: body.nonce, records: body.records, keyID: body.keyID,
                           authenticationData: body.authenticationData, proxyMapReply: word & 1 << 27 != 0,
                           securityCapable: word & 1 << 26 != 0, rBit: word & 1 << 24 != 0,
                           wantMapNotify: word & 1 << 8 != 0, xtrIdentity: body.xtrIdentity)
    }

    func encode(into w: inout ByteWriter) throws(ControlMessageEncodingError) {
        try AuthenticatedBody(word: headerWord, nonce: nonce, keyID: keyID, authenticationData: authenticationData,
                              records: records, xtrIdentity: xtrIdentity).encode(into: &w)
    }
}

/// Map-Notify (type 4) and Map-Notify-Ack (type 5), RFC 9301 §5.7: a Map-Server acknowledges a
/// Map-Register (or tells of a change), an xTR acknowledges a Map-Notify. Same layout as a
/// Map-Register with no flags but I:
///
///     |Type=4/5|I|        Reserved                     | Record Count  |
///
/// RFC 9301's figure has no I bit; OpenOverlayRouter (and tcpdump's dissector) put the Map-Register's
/// xTR-ID and site-ID back in the Map-Notify with bit 4 (0x08 of the first byte) set, so it is read.
/// Their bit 5 (RTR authentication data follows, NAT traversal) is not: such data is refused as
/// trailing bytes.
public struct MapNotify: Hashable, Sendable {
    /// The nonce of the Map-Register acknowledged (or, in a Map-Notify-Ack, of the Map-Notify).
    public var nonce: UInt64
    public var keyID: UInt16
    public var authenticationData: [UInt8]
    public var records: [MappingRecord]
    public var xtrIdentity: XTRIdentity?

    public init(nonce: UInt64, records: [MappingRecord], keyID: UInt16 = 0, authenticationData: [UInt8] = [],
                xtrIdentity: XTRIdentity? = nil) {
        self.nonce = nonce
        self.records = records
        self.keyID = keyID
        self.authenticationData = authenticationData
        self.xtrIdentity = xtrIdentity
    }

    func headerWord(type: UInt8) -> UInt32 {
        UInt32(type) << 28 | (xtrIdentity != nil ? 1 << 27 : 0) | UInt32(records.count)
    }

    static func decode(_ r: inout ByteReader, limits: DecodeLimits) throws(ControlMessageError) -> MapNotify {
        let body = try AuthenticatedBody.decode(&r, xtrIDPresent: { $0 & 1 << 27 != 0 }, limits: limits)
        return MapNotify(nonce: body.nonce, records: body.records, keyID: body.keyID,
                         authenticationData: body.authenticationData, xtrIdentity: body.xtrIdentity)
    }

    func encode(type: UInt8, into w: inout ByteWriter) throws(ControlMessageEncodingError) {
        try AuthenticatedBody(word: headerWord(type: type), nonce: nonce, keyID: keyID,
                              authenticationData: authenticationData, records: records,
                              xtrIdentity: xtrIdentity).encode(into: &w)
    }
}

/// What Map-Register, Map-Notify and Map-Notify-Ack share after their first word: nonce, key id,
/// authentication data, records, and the xTR-ID/site-ID when the type's I bit says so.
struct AuthenticatedBody {
    var word: UInt32
    var nonce: UInt64
    var keyID: UInt16
    var authenticationData: [UInt8]
    var records: [MappingRecord]
    var xtrIdentity: XTRIdentity?

    /// Offset of the Authentication Data field: type word (4), nonce (8), key id (2), length (2).
    static let authenticationDataOffset = 16

    static func decode(_ r: inout ByteReader, xtrIDPresent: (UInt32) -> Bool,
                       limits: DecodeLimits) throws(ControlMessageError) -> AuthenticatedBody {
        let word = try r.u32()
        let nonce = try r.u64()
        let keyID = try r.u16()
        let authLength = try r.u16()
        let auth = try r.take(Int(authLength))
        let records = try decodeRecords(Int(word & 0xff), from: &r, limits: limits)
        var identity: XTRIdentity?
        if xtrIDPresent(word) {
            let high = try r.u64()
            let low = try r.u64()
            identity = XTRIdentity(xtrIDHigh: high, xtrIDLow: low, siteID: try r.u64())
        }
        return AuthenticatedBody(word: word, nonce: nonce, keyID: keyID, authenticationData: auth,
                                 records: records, xtrIdentity: identity)
    }

    func encode(into w: inout ByteWriter) throws(ControlMessageEncodingError) {
        try checkRecordCounts(records)
        guard authenticationData.count <= Int(UInt16.max) else { throw .fieldTooLong(authenticationData.count) }
        w.u32(word)
        w.u64(nonce)
        w.u16(keyID)
        w.u16(UInt16(authenticationData.count))
        w.append(authenticationData)
        for record in records { try record.encode(into: &w) }
        if let xtrIdentity {
            w.u64(xtrIdentity.xtrIDHigh)
            w.u64(xtrIdentity.xtrIDLow)
            w.u64(xtrIdentity.siteID)
        }
    }
}
