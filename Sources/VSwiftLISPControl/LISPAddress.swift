import VSwiftPacket

/// Address Family Identifiers the LISP control plane carries (IANA "Address Family Numbers", as
/// RFC 9301 §5 uses them, and RFC 8060 §3 for LCAF).
public enum AFI {
    /// No address: zero bytes follow (RFC 9301 §5.2, e.g. the Source EID of an RLOC-probe).
    public static let none: UInt16 = 0
    public static let ipv4: UInt16 = 1
    public static let ipv6: UInt16 = 2
    /// LISP Canonical Address Format (RFC 8060 §3).
    public static let lcaf: UInt16 = 16387
}

/// LCAF types this codec interprets (RFC 8060 §4, and its IANA "LISP LCAF Type" registry).
public enum LCAFType {
    /// Instance ID (RFC 8060 §4.1): a 32-bit instance id and a plain address.
    public static let instanceID: UInt8 = 2
}

/// An address as the LISP control plane encodes it: an AFI and the address it announces. EIDs and
/// RLOCs alike are these; an EID prefix is one with a mask length (`EIDPrefix`).
///
/// Unknown LCAF types are *skipped by length*, not refused: the LCAF header carries the length of
/// what follows (RFC 8060 §3), so the rest of the message stays parseable, and deployed mapping
/// systems put LCAFs we do not interpret (AFI List, Explicit Locator Path, Geo, Security Key) in
/// locator sets next to plain RLOCs; the receiver uses the plain ones and ignores `unknownLCAF`.
/// The bytes are kept, so such an address re-encodes byte for byte. An unknown *plain* AFI is
/// refused (`ControlMessageError.unknownAFI`): its length is not on the wire, so nothing after it
/// can be read.
public indirect enum LISPAddress: Hashable, Sendable, CustomStringConvertible {
    /// AFI 0: no address.
    case none
    /// AFI 1, host-order value (first octet most significant).
    case ipv4(UInt32)
    /// AFI 2: 128 bits (`IPAddress`'s words, taken as they are even when they look IPv4-mapped).
    case ipv6(IPAddress)
    /// LCAF type 2 (RFC 8060 §4.1): `address` (none, IPv4 or IPv6) in instance `id`; `maskLength` is
    /// the LCAF's IID mask-len (a range of instance ids; 0 for one id).
    case instanceID(UInt32, maskLength: UInt8, address: LISPAddress)
    /// An LCAF of a type this codec does not interpret, kept as received: the header's flags and
    /// type-specific byte (Rsvd2), and the `body` its Length field covers.
    case unknownLCAF(type: UInt8, flags: UInt8, reserved2: UInt8, body: [UInt8])

    /// IPv4 when `ip` is IPv4-mapped (as `IPAddress` stores IPv4), IPv6 otherwise.
    public init(_ ip: IPAddress) {
        self = ip.isIPv4 ? .ipv4(ip.ipv4) : .ipv6(ip)
    }

    /// The address with any Instance ID LCAF taken off.
    public var plain: LISPAddress {
        if case .instanceID(_, _, let inner) = self { return inner }
        return self
    }

    /// The instance id of an Instance ID LCAF, nil for any other address.
    public var instanceID: UInt32? {
        if case .instanceID(let id, _, _) = self { return id }
        return nil
    }

    /// The IP address (IPv4 as `IPAddress` stores it, mapped), after any Instance ID LCAF; nil for
    /// none and unknown LCAFs.
    public var ipAddress: IPAddress? {
        switch plain {
        case .ipv4(let v): return IPAddress(ipv4: v)
        case .ipv6(let a): return a
        default: return nil
        }
    }

    /// The longest mask length that fits the address (after any Instance ID LCAF); nil when unknown.
    public var maxMaskLength: UInt8? {
        switch self {
        case .none: return 0
        case .ipv4: return 32
        case .ipv6: return 128
        case .instanceID(_, _, let inner): return inner.maxMaskLength
        case .unknownLCAF: return nil
        }
    }

    public var description: String {
        switch self {
        case .none: return "none"
        case .ipv4(let v): return IPAddress(ipv4: v).description
        case .ipv6(let a): return a.isIPv4 ? "::ffff:\(IPAddress(ipv4: a.ipv4))" : a.description
        case .instanceID(let id, let mask, let inner):
            return mask == 0 ? "[\(id)]\(inner)" : "[\(id)/\(mask)]\(inner)"
        case .unknownLCAF(let type, _, _, let body): return "lcaf(type \(type), \(body.count) bytes)"
        }
    }

    // MARK: Wire

    /// Reads an AFI and the address it announces. `nested` is set inside an LCAF: a second LCAF
    /// there is refused, so decoding recurses at most once.
    static func decode(from r: inout ByteReader, nested: Bool = false) throws(ControlMessageError) -> LISPAddress {
        let afi = try r.u16()
        switch afi {
        case AFI.none: return .none
        case AFI.ipv4: return .ipv4(try r.u32())
        case AFI.ipv6:
            let high = try r.u64()
            return .ipv6(IPAddress(high: high, low: try r.u64()))
        case AFI.lcaf:
            guard !nested else { throw .nestedLCAF }
            return try decodeLCAF(from: &r)
        default:
            throw .unknownAFI(afi)
        }
    }

    /// RFC 8060 §3: Rsvd1, Flags, Type, Rsvd2, Length (of what follows the Length field).
    private static func decodeLCAF(from r: inout ByteReader) throws(ControlMessageError) -> LISPAddress {
        _ = try r.u8() // Rsvd1: ignored on receipt
        let flags = try r.u8()
        let type = try r.u8()
        let reserved2 = try r.u8()
        let length = try r.u16()
        try r.need(Int(length))
        guard type == LCAFType.instanceID else {
            return .unknownLCAF(type: type, flags: flags, reserved2: reserved2, body: try r.take(Int(length)))
        }
        // RFC 8060 §4.1: Instance ID (32 bits), then AFI and address, all inside Length.
        var body = ByteReader(r.bytes, from: r.offset, end: r.offset + Int(length))
        let inner: LISPAddress
        let id: UInt32
        do throws(ControlMessageError) {
            id = try body.u32()
            inner = try decode(from: &body, nested: true)
            try body.expectEnd()
        } catch .nestedLCAF {
            throw .nestedLCAF
        } catch {
            throw .badLCAFLength(type: type, length: length)
        }
        try r.skip(Int(length))
        return .instanceID(id, maskLength: reserved2, address: inner)
    }

    func encode(into w: inout ByteWriter) throws(ControlMessageEncodingError) {
        switch self {
        case .none:
            w.u16(AFI.none)
        case .ipv4(let v):
            w.u16(AFI.ipv4)
            w.u32(v)
        case .ipv6(let a):
            w.u16(AFI.ipv6)
            w.u64(a.high)
            w.u64(a.low)
        case .instanceID(let id, let mask, let inner):
            switch inner {
            case .none, .ipv4, .ipv6: break
            default: throw .nestedLCAF
            }
            w.u16(AFI.lcaf)
            w.u8(0) // Rsvd1
            w.u8(0) // Flags
            w.u8(LCAFType.instanceID)
            w.u8(mask) // IID mask-len
            w.u16(UInt16(4 + inner.encodedLength))
            w.u32(id)
            try inner.encode(into: &w)
        case .unknownLCAF(let type, let flags, let reserved2, let body):
            guard body.count <= Int(UInt16.max) else { throw .fieldTooLong(body.count) }
            w.u16(AFI.lcaf)
            w.u8(0)
            w.u8(flags)
            w.u8(type)
            w.u8(reserved2)
            w.u16(UInt16(body.count))
            w.append(body)
        }
    }

    /// Bytes `encode` writes, AFI included.
    var encodedLength: Int {
        switch self {
        case .none: return 2
        case .ipv4: return 6
        case .ipv6: return 18
        case .instanceID(_, _, let inner): return 8 + 4 + inner.encodedLength
        case .unknownLCAF(_, _, _, let body): return 8 + body.count
        }
    }
}

/// An EID prefix: an address (usually inside an Instance ID LCAF) and the number of leading bits
/// that count (the records' "EID mask-len", RFC 9301 §5.2/§5.4).
public struct EIDPrefix: Hashable, Sendable, CustomStringConvertible {
    public var address: LISPAddress
    public var maskLength: UInt8

    public init(_ address: LISPAddress, maskLength: UInt8) {
        self.address = address
        self.maskLength = maskLength
    }

    /// `ip`/`maskLength` in instance `instanceID` (an Instance ID LCAF), or without one when nil.
    public init(instanceID: UInt32?, _ ip: IPAddress, maskLength: UInt8) {
        let plain = LISPAddress(ip)
        self.address = instanceID.map { .instanceID($0, maskLength: 0, address: plain) } ?? plain
        self.maskLength = maskLength
    }

    public var description: String { "\(address)/\(maskLength)" }

    func validated() throws(ControlMessageEncodingError) -> EIDPrefix {
        if let max = address.maxMaskLength, maskLength > max { throw .maskLengthTooLong(maskLength) }
        return self
    }

    static func check(_ address: LISPAddress, maskLength: UInt8) throws(ControlMessageError) {
        if let max = address.maxMaskLength, maskLength > max { throw .maskLengthTooLong(maskLength) }
    }
}
