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
    @inlinable @inline(__always)
    public static func innerPacket(_ frame: UnsafeRawPointer, length: Int) -> InnerPacket? {
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
