/// LISP data-plane encapsulation and decapsulation (RFC 9300), interoperable with OVS's LISP vport.
///
/// LISP tunnels carry bare IP packets (no inner Ethernet header) in UDP to port 4341:
/// ```
///  outer Ethernet | outer IPv4 (20) or IPv6 (40) | UDP (8) | LISP (8) | inner IPv4/IPv6 packet
/// ```
/// LISP header (RFC 9300 §5.1, fields in §5.3):
/// ```
///  byte 0: N L E V I R K K (0x80 0x40 0x20 0x10 0x08 0x04 0x03)
///  bytes 1..3: nonce (N) or map-versions (V)
///  bytes 4..7: I set: instance ID (24 bits) then locator-status-bits (8); else 32 LSBs
/// ```
/// TTL, DSCP and ECN between the inner and outer headers: see LISPHeaderFields.swift.
/// Encapsulation strips the frame's Ethernet header (and up to two VLAN tags) and prepends the
/// outer headers in the buffer's headroom, so the inner packet is never copied. Decapsulation is
/// split in two (`parseOuter`, then `decapsulate`) so the datapath can pick the tunnel port from the
/// outer addresses and instance ID in between; it pushes the fixed Ethernet header OVS's LISP port
/// gave received packets (02:00:00:00:00:00 both ways), which is why flows rewrite dl_dst after a
/// LISP port.
///
/// The packet functions allocate nothing and never touch memory outside
/// `[frame - headroom, frame + length)`; all offsets are checked against `length` before a load.
public enum LISP {
    /// The IANA LISP data port (RFC 9300 §5.3).
    @inlinable public static var udpPort: UInt16 { 4341 }
    @inlinable public static var headerLength: Int { 8 }
    /// Bytes prepended before the inner IP packet: Ethernet 14 + IPv4 20 + UDP 8 + LISP 8.
    @inlinable public static var overheadIPv4: Int { 50 }
    /// Ethernet 14 + IPv6 40 + UDP 8 + LISP 8.
    @inlinable public static var overheadIPv6: Int { 70 }

    // LISP flags (first byte).
    @inlinable public static var flagNonce: UInt8 { 0x80 }
    @inlinable public static var flagLocatorStatusBits: UInt8 { 0x40 }
    @inlinable public static var flagEchoNonce: UInt8 { 0x20 }
    @inlinable public static var flagMapVersion: UInt8 { 0x10 }
    @inlinable public static var flagInstanceID: UInt8 { 0x08 }
    /// R: reserved; sent as 0, ignored on receipt (RFC 9300 §5.3).
    @inlinable public static var flagReserved: UInt8 { 0x04 }
    /// KK: the key of an encrypted payload, 00 when not encrypted (RFC 9300 §5.3, RFC 8061).
    @inlinable public static var flagsKeyID: UInt8 { 0x03 }

    /// With `offloadUDPChecksum` (IPv6 outer header), where the device must compute the UDP
    /// checksum, relative to the start of the encapsulated frame: it sums from `csum_start` to the
    /// end of the frame and stores the complement at `csum_start + csum_offset` (AF_XDP TX checksum
    /// metadata, like the kernel's CHECKSUM_PARTIAL). The field holds the pseudo-header sum.
    @inlinable public static var ipv6UDPChecksumStart: Int { 54 }
    @inlinable public static var udpChecksumOffset: Int { 6 }

    /// The outer headers of one (tunnel port, next hop). Prepared off the packet path; the packet
    /// path only reads it.
    public struct EncapsulationParameters: Sendable {
        /// Next hop MAC.
        public var ethernetDestination: UInt64
        /// Egress device MAC.
        public var ethernetSource: UInt64
        /// Outer source RLOC. Its family (IPv4-mapped or not) selects the outer IP version.
        public var source: IPAddress
        /// Outer destination RLOC; must be of the same family as `source` (see `isValid`).
        public var destination: IPAddress
        public var udpDestinationPort: UInt16
        /// IPv6 outer header only: leave the UDP checksum to the device. The checksum field then
        /// holds the folded pseudo-header sum (not complemented), what a device finishing a
        /// CHECKSUM_PARTIAL packet expects, and the caller must request TX checksum offload with
        /// `csum_start = ipv6UDPChecksumStart`, `csum_offset = udpChecksumOffset`. Ignored over IPv4,
        /// where the UDP checksum is 0 (as OVS, RFC 9300 §5.3).
        public var offloadUDPChecksum: Bool

        public init(ethernetDestination: UInt64, ethernetSource: UInt64, source: IPAddress, destination: IPAddress,
                    udpDestinationPort: UInt16 = 4341, offloadUDPChecksum: Bool = false) {
            self.ethernetDestination = ethernetDestination
            self.ethernetSource = ethernetSource
            self.source = source
            self.destination = destination
            self.udpDestinationPort = udpDestinationPort
            self.offloadUDPChecksum = offloadUDPChecksum
        }

        /// Source and destination are of one family (the packet path does not check it).
        public var isValid: Bool { source.isIPv4 == destination.isIPv4 }
    }

    public enum EncapsulationResult: UInt8, Sendable {
        /// `frame` now starts at the outer Ethernet header and `length` covers the whole packet.
        case done
        /// Not an IPv4/IPv6 packet (or too short for its IP header); the frame is unchanged.
        case notIP
        /// The headroom cannot hold the outer headers, or the result would not fit the outer length
        /// fields; the frame is unchanged.
        case noRoom
    }

    /// Encapsulates the Ethernet frame at `frame` (untagged, or with one or two 802.1Q/802.1ad tags)
    /// carrying an IPv4 or IPv6 packet, as OVS's LISP port did: the Ethernet header and tags are
    /// dropped, and outer Ethernet, IP, UDP and LISP headers are written into the `headroom` bytes
    /// before the frame (and over the dropped header). On `.done`, `frame` moved back by
    /// `overhead - l2 header length` and `length` is `overhead + inner length`.
    ///
    /// - The inner packet is everything after the L2 header, less any Ethernet padding after the
    ///   length its IP header declares; it is neither validated beyond its version nibble and
    ///   minimum header length (20 / 40 bytes) nor changed.
    /// - Outer TTL / hop limit and DSCP by `fields` (inherited from the inner header, or fixed), ECN
    ///   always copied from the inner header (RFC 6040 §4.1 normal mode; RFC 9300 §5.3).
    /// - Outer IPv4: identification `ipIdentification`, DF, header checksum. Outer IPv6: flow label 0
    ///   (the ECMP entropy is in the UDP source port, which every ECMP/RSS implementation hashes).
    /// - UDP source port: 49152 + (hash of the inner flow) % 16384 (RFC 9300 §5.3): inner addresses,
    ///   protocol (the IPv6 header's next header) and, for an unfragmented TCP/UDP/SCTP packet, the
    ///   ports. Fragments (first ones too) hash without ports, so all fragments of a datagram take one
    ///   path (as Linux's flow dissector does). UDP checksum: 0 over IPv4; over IPv6 computed (0 sent
    ///   as 0xffff), or the pseudo-header sum with `offloadUDPChecksum`.
    /// - LISP header as OVS: flags 0x48 (L, I; R and KK 0), nonce 0, `instanceID` (low 24 bits), LSBs 0x01.
    @inlinable
    public static func encapsulate(_ frame: inout UnsafeMutableRawPointer, length: inout Int, headroom: Int,
                                   instanceID: UInt32, parameters: borrowing EncapsulationParameters,
                                   fields: OuterFields = OuterFields(),
                                   ipIdentification: UInt16) -> EncapsulationResult {
        guard length >= 14 else { return .notIP }
        let l2 = L2.parse(frame, length: length)
        let l3 = l2.l3Offset
        var innerLength = length &- l3
        let inner = UnsafeRawPointer(frame + l3)
        let tos: UInt8
        let ttl: UInt8
        let hash: UInt64
        if l2.etherType == EtherType.ipv4 {
            guard innerLength >= 20, Wire.u8(inner, 0) >> 4 == 4 else { return .notIP }
            // Ethernet padding (a frame of 60 bytes carrying a shorter packet) is not part of the
            // packet: it is not carried over the underlay (as the kernel's ip_rcv trims it).
            let total = Int(Wire.u16(inner, 2))
            if total >= 20, total < innerLength { innerLength = total }
            (tos, ttl) = fields.outer(innerTOS: Wire.u8(inner, 1), innerTTL: Wire.u8(inner, 8))
            hash = flowHashIPv4(inner, length: innerLength)
        } else if l2.etherType == EtherType.ipv6 {
            guard innerLength >= 40, Wire.u8(inner, 0) >> 4 == 6 else { return .notIP }
            let total = 40 &+ Int(Wire.u16(inner, 4))  // a jumbogram's 0 never trims (40 < any packet)
            if total > 40, total < innerLength { innerLength = total }
            (tos, ttl) = fields.outer(innerTOS: UInt8(truncatingIfNeeded: Wire.u16(inner, 0) >> 4), innerTTL: Wire.u8(inner, 7))
            hash = flowHashIPv6(inner, length: innerLength)
        } else {
            return .notIP
        }
        let outer6 = !parameters.source.isIPv4
        let overhead = outer6 ? overheadIPv6 : overheadIPv4
        let udpLength = innerLength &+ 16
        // IPv4 total length = 20 + UDP length; IPv6 payload length = UDP length.
        guard headroom &+ l3 >= overhead, udpLength &+ (outer6 ? 0 : 20) <= 0xffff else { return .noRoom }
        let p = frame + (l3 &- overhead)
        Wire.putMAC(p, 0, parameters.ethernetDestination)
        Wire.putMAC(p, 6, parameters.ethernetSource)
        let udp: Int
        if outer6 {
            Wire.put16(p, 12, EtherType.ipv6)
            Wire.put32(p, 14, 0x6000_0000 | UInt32(tos) << 20)
            Wire.put32(p, 18, UInt32(udpLength) << 16 | UInt32(IPProtocol.udp) << 8 | UInt32(ttl))
            parameters.source.store(to: p + 22)
            parameters.destination.store(to: p + 38)
            udp = 54
        } else {
            Wire.put16(p, 12, EtherType.ipv4)
            Wire.put32(p, 14, 0x4500_0000 | UInt32(tos) << 16 | UInt32(udpLength &+ 20))
            Wire.put32(p, 18, UInt32(ipIdentification) << 16 | 0x4000)
            Wire.put32(p, 22, UInt32(ttl) << 24 | UInt32(IPProtocol.udp) << 16)
            Wire.put32(p, 26, parameters.source.ipv4)
            Wire.put32(p, 30, parameters.destination.ipv4)
            Wire.put16(p, 24, ipv4HeaderChecksum(
                tos: tos, totalLength: UInt16(truncatingIfNeeded: udpLength &+ 20), identification: ipIdentification,
                ttl: ttl, source: parameters.source.ipv4, destination: parameters.destination.ipv4))
            udp = 34
        }
        let sourcePort = 0xc000 | UInt32(truncatingIfNeeded: hash & 0x3fff)
        Wire.put32(p, udp, sourcePort << 16 | UInt32(parameters.udpDestinationPort))
        Wire.put32(p, udp &+ 4, UInt32(udpLength) << 16)
        Wire.put32(p, udp &+ 8, UInt32(flagLocatorStatusBits | flagInstanceID) << 24)
        Wire.put32(p, udp &+ 12, (instanceID & 0xff_ffff) << 8 | 0x01)
        if outer6 {
            let checksum: UInt16
            if parameters.offloadUDPChecksum {
                checksum = Checksum.pseudoHeaderIPv6(
                    source: (parameters.source.high, parameters.source.low),
                    destination: (parameters.destination.high, parameters.destination.low),
                    nextHeader: IPProtocol.udp, length: udpLength)
            } else {
                let c = Checksum.transportIPv6(p + udp, length: udpLength, source: p + 22, destination: p + 38,
                                               nextHeader: IPProtocol.udp)
                checksum = c == 0 ? 0xffff : c
            }
            Wire.put16(p, udp &+ 6, checksum)
        }
        frame = p
        length = innerLength &+ overhead
        return .done
    }

    /// The header checksum of the outer IPv4 header `encapsulate` writes (IHL 5, DF, UDP), from the
    /// values rather than the bytes: the words are known, so no load and no loop.
    @inlinable @inline(__always)
    static func ipv4HeaderChecksum(tos: UInt8, totalLength: UInt16, identification: UInt16, ttl: UInt8,
                                   source: UInt32, destination: UInt32) -> UInt16 {
        var sum: UInt32 = 0x4500 | UInt32(tos)
        sum &+= UInt32(totalLength) &+ UInt32(identification) &+ 0x4000
        sum &+= UInt32(ttl) << 8 | UInt32(IPProtocol.udp)
        sum &+= source >> 16 &+ (source & 0xffff) &+ destination >> 16 &+ (destination & 0xffff)
        sum = (sum & 0xffff) &+ (sum >> 16)
        sum = (sum & 0xffff) &+ (sum >> 16)
        return ~UInt16(truncatingIfNeeded: sum)
    }

    /// A first look for the receive path of every frame while LISP ports exist: false only when
    /// `parseOuter` would say `.notLISP` for every port in `udpPorts` — an untagged frame that is not
    /// IPv4/IPv6 UDP to one of them. Tagged frames, IPv4 UDP fragments and IPv6 packets with a
    /// Fragment or other extension header (to be reassembled, or counted if not supported) and
    /// anything it cannot rule out get `true`.
    @inlinable @inline(__always)
    public static func mayBeLISP(_ p: UnsafeRawPointer, length: Int, udpPorts: UnsafePointer<UInt16>, count: Int) -> Bool {
        guard length >= 14 else { return false }
        let etherType = Wire.u16(p, 12)
        let port: UInt16
        if etherType == EtherType.ipv4 {
            guard length >= 38, Wire.u8(p, 23) == IPProtocol.udp else { return false }
            // An outer fragment may be LISP (RFC 9300 §7): a later one has no UDP header to tell.
            if Wire.u16(p, 20) & 0x3fff != 0 { return true }
            let udp = 14 &+ max(Int(Wire.u8(p, 14) & 0x0f) &<< 2, 20)
            guard udp &+ 4 <= length else { return false }
            port = Wire.u16(p, udp &+ 2)
        } else if etherType == EtherType.ipv6 {
            guard length >= 58 else { return false }
            let next = Wire.u8(p, 20)
            if next != IPProtocol.udp {
                // A Fragment header, or extension headers that may hide one (IPv6Reassembly.swift).
                return next == 44 || next == 0 || next == 43 || next == 60
            }
            port = Wire.u16(p, 56)
        } else {
            return EtherType.isVLAN(etherType)
        }
        for i in 0..<count where udpPorts[i] == port { return true }
        return false
    }

    // MARK: Flow hash (UDP source port entropy)

    /// TCP, UDP and SCTP have ports in their first 4 bytes.
    @inlinable @inline(__always)
    static func hasPorts(_ proto: UInt8) -> Bool {
        proto == IPProtocol.tcp || proto == IPProtocol.udp || proto == IPProtocol.sctp
    }

    @inlinable @inline(__always)
    static func mix(_ h: UInt64, _ w: UInt64) -> UInt64 {
        let x = (h ^ w) &* 0x9e37_79b9_7f4a_7c15
        return x ^ (x >> 29)
    }

    /// MurmurHash3's 64-bit finalizer: every input bit affects the low 14 bits used for the port.
    @inlinable @inline(__always)
    static func finish(_ h: UInt64) -> UInt64 {
        var x = h ^ (h >> 33)
        x &*= 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x &*= 0xc4ce_b9fe_1a85_ec53
        return x ^ (x >> 33)
    }

    /// Inner IPv4 packet at `p` (`length` >= 20 bytes, version 4).
    @inlinable @inline(__always)
    static func flowHashIPv4(_ p: UnsafeRawPointer, length: Int) -> UInt64 {
        let proto = Wire.u8(p, 9)
        let ihl = Int(Wire.u8(p, 0) & 0x0f) &<< 2
        var ports: UInt32 = 0
        if Wire.u16(p, 6) & 0x3fff == 0 && hasPorts(proto) && ihl >= 20 && ihl &+ 4 <= length {
            ports = Wire.u32(p, ihl)
        }
        return finish(mix(mix(4, Wire.u64(p, 12)), UInt64(proto) << 32 | UInt64(ports)))
    }

    /// Inner IPv6 packet at `p` (`length` >= 40 bytes, version 6).
    @inlinable @inline(__always)
    static func flowHashIPv6(_ p: UnsafeRawPointer, length: Int) -> UInt64 {
        let nextHeader = Wire.u8(p, 6)
        let end = min(40 &+ Int(Wire.u16(p, 4)), length)
        var ports: UInt32 = 0
        let chain = IPv6Walk(p, start: 40, end: end, nextHeader: nextHeader)
        if chain.isValid && chain.frag == 0 && hasPorts(chain.proto) && chain.l4 &+ 4 <= end {
            ports = Wire.u32(p, chain.l4)
        }
        var h = mix(6, Wire.u64(p, 8))
        h = mix(h, Wire.u64(p, 16))
        h = mix(h, Wire.u64(p, 24))
        h = mix(h, Wire.u64(p, 32))
        return finish(mix(h, UInt64(nextHeader) << 32 | UInt64(ports)))
    }

    // MARK: Decapsulation

    /// What `parseOuter` found in a LISP packet.
    public struct OuterHeaders: Sendable {
        /// Outer IP addresses (IPv4-mapped for an IPv4 outer header).
        public var source: IPAddress
        public var destination: IPAddress
        public var udpSourcePort: UInt16
        public var udpDestinationPort: UInt16
        /// The LISP flags byte.
        public var flags: UInt8
        /// The outer IPv4 TOS / IPv6 traffic class byte (its low two bits are the ECN field) and
        /// TTL / hop limit: what decapsulation carries over to the inner header.
        public var outerTOS: UInt8
        public var outerTTL: UInt8
        /// The 24-bit instance ID; 0 unless `hasInstanceID`.
        public var instanceID: UInt32
        /// The I flag is set.
        public var hasInstanceID: Bool
        /// Offset of the LISP header from the frame start; the inner packet follows it.
        public var lispOffset: Int
        /// Bytes of the inner packet (UDP length - 16); bytes after it (padding) are not part of it.
        public var innerLength: Int

        public init() {
            source = IPAddress(high: 0, low: 0)
            destination = IPAddress(high: 0, low: 0)
            udpSourcePort = 0
            udpDestinationPort = 0
            flags = 0
            outerTOS = 0
            outerTTL = 0
            instanceID = 0
            hasInstanceID = false
            lispOffset = 0
            innerLength = 0
        }

        /// Offset of the inner IP packet from the frame start.
        @inlinable public var innerOffset: Int { lispOffset &+ 8 }
    }

    public enum OuterParseResult: UInt8, Sendable {
        /// A well-formed LISP packet; the `OuterHeaders` are filled in.
        case lisp
        /// Not UDP to a LISP port (or too short to tell): not for LISP, nothing written.
        case notLISP
        /// UDP to a LISP port, but a header is broken: drop it and count a bad header. The outer
        /// source and destination are filled in (so the caller can tell whether it was for a local RLOC).
        case malformed
        /// A well-formed LISP header, but the inner IPv4 total length or IPv6 payload length is
        /// shorter than its header or claims more bytes than the UDP payload holds: drop and count
        /// it (outer source and destination filled in, as for `.malformed`).
        case badInnerLength
        /// A well-formed outer header whose LISP header has KK ≠ 00: the payload is encrypted
        /// (RFC 8061), which vswift cannot decrypt. Addresses, UDP ports, flags and instance ID are
        /// filled in (the LISP header itself is not encrypted); the inner packet is not looked at.
        case encrypted
    }

    /// Is the frame Ethernet (up to two VLAN tags) / IPv4 or IPv6 / UDP to `udpPort`, and then is it
    /// a well-formed LISP packet? Runs on every received frame while a LISP port exists, so other
    /// frames are rejected first with an ethertype, a protocol and a port compare.
    ///
    /// A frame counts as "UDP to the port" when the outer IP protocol (IPv6: the next header of the
    /// fixed header itself; extension headers make it `.notLISP`) is UDP and its destination port,
    /// which must lie within the frame, matches (for an IPv4 IHL < 5, where a 20-byte header would put
    /// it). Such a frame is `.malformed` when: the IP version is wrong; IPv4 IHL < 5, total length
    /// smaller than the header or larger than the frame, a fragment (MF or offset: a fragment cannot
    /// be decapsulated), or a wrong header checksum (verified, as the kernel does); the IPv6 payload
    /// length is beyond the frame; the UDP header does not fit the IP payload, UDP length < 16 or
    /// beyond the IP payload; a nonzero UDP checksum does not verify (zero is accepted over IPv4 and
    /// IPv6 alike, RFC 6935); the inner packet is not IPv4 with a 20..IHL-byte header in it or IPv6
    /// of at least 40 bytes. KK ≠ 00 is `.encrypted`. Flags, by RFC 9300 §5.3: R is ignored on
    /// receipt; N and V together mean a nonce ("MUST treat the field as having a nonce value"),
    /// which vswift, using neither, accepts; E (echo-nonce request) and V (map-versions) are
    /// accepted and ignored. Any UDP source port, nonce or LSB value is accepted.
    @inlinable
    public static func parseOuter(_ frame: UnsafeRawPointer, length: Int, udpPort: UInt16,
                                  into outer: UnsafeMutablePointer<OuterHeaders>) -> OuterParseResult {
        parseOuter(frame, length: length, isPort: { $0 == udpPort }, into: outer)
    }

    /// `parseOuter` for several LISP ports (a short list: scanned linearly).
    @inlinable
    public static func parseOuter(_ frame: UnsafeRawPointer, length: Int, udpPorts: UnsafeBufferPointer<UInt16>,
                                  into outer: UnsafeMutablePointer<OuterHeaders>) -> OuterParseResult {
        parseOuter(frame, length: length, isPort: { port in
            for p in udpPorts where p == port { return true }
            return false
        }, into: outer)
    }

    @inlinable @inline(__always)
    static func parseOuter(_ p: UnsafeRawPointer, length: Int, isPort: (UInt16) -> Bool,
                           into outer: UnsafeMutablePointer<OuterHeaders>) -> OuterParseResult {
        guard length >= 14 else { return .notLISP }
        let l2 = L2.parse(p, length: length)
        let l3 = l2.l3Offset
        let udp: Int
        let udpLength: Int
        if l2.etherType == EtherType.ipv4 {
            guard length &- l3 >= 24, Wire.u8(p, l3 &+ 9) == IPProtocol.udp else { return .notLISP }
            let versionIHL = Wire.u8(p, l3)
            let ihl = Int(versionIHL & 0x0f) &<< 2
            udp = l3 &+ max(ihl, 20)
            guard udp &+ 4 <= length, isPort(Wire.u16(p, udp &+ 2)) else { return .notLISP }
            // Addresses first, so a malformed packet's caller can still tell whether it was for us.
            outer.pointee.source = IPAddress(ipv4: Wire.u32(p, l3 &+ 12))
            outer.pointee.destination = IPAddress(ipv4: Wire.u32(p, l3 &+ 16))
            // UDP to a LISP port: anything wrong from here on is .malformed.
            guard versionIHL >> 4 == 4, ihl >= 20 else { return .malformed }
            let total = Int(Wire.u16(p, l3 &+ 2))
            guard total >= ihl, total <= length &- l3 else { return .malformed }
            guard Wire.u16(p, l3 &+ 6) & 0x3fff == 0 else { return .malformed }
            let headerSum = ihl == 20 ? Checksum.sumIPv4BaseHeader(p + l3) : Checksum.sum(p + l3, length: ihl)
            guard headerSum == 0xffff else { return .malformed }
            let ipEnd = l3 &+ total
            guard ipEnd &- udp >= 8 else { return .malformed }
            udpLength = Int(Wire.u16(p, udp &+ 4))
            guard udpLength >= 16, udpLength <= ipEnd &- udp else { return .malformed }
            let source = Wire.u32(p, l3 &+ 12)
            let destination = Wire.u32(p, l3 &+ 16)
            if Wire.u16(p, udp &+ 6) != 0 {
                let pseudo = Checksum.pseudoHeaderIPv4(source: source, destination: destination,
                                                       protocol: IPProtocol.udp, length: udpLength)
                guard Checksum.add(pseudo, Checksum.sum(p + udp, length: udpLength)) == 0xffff else {
                    return .malformed
                }
            }
            outer.pointee.source = IPAddress(ipv4: source)
            outer.pointee.destination = IPAddress(ipv4: destination)
            outer.pointee.outerTOS = Wire.u8(p, l3 &+ 1)
            outer.pointee.outerTTL = Wire.u8(p, l3 &+ 8)
        } else {
            guard l2.etherType == EtherType.ipv6, length &- l3 >= 44, Wire.u8(p, l3 &+ 6) == IPProtocol.udp,
                  isPort(Wire.u16(p, l3 &+ 42)) else { return .notLISP }
            outer.pointee.source = IPAddress(loadingFrom: p + (l3 &+ 8))
            outer.pointee.destination = IPAddress(loadingFrom: p + (l3 &+ 24))
            guard Wire.u8(p, l3) >> 4 == 6 else { return .malformed }
            udp = l3 &+ 40
            let payload = Int(Wire.u16(p, l3 &+ 4))
            guard payload >= 8, payload <= length &- udp else { return .malformed }
            udpLength = Int(Wire.u16(p, udp &+ 4))
            guard udpLength >= 16, udpLength <= payload else { return .malformed }
            if Wire.u16(p, udp &+ 6) != 0 {
                let pseudo = Checksum.pseudoHeaderIPv6(source: p + (l3 &+ 8), destination: p + (l3 &+ 24),
                                                       nextHeader: IPProtocol.udp, length: udpLength)
                guard Checksum.add(pseudo, Checksum.sum(p + udp, length: udpLength)) == 0xffff else {
                    return .malformed
                }
            }
            outer.pointee.source = IPAddress(loadingFrom: p + (l3 &+ 8))
            outer.pointee.destination = IPAddress(loadingFrom: p + (l3 &+ 24))
            outer.pointee.outerTOS = UInt8(truncatingIfNeeded: Wire.u16(p, l3) >> 4)
            outer.pointee.outerTTL = Wire.u8(p, l3 &+ 7)
        }
        // LISP header and inner packet, within the UDP length.
        let lisp = udp &+ 8
        let flags = Wire.u8(p, lisp)
        let hasInstanceID = flags & flagInstanceID != 0
        outer.pointee.udpSourcePort = Wire.u16(p, udp)
        outer.pointee.udpDestinationPort = Wire.u16(p, udp &+ 2)
        outer.pointee.flags = flags
        outer.pointee.instanceID = hasInstanceID ? Wire.u32(p, lisp &+ 4) >> 8 : 0
        outer.pointee.hasInstanceID = hasInstanceID
        outer.pointee.lispOffset = lisp
        // RFC 9300 §5.3: KK ≠ 00 is an encrypted payload (RFC 8061): not an inner packet to check.
        guard flags & flagsKeyID == 0 else { return .encrypted }
        let inner = lisp &+ 8
        let innerLength = udpLength &- 16
        guard innerLength > 0 else { return .malformed }
        let version = Wire.u8(p, inner)
        // The inner packet's own length must fit what arrived (RFC 791 total length >= IHL,
        // RFC 8200 payload length); bytes after it within the UDP payload belong to no packet and
        // are trimmed, as a receiving IP stack trims them (Linux ip_rcv, ipv6_rcv).
        let packetLength: Int
        if version >> 4 == 4 {
            let ihl = Int(version & 0x0f) &<< 2
            guard innerLength >= 20, ihl >= 20, ihl <= innerLength else { return .malformed }
            packetLength = Int(Wire.u16(p, inner &+ 2))
            guard packetLength >= ihl else { return .badInnerLength }
        } else {
            guard version >> 4 == 6, innerLength >= 40 else { return .malformed }
            packetLength = 40 &+ Int(Wire.u16(p, inner &+ 4))
        }
        guard packetLength <= innerLength else { return .badInnerLength }
        outer.pointee.innerLength = packetLength
        return .lisp
    }

    /// Strips the outer headers found by `parseOuter` (which returned `.lisp` for this unchanged
    /// frame) and pushes an Ethernet header with source and destination 02:00:00:00:00:00 and the
    /// inner packet's ethertype, as OVS's LISP port did. `frame` moves forward to the new Ethernet
    /// header (written over the end of the outer headers, so no headroom is needed) and `length`
    /// becomes 14 + the inner length (trailing padding is dropped). First the outer TTL and ECN
    /// are carried over to the inner header (see LISPHeaderFields.swift); when that says drop,
    /// the result says why and `frame` and `length` are unchanged.
    @inlinable @inline(__always)
    public static func decapsulate(_ frame: inout UnsafeMutableRawPointer, length: inout Int,
                                   outer: UnsafePointer<OuterHeaders>) -> DecapsulationResult {
        let inner = outer.pointee.innerOffset
        let fields = applyOuterFields(frame + inner, outerTOS: outer.pointee.outerTOS, outerTTL: outer.pointee.outerTTL)
        guard fields == .done else { return fields }
        let p = frame + (inner &- 14)
        let type = Wire.u8(frame, inner) >> 4 == 6 ? EtherType.ipv6 : EtherType.ipv4
        Wire.putMAC(p, 0, decapsulatedMAC)
        Wire.putMAC(p, 6, decapsulatedMAC)
        Wire.put16(p, 12, type)
        frame = p
        length = 14 &+ outer.pointee.innerLength
        return .done
    }

    /// The MAC of both ends of a decapsulated frame's Ethernet header (OVS: 02:00:00:00:00:00).
    @inlinable public static var decapsulatedMAC: UInt64 { 0x0200_0000_0000 }
}
