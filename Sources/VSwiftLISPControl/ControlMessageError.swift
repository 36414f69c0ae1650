/// Why a LISP control message was refused. Each case is one reason a receiver counts separately
/// ("malformed" is not one bucket: a truncated message, an unknown type and a record count past
/// our cap are different problems to an operator). Decoding never traps: every length and count is
/// checked against the bytes that remain before anything is read or allocated.
public enum ControlMessageError: Error, Hashable, Sendable {
    /// The message ends inside a field (a header, a record, an address, an LCAF body).
    case truncated
    /// Bytes left after the last field the header announced (RFC 9301 defines no padding).
    case trailingBytes(count: Int)
    /// A LISP message type this codec does not speak (RFC 9301 §5.1: 6 DDT Map-Referral, 7 and 9-14 unassigned, 15 Shared Extension).
    case unknownMessageType(UInt8)
    /// An address family other than 0 (none), 1 (IPv4), 2 (IPv6) or 16387 (LCAF): its length is
    /// unknown, so the rest of the message cannot be parsed.
    case unknownAFI(UInt16)
    /// An LCAF whose Length field disagrees with its contents (RFC 8060 §3), e.g. an Instance ID
    /// LCAF whose length does not cover exactly the instance id and the address inside.
    case badLCAFLength(type: UInt8, length: UInt16)
    /// An LCAF inside an Instance ID LCAF: refused, so address nesting (and the work) stays one level.
    case nestedLCAF
    /// An EID mask length longer than the address it masks (32 for IPv4, 128 for IPv6, 0 for none).
    case maskLengthTooLong(UInt8)
    /// More records than `DecodeLimits.maxRecords`.
    case tooManyRecords(Int)
    /// More locators in one record than `DecodeLimits.maxLocatorsPerRecord`, or in the whole message
    /// than `DecodeLimits.maxLocatorsPerMessage`.
    case tooManyLocators(Int)
    /// A Map-Request with Record Count 0 (RFC 9301 §5.2: a receiver accepts one or more).
    case noRecords
    /// A message longer than a UDP datagram can carry (65,507 bytes of payload over IPv4).
    case messageTooLong(Int)
    /// The Encapsulated Control Message's inner IP/UDP header is not one we accept (RFC 9301 §5.8).
    case badInnerHeader(InnerHeaderProblem)
    /// An Encapsulated Control Message inside another one.
    case nestedEncapsulation
}

/// What is wrong with an ECM's inner IP/UDP header.
public enum InnerHeaderProblem: Hashable, Sendable {
    /// The version nibble is neither 4 nor 6.
    case notIP
    /// An IPv4 header length below 20 bytes or past the message.
    case badHeaderLength
    /// The IPv4 header checksum does not verify.
    case badIPv4Checksum
    /// An IPv4 fragment (MF set or a non-zero offset): control messages are never fragmented here.
    case fragment
    /// The IP protocol / IPv6 next header is not UDP (17); IPv6 extension headers are not followed.
    case notUDP
    /// The IP total/payload length or the UDP length disagrees with the bytes present.
    case lengthMismatch
    /// The UDP checksum does not verify, or is zero over IPv6 (RFC 8200 §8.1).
    case badUDPChecksum
    /// The inner UDP destination port is not 4342 (LISP control, RFC 9301 §5.8).
    case notControlPort(UInt16)
}

/// Why a value model could not be encoded: a field out of its wire range. Encoding checks the same
/// limits decoding enforces, so whatever this codec sends, it also accepts.
public enum ControlMessageEncodingError: Error, Hashable, Sendable {
    /// More records than the 8-bit Record Count holds (or `DecodeLimits.maxRecords`).
    case tooManyRecords(Int)
    /// More locators than the 8-bit Locator Count holds (or the decode limits).
    case tooManyLocators(Int)
    /// Map-Request ITR-RLOCs: 1 to 32 (IRC is the count minus one in 5 bits, RFC 9301 §5.2).
    case badITRRLOCCount(Int)
    /// A Map-Request needs at least one EID record (RFC 9301 §5.2).
    case noRecords
    /// The Map-Version Number is 12 bits (RFC 9301 §5.4).
    case mapVersionTooLarge(UInt16)
    /// The ACT field is 3 bits (RFC 9301 §5.4).
    case actionTooLarge(UInt8)
    /// An EID mask length longer than the address it masks.
    case maskLengthTooLong(UInt8)
    /// An Instance ID LCAF must wrap a plain address (none, IPv4 or IPv6).
    case nestedLCAF
    /// A field longer than its 16-bit length can say (authentication data, an LCAF body).
    case fieldTooLong(Int)
    /// An ECM inner header address that is not IPv4 or IPv6 (no address, or an LCAF).
    case notAnIPAddress
    /// The ECM's inner source and destination are not of one family.
    case innerFamilyMismatch
    /// An ECM inside an ECM.
    case nestedEncapsulation
    /// The encoded message would exceed a UDP datagram.
    case messageTooLong(Int)
}

/// Caps on what one decoded message may hold, beyond what its 8-bit count fields allow, so the
/// memory a hostile message costs is bounded by the caps, not only by its length. The defaults are
/// larger than anything vswift sends (one record per Map-Request, a handful per Map-Register) and
/// than the largest map-server replies seen in practice.
public struct DecodeLimits: Hashable, Sendable {
    /// Records in one message (the wire allows 255).
    public var maxRecords: Int
    /// Locators in one record (the wire allows 255).
    public var maxLocatorsPerRecord: Int
    /// Locators across all the records of one message.
    public var maxLocatorsPerMessage: Int

    public init(maxRecords: Int = 128, maxLocatorsPerRecord: Int = 64, maxLocatorsPerMessage: Int = 1024) {
        self.maxRecords = maxRecords
        self.maxLocatorsPerRecord = maxLocatorsPerRecord
        self.maxLocatorsPerMessage = maxLocatorsPerMessage
    }

    public static let `default` = DecodeLimits()

    /// The largest UDP payload over IPv4 (65,535 − 20 − 8); nothing longer is decoded or encoded.
    public static let maxMessageLength = 65_507
}
