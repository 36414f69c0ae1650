import Glibc

/// IPv6 fragments (RFC 8200 §4.5) into the shared `FragmentReassembler`.
///
/// Supported: a Fragment header directly after the IPv6 header, the only place an encapsulating
/// router or host puts it when no other extension header is present (as the XDP filter also
/// requires). A Fragment header behind other extension headers (Hop-by-Hop, Routing, Destination
/// Options) is recognised by `ipv6UDPFragment` and reported as `behindExtensionHeaders`, for the
/// caller to drop and count; anything else before it is not walked (not a fragment to us).
/// - The first fragment must carry the whole header chain up to the upper-layer header (RFC 7112):
///   here the UDP header, 8 bytes; otherwise `malformed`.
/// - An atomic fragment (offset 0, M clear) is no fragment at all and is processed as the packet it
///   is (RFC 6946 §4): `ipv6UDPFragment` reports it `atomic`, `removeAtomicFragmentHeader` strips it.
/// - The reassembled packet is the first fragment's IPv6 header with Payload Length and Next Header
///   set (the Fragment header's next header), then the fragmentable parts in order.
extension FragmentReassembler {
    /// IPv6 Next Header values (RFC 8200 §4).
    static let hopByHop: UInt8 = 0
    static let routing: UInt8 = 43
    static let fragmentHeader: UInt8 = 44
    static let destinationOptions: UInt8 = 60

    public enum IPv6FragmentKind: Sendable, Equatable {
        /// Not an IPv6 UDP fragment (or not well-formed enough to be one).
        case none
        /// A Fragment header directly after the IPv6 header, offset or M set: for `addIPv6`.
        case fragment
        /// Offset 0 and M clear (RFC 6946): process as unfragmented.
        case atomic
        /// A UDP fragment whose Fragment header follows other extension headers: not supported.
        case behindExtensionHeaders
    }

    /// Takes the IPv6 fragment at `ip` (`length` bytes from its header on): a Fragment header
    /// directly after the IPv6 header, offset or M set (`ipv6UDPFragment` said `.fragment`).
    public func addIPv6(_ ip: UnsafeRawPointer, length: Int, now: UInt64) -> Outcome {
        guard length >= 48, Wire.u8(ip, 0) >> 4 == 6, Wire.u8(ip, 6) == Self.fragmentHeader else { return .malformed }
        let payloadLength = Int(Wire.u16(ip, 4))
        guard payloadLength >= 8, 40 &+ payloadLength <= length else { return .malformed }
        let field = Wire.u16(ip, 42)
        let start = Int(field & 0xfff8)
        let size = payloadLength &- 8
        let proto = Wire.u8(ip, 40)
        // RFC 7112 §5: a first fragment without the upper-layer header is dropped.
        if start == 0 && proto == IPProtocol.udp && size < 8 { return .malformed }
        let outcome = add(Fragment(source: IPAddress(loadingFrom: ip + 8), destination: IPAddress(loadingFrom: ip + 24),
                                   identification: Wire.u32(ip, 44), proto: proto, header: ip, headerLength: 40,
                                   payload: ip + 48, start: start, size: size, more: field & 1 != 0),
                          now: now)
        guard outcome == .complete else { return outcome }
        let kept = keptHeader(completed)
        Wire.put16(kept.header, 4, UInt16(kept.payloadLength))
        Wire.put8(kept.header, 6, kept.proto)
        return .complete
    }

    /// What the frame at `frame` (Ethernet, up to two VLAN tags) is as an IPv6 UDP fragment, and
    /// the offset of its IPv6 header. Checked: version 6, Payload Length within the frame, the
    /// Fragment header within it and naming UDP (RFC 8200 §4.5).
    public static func ipv6UDPFragment(_ frame: UnsafeRawPointer, length: Int) -> (kind: IPv6FragmentKind, l3: Int) {
        guard length >= 62 else { return (.none, 0) }
        let l2 = L2.parse(frame, length: length)
        let l3 = l2.l3Offset
        guard l2.etherType == EtherType.ipv6, length &- l3 >= 48 else { return (.none, 0) }
        let ip = frame + l3
        let payloadLength = Int(Wire.u16(ip, 4))
        guard Wire.u8(ip, 0) >> 4 == 6, payloadLength >= 8, 40 &+ payloadLength <= length &- l3 else { return (.none, 0) }
        var next = Wire.u8(ip, 6)
        if next == fragmentHeader {
            guard Wire.u8(ip, 40) == IPProtocol.udp else { return (.none, 0) }
            return (Wire.u16(ip, 42) & 0xfff9 == 0 ? .atomic : .fragment, l3)
        }
        // Hop-by-Hop, Routing, Destination Options before it (RFC 8200 §4.1): at most 8, within
        // the packet.
        var offset = 40
        for _ in 0..<8 {
            guard next == hopByHop || next == routing || next == destinationOptions, offset &+ 8 <= 40 &+ payloadLength else {
                return (.none, 0)
            }
            next = Wire.u8(ip, offset)
            offset &+= (Int(Wire.u8(ip, offset &+ 1)) &+ 1) &<< 3
            if next == fragmentHeader {
                guard offset &+ 8 <= 40 &+ payloadLength, Wire.u8(ip, offset) == IPProtocol.udp else { return (.none, 0) }
                return (.behindExtensionHeaders, l3)
            }
        }
        return (.none, 0)
    }

    /// Removes the Fragment header of an atomic fragment (RFC 6946 §4) whose IPv6 header is at
    /// `frame + l3`: the `l3 + 40` bytes before it move 8 bytes on, so the packet then starts at
    /// `frame + 8`, 8 bytes shorter, with Next Header and Payload Length set as if never fragmented.
    public static func removeAtomicFragmentHeader(_ frame: UnsafeMutableRawPointer, l3: Int) {
        let ip = frame + l3
        Wire.put8(ip, 6, Wire.u8(ip, 40))
        Wire.put16(ip, 4, Wire.u16(ip, 4) &- 8)
        memmove(frame + 8, frame, l3 &+ 40)
    }
}
