/// What an ITR reads of the inner packet before it knows where to send it: its addresses (the
/// destination is the EID the map-cache is asked about, the source a Map-Request's source EID,
/// RFC 9301 §5.3) and, for a destination with several RLOCs, the flow hash that picks one (the
/// hash the outer UDP source port comes from, RFC 9300 §12, so one flow keeps one RLOC).
extension LISP {
    public struct InnerPacket: Sendable {
        public var source: IPAddress
        public var destination: IPAddress
        /// Offset of the IP header in the frame (after Ethernet and up to two VLAN tags).
        public var l3Offset: Int
        public var isIPv6: Bool

        @inlinable
        public init(source: IPAddress, destination: IPAddress, l3Offset: Int, isIPv6: Bool) {
            self.source = source
            self.destination = destination
            self.l3Offset = l3Offset
            self.isIPv6 = isIPv6
        }
    }

    /// The inner IPv4/IPv6 packet of an Ethernet frame (as `encapsulate` will read it), or nil for
    /// anything it would refuse as not IP (too short, another ethertype or IP version).
    ///
    /// An untagged IPv4 frame, the common case on the encapsulation path, is read inline in a few
    /// instructions (the same bytes under the same checks as the general parse: 34 bytes, version
    /// 4); VLAN tags, IPv6 and the rest take `innerPacketParsing`, out of line.
    @inlinable @inline(__always)
    public static func innerPacket(_ frame: UnsafeRawPointer, length: Int) -> InnerPacket? {
        if isUntaggedIPv4(frame, length: length) {
            return InnerPacket(source: IPAddress(ipv4: Wire.u32(frame, 26)), destination: untaggedIPv4Destination(frame),
                               l3Offset: 14, isIPv6: false)
        }
        return innerPacketParsing(frame, length: length)
    }

    /// Whether `innerPacket` reads the frame as untagged IPv4 (its inline case): then the inner
    /// destination is `untaggedIPv4Destination`.
    @inlinable @inline(__always)
    public static func isUntaggedIPv4(_ frame: UnsafeRawPointer, length: Int) -> Bool {
        // The ethertype (bytes 12-13) and the version (high nibble of byte 14) in one load.
        length >= 34 && UInt32(bigEndian: (frame + 12).loadUnaligned(as: UInt32.self)) & 0xffff_f000 == 0x0800_4000
    }

    /// Where an untagged IPv4 frame's destination is, read from any frame of 34 bytes or more
    /// whose ethertype is IPv4, as its 4 bytes load (network order, no byte swap). The IP version
    /// is not checked: a prefetch hint, or a lookup key for a frame that `encapsulate` (which
    /// checks it) reads next, so a frame of another version is refused there as not IP, as
    /// `innerPacket` would have refused it.
    @inlinable @inline(__always)
    public static func ipv4EthertypeDestinationOnWire(_ frame: UnsafeRawPointer, length: Int) -> UInt32? {
        guard length >= 34 && Wire.u16(frame, 12) == EtherType.ipv4 else { return nil }
        return untaggedIPv4DestinationOnWire(frame)
    }

    /// The IPv4 destination of a frame `isUntaggedIPv4` accepted.
    @inlinable @inline(__always)
    public static func untaggedIPv4Destination(_ frame: UnsafeRawPointer) -> IPAddress {
        IPAddress(ipv4: Wire.u32(frame, 30))
    }

    /// `untaggedIPv4Destination` as its 4 bytes load (network order: `UInt32(bigEndian:)` of it
    /// is the address), for keys and hashes that need no byte swap.
    @inlinable @inline(__always)
    public static func untaggedIPv4DestinationOnWire(_ frame: UnsafeRawPointer) -> UInt32 {
        (frame + 30).loadUnaligned(as: UInt32.self)
    }

    /// `innerPacket` for everything but an untagged IPv4 frame.
    @usableFromInline @inline(never)
    static func innerPacketParsing(_ frame: UnsafeRawPointer, length: Int) -> InnerPacket? {
        guard length >= 14 else { return nil }
        let l2 = L2.parse(frame, length: length)
        let l3 = l2.l3Offset
        let inner = frame + l3
        if l2.etherType == EtherType.ipv4 {
            guard length &- l3 >= 20, Wire.u8(inner, 0) >> 4 == 4 else { return nil }
            return InnerPacket(source: IPAddress(ipv4: Wire.u32(inner, 12)), destination: IPAddress(ipv4: Wire.u32(inner, 16)),
                               l3Offset: l3, isIPv6: false)
        }
        if l2.etherType == EtherType.ipv6 {
            guard length &- l3 >= 40, Wire.u8(inner, 0) >> 4 == 6 else { return nil }
            return InnerPacket(source: IPAddress(loadingFrom: inner + 8), destination: IPAddress(loadingFrom: inner + 24),
                               l3Offset: l3, isIPv6: true)
        }
        return nil
    }

    /// The inner flow's hash, the one `encapsulate` takes the outer UDP source port from.
    @inlinable @inline(__always)
    public static func innerFlowHash(_ frame: UnsafeRawPointer, length: Int, _ packet: InnerPacket) -> UInt64 {
        let inner = frame + packet.l3Offset
        var innerLength = length &- packet.l3Offset
        if packet.isIPv6 {
            let total = 40 &+ Int(Wire.u16(inner, 4))
            if total > 40, total < innerLength { innerLength = total }
            return flowHashIPv6(inner, length: innerLength)
        }
        let total = Int(Wire.u16(inner, 2))
        if total >= 20, total < innerLength { innerLength = total }
        return flowHashIPv4(inner, length: innerLength)
    }
}

extension LISP {
    /// The inner IPv4/IPv6 addresses of a LISP packet `parseOuter` accepted (nil when the inner
    /// packet is too short or not IP): what an ETR asks the mapping system about when a sender's
    /// RLOC is not in its map-cache yet.
    @inlinable
    public static func decapsulatedAddresses(_ frame: UnsafeRawPointer, outer: OuterHeaders) -> (source: IPAddress, destination: IPAddress)? {
        let inner = frame + outer.innerOffset
        let length = outer.innerLength
        if length >= 20 && Wire.u8(inner, 0) >> 4 == 4 {
            return (IPAddress(ipv4: Wire.u32(inner, 12)), IPAddress(ipv4: Wire.u32(inner, 16)))
        }
        if length >= 40 && Wire.u8(inner, 0) >> 4 == 6 {
            return (IPAddress(loadingFrom: inner + 8), IPAddress(loadingFrom: inner + 24))
        }
        return nil
    }
}
