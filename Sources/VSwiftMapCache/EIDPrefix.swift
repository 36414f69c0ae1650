import VSwiftPacket

/// An EID prefix in an instance: what a map-cache entry covers (RFC 9301 §5.4, EID-Prefix with
/// its mask length; the instance id is the LCAF Instance ID of RFC 8060 §4.1, 24 bits as in the
/// LISP data header, RFC 9300 §5.3).
///
/// Invariant (checked by `init`): the address has no bits set past `length` (the prefix is
/// canonical, so two prefixes are equal exactly when they cover the same addresses), the length
/// fits the family (0...32 for IPv4, 0...128 for IPv6) and the instance id fits 24 bits. IPv4
/// addresses are IPv4-mapped `IPAddress`es, as everywhere in vswift.
public struct EIDPrefix: Hashable, Sendable, CustomStringConvertible {
    public let instanceID: UInt32
    public let address: IPAddress
    /// Prefix length in the family's terms: 0...32 for IPv4, 0...128 for IPv6.
    public let length: UInt8

    public static let maxInstanceID: UInt32 = 0xff_ffff

    /// nil when the instance id exceeds 24 bits or the length the family. Bits of `address` past
    /// `length` are cleared.
    public init?(instanceID: UInt32, address: IPAddress, length: Int) {
        guard instanceID <= Self.maxInstanceID, length >= 0, length <= (address.isIPv4 ? 32 : 128) else { return nil }
        self.instanceID = instanceID
        self.length = UInt8(length)
        self.address = EIDPrefix.masked(address, toBits: address.isIPv4 ? 96 + length : length)
    }

    /// "a.b.c.d/len" or "x::/len", in instance `instanceID`.
    public init?(instanceID: UInt32, _ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])), let length = Int(parts[1]),
            parts[1].allSatisfy({ $0.isASCII && $0.isNumber })
        else { return nil }
        self.init(instanceID: instanceID, address: address, length: length)
    }

    public var isIPv4: Bool { address.isIPv4 }

    /// The length over the 128-bit (IPv4-mapped) form: IPv4 lengths are offset by 96.
    var fullLength: Int { isIPv4 ? 96 + Int(length) : Int(length) }

    /// Whether `eid` (an address of the same family) lies in this prefix.
    public func contains(_ eid: IPAddress) -> Bool {
        eid.isIPv4 == isIPv4 && EIDPrefix.masked(eid, toBits: fullLength) == address
    }

    /// `address` with every bit past the first `bits` (0...128) cleared.
    @inline(__always)
    static func masked(_ address: IPAddress, toBits bits: Int) -> IPAddress {
        let highMask: UInt64 = bits >= 64 ? ~0 : (bits == 0 ? 0 : ~0 << UInt64(64 - bits))
        let lowBits = bits - 64
        let lowMask: UInt64 = lowBits >= 64 ? ~0 : (lowBits <= 0 ? 0 : ~0 << UInt64(64 - lowBits))
        return IPAddress(high: address.high & highMask, low: address.low & lowMask)
    }

    public var description: String { "[\(instanceID)]\(address)/\(length)" }
}

/// One RLOC of a mapping's locator set (RFC 9301 §5.4, Locator record).
public struct Locator: Hashable, Sendable {
    public var address: IPAddress
    /// Unicast priority: lower is preferred; 255 means "MUST NOT be used for unicast forwarding"
    /// (RFC 9301 §5.4).
    public var priority: UInt8
    /// Unicast weight: the share of traffic among locators of the same priority, relative to the
    /// others' (RFC 9301 §5.4); all zero means the ITR spreads evenly.
    public var weight: UInt8
    /// Reachable: the R bit of the Map-Reply's locator record, then what locator-status bits and
    /// RLOC probing tell (RFC 9300 §10). A down locator is never chosen.
    public var isUp: Bool

    public static let unusablePriority: UInt8 = 255

    public init(address: IPAddress, priority: UInt8, weight: UInt8, isUp: Bool = true) {
        self.address = address
        self.priority = priority
        self.weight = weight
        self.isUp = isUp
    }
}

/// What a negative Map-Reply tells the ITR to do with packets for the prefix: RFC 9301 §5.4's ACT
/// field (IANA "LISP ACT Value" registry); raw values are the wire values.
public enum NegativeAction: UInt8, Sendable, CaseIterable {
    /// The entry is kept, and packets are not encapsulated.
    case noAction = 0
    /// Packets are forwarded natively, not encapsulated.
    case nativelyForward = 1
    /// Packets trigger a Map-Request.
    case sendMapRequest = 2
    /// Packets are dropped (an ICMP unreachable SHOULD be sent).
    case drop = 3
    /// Dropped: the EID is denied by policy.
    case dropPolicyDenied = 4
    /// Dropped: the Map-Request failed authentication.
    case dropAuthenticationFailure = 5
}

/// What a map-cache lookup tells the worker (one byte, no payload: the hot path switches on it).
public enum MapCacheAction: UInt8, Sendable {
    /// No entry covers the destination: count, drop (or queue) and ask the mapping system.
    case miss = 0
    /// Encapsulate to `MapCacheSnapshot.locator(of:flowHash:)`.
    case encapsulate = 1
    /// A positive entry none of whose locators may be used now (all down, or all of priority
    /// 255): RFC 9301 §5.4 forbids priority 255, RFC 9300 §10 down locators; the packet is
    /// dropped and the mapping asked for again, as for `sendMapRequest`.
    case noUsableLocator = 2
    // A negative entry's action (RFC 9301 §5.4 ACT).
    case noAction = 3
    case nativelyForward = 4
    case sendMapRequest = 5
    case drop = 6
    case dropPolicyDenied = 7
    case dropAuthenticationFailure = 8

    init(_ negative: NegativeAction) {
        switch negative {
        case .noAction: self = .noAction
        case .nativelyForward: self = .nativelyForward
        case .sendMapRequest: self = .sendMapRequest
        case .drop: self = .drop
        case .dropPolicyDenied: self = .dropPolicyDenied
        case .dropAuthenticationFailure: self = .dropAuthenticationFailure
        }
    }
}
