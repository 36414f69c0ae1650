/// Map-Reply (type 2, RFC 9301 §5.4): the mappings for a Map-Request's EID prefixes, with its nonce.
///
///     |Type=2 |P|E|S|          Reserved               | Record Count  |
///     |                         Nonce (64)                            |
///     |  Record Count mapping records (see `MappingRecord`)            |
public struct MapReply: Hashable, Sendable {
    /// P: the reply to an RLOC-probe.
    public var probe: Bool
    /// E: the sender can echo nonces (RFC 9300 §10.1).
    public var echoNonceCapable: Bool
    /// S: LISP-SEC (RFC 9303) data follows the records; this codec does not parse it, so a reply
    /// with S set and that data is refused as trailing bytes.
    public var security: Bool
    /// The nonce of the Map-Request this answers.
    public var nonce: UInt64
    public var records: [MappingRecord]

    public init(nonce: UInt64, records: [MappingRecord], probe: Bool = false, echoNonceCapable: Bool = false,
                security: Bool = false) {
        self.nonce = nonce
        self.records = records
        self.probe = probe
        self.echoNonceCapable = echoNonceCapable
        self.security = security
    }

    static func decode(_ r: inout ByteReader, limits: DecodeLimits) throws(ControlMessageError) -> MapReply {
        let word = try r.u32()
        let nonce = try r.u64()
        let records = try decodeRecords(Int(word & 0xff), from: &r, limits: limits)
        return MapReply(nonce: nonce, records: records, probe: word & 1 << 27 != 0,
                        echoNonceCapable: word & 1 << 26 != 0, security: word & 1 << 25 != 0)
    }

    func encode(into w: inout ByteWriter) throws(ControlMessageEncodingError) {
        try checkRecordCounts(records)
        var word = UInt32(ControlMessageType.mapReply) << 28 | UInt32(records.count)
        if probe { word |= 1 << 27 }
        if echoNonceCapable { word |= 1 << 26 }
        if security { word |= 1 << 25 }
        w.u32(word)
        w.u64(nonce)
        for record in records { try record.encode(into: &w) }
    }
}
