/// Map-Request (type 1, RFC 9301 §5.2–5.3): an ITR asks where an EID prefix lives; also an SMR
/// (solicit-map-request) and an RLOC-probe, by their bits.
///
///     |Type=1 |A|M|P|S|p|s|R|R|  Rsvd   |L|D|   IRC   | Record Count  |
///     |                         Nonce (64)                            |
///     |  Source-EID-AFI + Source EID Address                          |
///     |  ITR-RLOC-AFI + ITR-RLOC Address, IRC + 1 times               |
///     |  per record: Reserved (8) | EID mask-len (8) | EID-Prefix-AFI + EID-Prefix
///     |  Map-Reply Record (when M is set)                             |
public struct MapRequest: Hashable, Sendable {
    /// A: authoritative (set by a Map-Server forwarding a request, 0 from an ITR).
    public var authoritative: Bool
    /// P: an RLOC-probe; the reply comes straight from the ETR, with the `p` locator bit.
    public var probe: Bool
    /// S: a Solicit-Map-Request (SMR): "your mapping of me changed, ask again".
    public var solicitMapRequest: Bool
    /// p: sent by a Proxy-ITR.
    public var pitr: Bool
    /// s: SMR-invoked: this request answers an SMR.
    public var smrInvoked: Bool
    /// L: local-xTR: sent to another xTR of the same site.
    public var localXTR: Bool
    /// D: dont-map-reply: the sender wants no Map-Reply (e.g. a request only to trigger state).
    public var dontMapReply: Bool
    /// Matched by the Map-Reply; the only thing that ties a reply to this request (§5.2, §5.3).
    public var nonce: UInt64
    /// The EID of the host whose packet caused the request; `.none` for refreshes and RLOC-probes.
    public var sourceEID: LISPAddress
    /// Where to send the Map-Reply: 1 to 32 RLOCs of the requesting ITR. Any address decodes (some
    /// implementations send LCAFs here); the replier picks an IPv4 or IPv6 one it can reach.
    public var itrRLOCs: [LISPAddress]
    /// The EID prefixes asked about: one or more (a sender sends one, §5.2).
    public var records: [EIDPrefix]
    /// M: the requester's own mapping, sent along (e.g. with an SMR-invoked request).
    public var mapReplyRecord: MappingRecord?

    public init(nonce: UInt64, sourceEID: LISPAddress = .none, itrRLOCs: [LISPAddress], records: [EIDPrefix],
                authoritative: Bool = false, probe: Bool = false, solicitMapRequest: Bool = false, pitr: Bool = false,
                smrInvoked: Bool = false, localXTR: Bool = false, dontMapReply: Bool = false,
                mapReplyRecord: MappingRecord? = nil) {
        self.nonce = nonce
        self.sourceEID = sourceEID
        self.itrRLOCs = itrRLOCs
        self.records = records
        self.authoritative = authoritative
        self.probe = probe
        self.solicitMapRequest = solicitMapRequest
        self.pitr = pitr
        self.smrInvoked = smrInvoked
        self.localXTR = localXTR
        self.dontMapReply = dontMapReply
        self.mapReplyRecord = mapReplyRecord
    }

    static func decode(_ r: inout ByteReader, limits: DecodeLimits) throws(ControlMessageError) -> MapRequest {
        let word = try r.u32()
        let nonce = try r.u64()
        let recordCount = Int(word & 0xff)
        let itrCount = Int(word >> 8 & 0x1f) + 1
        guard recordCount > 0 else { throw .noRecords }
        guard recordCount <= limits.maxRecords else { throw .tooManyRecords(recordCount) }
        let sourceEID = try LISPAddress.decode(from: &r)
        var itrRLOCs: [LISPAddress] = []
        itrRLOCs.reserveCapacity(itrCount)
        for _ in 0..<itrCount { itrRLOCs.append(try LISPAddress.decode(from: &r)) }
        // A record is at least 4 bytes (Reserved, mask-len, AFI 0).
        try r.need(recordCount * 4)
        var records: [EIDPrefix] = []
        records.reserveCapacity(recordCount)
        for _ in 0..<recordCount {
            _ = try r.u8() // Reserved
            let maskLength = try r.u8()
            let eid = try LISPAddress.decode(from: &r)
            try EIDPrefix.check(eid, maskLength: maskLength)
            records.append(EIDPrefix(eid, maskLength: maskLength))
        }
        var mapReplyRecord: MappingRecord?
        if word & 1 << 26 != 0 {
            var budget = limits.maxLocatorsPerMessage
            mapReplyRecord = try MappingRecord.decode(from: &r, limits: limits, locatorBudget: &budget)
        }
        return MapRequest(nonce: nonce, sourceEID: sourceEID, itrRLOCs: itrRLOCs, records: records,
                          authoritative: word & 1 << 27 != 0, probe: word & 1 << 25 != 0,
                          solicitMapRequest: word & 1 << 24 != 0, pitr: word & 1 << 23 != 0,
                          smrInvoked: word & 1 << 22 != 0, localXTR: word & 1 << 14 != 0,
                          dontMapReply: word & 1 << 13 != 0, mapReplyRecord: mapReplyRecord)
    }

    func encode(into w: inout ByteWriter) throws(ControlMessageEncodingError) {
        guard (1...32).contains(itrRLOCs.count) else { throw .badITRRLOCCount(itrRLOCs.count) }
        guard !records.isEmpty else { throw .noRecords }
        guard records.count <= min(Int(UInt8.max), DecodeLimits.default.maxRecords) else {
            throw .tooManyRecords(records.count)
        }
        var word = UInt32(ControlMessageType.mapRequest) << 28
        if authoritative { word |= 1 << 27 }
        if mapReplyRecord != nil { word |= 1 << 26 }
        if probe { word |= 1 << 25 }
        if solicitMapRequest { word |= 1 << 24 }
        if pitr { word |= 1 << 23 }
        if smrInvoked { word |= 1 << 22 }
        if localXTR { word |= 1 << 14 }
        if dontMapReply { word |= 1 << 13 }
        word |= UInt32(itrRLOCs.count - 1) << 8 | UInt32(records.count)
        w.u32(word)
        w.u64(nonce)
        try sourceEID.encode(into: &w)
        for rloc in itrRLOCs { try rloc.encode(into: &w) }
        for record in records {
            let eid = try record.validated()
            w.u8(0)
            w.u8(eid.maskLength)
            try eid.address.encode(into: &w)
        }
        if let mapReplyRecord {
            try checkRecordCounts([mapReplyRecord])
            try mapReplyRecord.encode(into: &w)
        }
    }
}
