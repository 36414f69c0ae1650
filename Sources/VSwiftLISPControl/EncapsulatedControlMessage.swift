import VSwiftPacket

/// Encapsulated Control Message (type 8, RFC 9301 §5.8): how an ITR sends a Map-Request to a
/// Map-Resolver, and a Map-Server forwards it to an ETR. The LISP header is followed by an inner
/// IP header (whose destination is the EID asked about, so the mapping system can route on it), an
/// inner UDP header to port 4342, and the control message.
///
///     |Type=8 |S|D|E|M|            Reserved                           |
///     |  inner IPv4 or IPv6 header (RLOC or EID addresses)            |
///     |  Source Port | Dest Port = 4342 | UDP Length | UDP Checksum   |
///     |  LISP control message (a Map-Request)                         |
///
/// The outer IP/UDP header is the sending socket's business, not part of this value.
public struct EncapsulatedControlMessage: Hashable, Sendable {
    /// S: LISP-SEC (RFC 9303) authentication data follows; not parsed here.
    public var security: Bool
    /// D: DDT originated (RFC 8111): the sender wants a Map-Referral.
    public var ddt: Bool
    /// E: to-ETR: a Map-Server forwards the request to an authoritative ETR.
    public var toETR: Bool
    /// M: to-MS: sent to a co-located Map-Resolver and Map-Server.
    public var toMapServer: Bool
    /// Inner IP source (the requesting host's EID, or an ITR RLOC): IPv4 or IPv6, as `innerDestination`.
    public var innerSource: LISPAddress
    /// Inner IP destination: the EID the Map-Request asks about.
    public var innerDestination: LISPAddress
    /// Inner UDP source port (the reply goes to the ITR-RLOCs' port 4342, not to this one).
    public var sourcePort: UInt16
    /// Inner IPv4 TTL / IPv6 hop limit.
    public var hopLimit: UInt8
    /// The message carried: anything but another ECM.
    public var message: ControlMessage

    public init(message: ControlMessage, innerSource: LISPAddress, innerDestination: LISPAddress,
                sourcePort: UInt16 = lispControlPort, hopLimit: UInt8 = 64, security: Bool = false,
                ddt: Bool = false, toETR: Bool = false, toMapServer: Bool = false) {
        self.message = message
        self.innerSource = innerSource
        self.innerDestination = innerDestination
        self.sourcePort = sourcePort
        self.hopLimit = hopLimit
        self.security = security
        self.ddt = ddt
        self.toETR = toETR
        self.toMapServer = toMapServer
    }

    /// The Map-Request inside, when that is what it carries.
    public var mapRequest: MapRequest? {
        if case .mapRequest(let request) = message { return request }
        return nil
    }

    // MARK: Decoding

    static func decode(_ r: inout ByteReader, limits: DecodeLimits) throws(ControlMessageError) -> EncapsulatedControlMessage {
        let word = try r.u32()
        let bytes = r.bytes
        let ipStart = r.offset
        let end = r.end
        guard r.remaining >= 1 else { throw .truncated }
        let source: LISPAddress
        let destination: LISPAddress
        let hopLimit: UInt8
        let udpStart: Int
        var pseudo: UInt16 // folded sum of the pseudo-header (RFC 768 / RFC 8200 §8.1)
        switch bytes[ipStart] >> 4 {
        case 4:
            // RFC 791: version/IHL, TOS, total length, id, flags/fragment offset, TTL, protocol,
            // header checksum, source, destination, options.
            try r.need(20)
            let headerLength = Int(bytes[ipStart] & 0x0f) * 4
            guard headerLength >= 20, headerLength <= r.remaining else { throw .badInnerHeader(.badHeaderLength) }
            guard Int(u16(bytes, ipStart + 2)) == end - ipStart else { throw .badInnerHeader(.lengthMismatch) }
            guard u16(bytes, ipStart + 6) & 0x3fff == 0 else { throw .badInnerHeader(.fragment) }
            guard bytes[ipStart + 9] == 17 else { throw .badInnerHeader(.notUDP) }
            guard sum(bytes, ipStart, headerLength) == 0xffff else { throw .badInnerHeader(.badIPv4Checksum) }
            let src = u32(bytes, ipStart + 12)
            let dst = u32(bytes, ipStart + 16)
            source = .ipv4(src)
            destination = .ipv4(dst)
            hopLimit = bytes[ipStart + 8]
            udpStart = ipStart + headerLength
            pseudo = Checksum.pseudoHeaderIPv4(source: src, destination: dst, protocol: 17, length: end - udpStart)
        case 6:
            // RFC 8200 §3: version/class/flow, payload length, next header, hop limit, addresses.
            try r.need(40)
            guard Int(u16(bytes, ipStart + 4)) == end - ipStart - 40 else { throw .badInnerHeader(.lengthMismatch) }
            guard bytes[ipStart + 6] == 17 else { throw .badInnerHeader(.notUDP) }
            let src = IPAddress(high: u64(bytes, ipStart + 8), low: u64(bytes, ipStart + 16))
            let dst = IPAddress(high: u64(bytes, ipStart + 24), low: u64(bytes, ipStart + 32))
            source = .ipv6(src)
            destination = .ipv6(dst)
            hopLimit = bytes[ipStart + 7]
            udpStart = ipStart + 40
            pseudo = Checksum.pseudoHeaderIPv6(source: (src.high, src.low), destination: (dst.high, dst.low),
                                               nextHeader: 17, length: end - udpStart)
        default:
            throw .badInnerHeader(.notIP)
        }
        // RFC 768: source port, destination port, length, checksum.
        guard end - udpStart >= 8 else { throw .truncated }
        guard Int(u16(bytes, udpStart + 4)) == end - udpStart else { throw .badInnerHeader(.lengthMismatch) }
        let destinationPort = u16(bytes, udpStart + 2)
        guard destinationPort == lispControlPort else { throw .badInnerHeader(.notControlPort(destinationPort)) }
        let udpChecksum = u16(bytes, udpStart + 6)
        let isIPv6: Bool
        if case .ipv6 = source { isIPv6 = true } else { isIPv6 = false }
        if udpChecksum != 0 || isIPv6 {
            // Zero means "none" over IPv4 only (RFC 768); over IPv6 it is never valid (RFC 8200 §8.1).
            pseudo = Checksum.add(pseudo, sum(bytes, udpStart, end - udpStart))
            guard udpChecksum != 0, pseudo == 0xffff else { throw .badInnerHeader(.badUDPChecksum) }
        }
        let message = try ControlMessage.decode(bytes, from: udpStart + 8, end: end, limits: limits,
                                                allowEncapsulated: false)
        try r.skip(end - r.offset)
        return EncapsulatedControlMessage(message: message, innerSource: source, innerDestination: destination,
                                          sourcePort: u16(bytes, udpStart), hopLimit: hopLimit,
                                          security: word & 1 << 27 != 0, ddt: word & 1 << 26 != 0,
                                          toETR: word & 1 << 25 != 0, toMapServer: word & 1 << 24 != 0)
    }

    // MARK: Encoding

    func encode(into w: inout ByteWriter) throws(ControlMessageEncodingError) {
        if case .encapsulated = message { throw .nestedEncapsulation }
        var inner = ByteWriter()
        try message.encode(into: &inner)
        let udpLength = 8 + inner.count
        var word = UInt32(ControlMessageType.encapsulatedControlMessage) << 28
        if security { word |= 1 << 27 }
        if ddt { word |= 1 << 26 }
        if toETR { word |= 1 << 25 }
        if toMapServer { word |= 1 << 24 }
        w.u32(word)
        let pseudo: UInt16
        switch (innerSource, innerDestination) {
        case (.ipv4(let src), .ipv4(let dst)):
            guard 20 + udpLength <= Int(UInt16.max) else { throw .messageTooLong(20 + udpLength) }
            var ip = ByteWriter(capacity: 20)
            ip.u8(0x45) // version 4, 5 words
            ip.u8(0) // TOS
            ip.u16(UInt16(20 + udpLength))
            ip.u16(0) // identification
            ip.u16(0) // no fragments
            ip.u8(hopLimit)
            ip.u8(17) // UDP
            ip.u16(0) // checksum, below
            ip.u32(src)
            ip.u32(dst)
            ip.set16(at: 10, ~sum(ip.bytes, 0, 20))
            w.append(ip.bytes)
            pseudo = Checksum.pseudoHeaderIPv4(source: src, destination: dst, protocol: 17, length: udpLength)
        case (.ipv6(let src), .ipv6(let dst)):
            guard udpLength <= Int(UInt16.max) else { throw .messageTooLong(40 + udpLength) }
            w.u32(0x6000_0000) // version 6, class 0, flow 0
            w.u16(UInt16(udpLength))
            w.u8(17)
            w.u8(hopLimit)
            w.u64(src.high)
            w.u64(src.low)
            w.u64(dst.high)
            w.u64(dst.low)
            pseudo = Checksum.pseudoHeaderIPv6(source: (src.high, src.low), destination: (dst.high, dst.low),
                                               nextHeader: 17, length: udpLength)
        case (.ipv4, _), (.ipv6, _):
            throw .innerFamilyMismatch
        default:
            throw .notAnIPAddress
        }
        var udp = ByteWriter(capacity: udpLength)
        udp.u16(sourcePort)
        udp.u16(lispControlPort)
        udp.u16(UInt16(udpLength))
        udp.u16(0)
        udp.append(inner.bytes)
        let checksum = ~Checksum.add(pseudo, sum(udp.bytes, 0, udpLength))
        udp.set16(at: 6, checksum == 0 ? 0xffff : checksum) // RFC 768: a computed 0 is sent as all ones
        w.append(udp.bytes)
    }
}

// Network-order reads at offsets the caller has checked, and RFC 1071 sums of byte ranges.
private func u16(_ b: [UInt8], _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
private func u32(_ b: [UInt8], _ o: Int) -> UInt32 { UInt32(u16(b, o)) << 16 | UInt32(u16(b, o + 2)) }
private func u64(_ b: [UInt8], _ o: Int) -> UInt64 { UInt64(u32(b, o)) << 32 | UInt64(u32(b, o + 4)) }
private func sum(_ b: [UInt8], _ start: Int, _ length: Int) -> UInt16 {
    precondition(start >= 0 && length >= 0 && start + length <= b.count)
    if length == 0 { return 0 }
    return b.withUnsafeBytes { Checksum.sum($0.baseAddress! + start, length: length) }
}
