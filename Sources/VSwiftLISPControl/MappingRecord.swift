/// The action a negative Map-Reply asks for (RFC 9301 §5.4, "ACT"); meaningful when the record has
/// no locators. Kept as the 3-bit value, so unassigned values (6, 7) decode and re-encode unchanged;
/// a receiver treats those as a drop.
public struct MapReplyAction: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// (0) No-Action: the mapping is what the locator set says (an empty set: no RLOC).
    public static let noAction = MapReplyAction(rawValue: 0)
    /// (1) Natively-Forward: send the packet without LISP encapsulation.
    public static let nativelyForward = MapReplyAction(rawValue: 1)
    /// (2) Send-Map-Request: ask again for destinations in the prefix (for more specifics).
    public static let sendMapRequest = MapReplyAction(rawValue: 2)
    /// (3) Drop/No-Reason.
    public static let dropNoReason = MapReplyAction(rawValue: 3)
    /// (4) Drop/Policy-Denied.
    public static let dropPolicyDenied = MapReplyAction(rawValue: 4)
    /// (5) Drop/Auth-Failure.
    public static let dropAuthenticationFailure = MapReplyAction(rawValue: 5)

    public var description: String {
        switch rawValue {
        case 0: return "no-action"
        case 1: return "natively-forward"
        case 2: return "send-map-request"
        case 3: return "drop"
        case 4: return "drop-policy-denied"
        case 5: return "drop-auth-failure"
        default: return "unassigned-\(rawValue)"
        }
    }
}

/// One locator of a mapping record (RFC 9301 §5.4, the "Loc" part).
public struct LocatorRecord: Hashable, Sendable {
    /// Unicast priority: lower is preferred; 255 means "do not use for unicast".
    public var priority: UInt8
    /// Unicast weight among locators of equal priority (0: spread equally among them... see §5.4).
    public var weight: UInt8
    public var multicastPriority: UInt8
    public var multicastWeight: UInt8
    /// L: this locator is one of the sender's own (set by an ETR about its locators).
    public var local: Bool
    /// p: the locator the RLOC-probe reply was sent from.
    public var probed: Bool
    /// R: the locator is reachable (up), as far as the sender knows.
    public var reachable: Bool
    /// The RLOC (IPv4 or IPv6; an LCAF this codec does not interpret is kept as `unknownLCAF`).
    public var address: LISPAddress

    public init(address: LISPAddress, priority: UInt8 = 1, weight: UInt8 = 100, multicastPriority: UInt8 = 255,
                multicastWeight: UInt8 = 0, local: Bool = false, probed: Bool = false, reachable: Bool = true) {
        self.address = address
        self.priority = priority
        self.weight = weight
        self.multicastPriority = multicastPriority
        self.multicastWeight = multicastWeight
        self.local = local
        self.probed = probed
        self.reachable = reachable
    }
}

/// An EID-to-RLOC mapping record (RFC 9301 §5.4), as Map-Reply, Map-Register, Map-Notify and a
/// Map-Request's Map-Reply Record carry it. No locators and an `action`: a negative mapping.
public struct MappingRecord: Hashable, Sendable {
    /// Record TTL, in minutes; 0 removes the entry at once, 0xffffffff lets the receiver choose.
    public var ttl: UInt32
    public var eid: EIDPrefix
    /// ACT: what to do with packets for the EID prefix when `locators` is empty.
    public var action: MapReplyAction
    /// A: the record comes from an authoritative source (the ETR or its Map-Server).
    public var authoritative: Bool
    /// The 12-bit Map-Version Number (RFC 6834); 0 when unversioned.
    public var mapVersion: UInt16
    public var locators: [LocatorRecord]

    public init(eid: EIDPrefix, ttl: UInt32 = 1440, action: MapReplyAction = .noAction, authoritative: Bool = true,
                mapVersion: UInt16 = 0, locators: [LocatorRecord]) {
        self.ttl = ttl
        self.eid = eid
        self.action = action
        self.authoritative = authoritative
        self.mapVersion = mapVersion
        self.locators = locators
    }

    /// A negative mapping: no locators, `action` says what to do.
    public static func negative(eid: EIDPrefix, ttl: UInt32 = 15, action: MapReplyAction) -> MappingRecord {
        MappingRecord(eid: eid, ttl: ttl, action: action, authoritative: true, locators: [])
    }

    // MARK: Wire (RFC 9301 §5.4)
    //   Record TTL (32)
    //   Locator Count (8) | EID mask-len (8) | ACT (3) | A (1) | Reserved (12)
    //   Rsvd (4) | Map-Version Number (12) | EID-Prefix-AFI (16) + EID-Prefix
    //   per locator: Priority | Weight | M Priority | M Weight (8 each)
    //                Unused Flags (13) | L | p | R | Loc-AFI (16) + Locator

    static func decode(from r: inout ByteReader, limits: DecodeLimits,
                       locatorBudget: inout Int) throws(ControlMessageError) -> MappingRecord {
        let ttl = try r.u32()
        let locatorCount = Int(try r.u8())
        let maskLength = try r.u8()
        let actWord = try r.u16()
        let versionWord = try r.u16()
        let eid = try LISPAddress.decode(from: &r)
        try EIDPrefix.check(eid, maskLength: maskLength)
        guard locatorCount <= limits.maxLocatorsPerRecord else { throw .tooManyLocators(locatorCount) }
        locatorBudget -= locatorCount
        guard locatorBudget >= 0 else { throw .tooManyLocators(limits.maxLocatorsPerMessage - locatorBudget) }
        // Each locator takes at least 8 bytes (6 + an AFI-0 address): a count the bytes cannot hold
        // is refused before the array is reserved.
        try r.need(locatorCount * 8)
        var locators: [LocatorRecord] = []
        locators.reserveCapacity(locatorCount)
        for _ in 0..<locatorCount {
            let priority = try r.u8()
            let weight = try r.u8()
            let mPriority = try r.u8()
            let mWeight = try r.u8()
            let flags = try r.u16() // unused flags ignored on receipt
            let address = try LISPAddress.decode(from: &r)
            locators.append(LocatorRecord(address: address, priority: priority, weight: weight,
                                          multicastPriority: mPriority, multicastWeight: mWeight,
                                          local: flags & 0x4 != 0, probed: flags & 0x2 != 0,
                                          reachable: flags & 0x1 != 0))
        }
        return MappingRecord(eid: EIDPrefix(eid, maskLength: maskLength), ttl: ttl,
                             action: MapReplyAction(rawValue: UInt8(actWord >> 13)),
                             authoritative: actWord & 0x1000 != 0, mapVersion: versionWord & 0x0fff,
                             locators: locators)
    }

    func encode(into w: inout ByteWriter) throws(ControlMessageEncodingError) {
        guard locators.count <= Int(UInt8.max) else { throw .tooManyLocators(locators.count) }
        guard action.rawValue <= 7 else { throw .actionTooLarge(action.rawValue) }
        guard mapVersion <= 0x0fff else { throw .mapVersionTooLarge(mapVersion) }
        let eid = try self.eid.validated()
        w.u32(ttl)
        w.u8(UInt8(locators.count))
        w.u8(eid.maskLength)
        w.u16(UInt16(action.rawValue) << 13 | (authoritative ? 0x1000 : 0))
        w.u16(mapVersion)
        try eid.address.encode(into: &w)
        for l in locators {
            w.u8(l.priority)
            w.u8(l.weight)
            w.u8(l.multicastPriority)
            w.u8(l.multicastWeight)
            w.u16((l.local ? 0x4 : 0) | (l.probed ? 0x2 : 0) | (l.reachable ? 0x1 : 0))
            try l.address.encode(into: &w)
        }
    }
}

/// Reads `count` mapping records within the message's limits.
func decodeRecords(_ count: Int, from r: inout ByteReader, limits: DecodeLimits) throws(ControlMessageError) -> [MappingRecord] {
    guard count <= limits.maxRecords else { throw .tooManyRecords(count) }
    // A record is at least 12 bytes (10 + an AFI-0 EID): a count the bytes cannot hold is refused
    // before the array is reserved.
    try r.need(count * 12)
    var budget = limits.maxLocatorsPerMessage
    var records: [MappingRecord] = []
    records.reserveCapacity(count)
    for _ in 0..<count { records.append(try MappingRecord.decode(from: &r, limits: limits, locatorBudget: &budget)) }
    return records
}

/// Checks a record list fits the 8-bit Record Count and the decode limits (so we accept what we send).
func checkRecordCounts(_ records: [MappingRecord]) throws(ControlMessageEncodingError) {
    let limits = DecodeLimits.default
    guard records.count <= min(Int(UInt8.max), limits.maxRecords) else { throw .tooManyRecords(records.count) }
    var total = 0
    for r in records {
        guard r.locators.count <= limits.maxLocatorsPerRecord else { throw .tooManyLocators(r.locators.count) }
        total += r.locators.count
    }
    guard total <= limits.maxLocatorsPerMessage else { throw .tooManyLocators(total) }
}
