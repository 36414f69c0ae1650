/// Fragments cut by hand, byte by byte, independently of the code under test: IPv4 (RFC 791 §3.2)
/// and IPv6 with a Fragment header directly after the IPv6 header (RFC 8200 §4.5).
public enum Fragments {
    /// The IPv4 datagram at `l3` in `packet` (IHL 5; `l3` bytes of L2 header before it, copied
    /// onto each piece) cut into fragments of `size` payload bytes (a multiple of 8; the last
    /// less), DF clear, identification `id` (or the datagram's own), header checksums fixed.
    public static func ipv4(_ packet: [UInt8], l3: Int = 0, size: Int, id: UInt16? = nil) -> [[UInt8]] {
        let l2 = Array(packet[0..<l3]), header = Array(packet[l3..<(l3 + 20)]), payload = Array(packet[(l3 + 20)...])
        var out: [[UInt8]] = []
        var offset = 0
        while offset < payload.count {
            let end = min(offset + size, payload.count)
            var h = header
            Ref.put16(&h, 2, UInt16(20 + end - offset))
            if let id { Ref.put16(&h, 4, id) }
            Ref.put16(&h, 6, (end < payload.count ? 0x2000 : 0) | UInt16(offset / 8))
            Ref.put16(&h, 10, 0)
            Ref.put16(&h, 10, Ref.checksum(h))
            out.append(l2 + h + payload[offset..<end])
            offset = end
        }
        return out
    }

    /// One IPv6 fragment: the IPv6 header of the packet at `l3` in `packet` (Next Header 44,
    /// Payload Length set), a Fragment header (`next`, offset, M, `id`), then `bytes`.
    public static func ipv6Fragment(_ packet: [UInt8], l3: Int = 0, _ bytes: ArraySlice<UInt8>, offset: Int, more: Bool, id: UInt32,
                                    next: UInt8? = nil) -> [UInt8] {
        var h = Array(packet[0..<(l3 + 40)])
        let original = h[l3 + 6]
        h[l3 + 6] = 44
        Ref.put16(&h, l3 + 4, UInt16(8 + bytes.count))
        let fragmentHeader: [UInt8] = [next ?? original, 0] + Ref.be16(UInt16(offset) | (more ? 1 : 0)) + Ref.be32(id)
        return h + fragmentHeader + bytes
    }

    /// The IPv6 packet at `l3` in `packet` (no extension headers) cut into fragments of `size`
    /// bytes of its payload (a multiple of 8; the last less), identification `id`.
    public static func ipv6(_ packet: [UInt8], l3: Int = 0, size: Int, id: UInt32) -> [[UInt8]] {
        let payload = Array(packet[(l3 + 40)...])
        var out: [[UInt8]] = []
        var offset = 0
        while offset < payload.count {
            let end = min(offset + size, payload.count)
            out.append(ipv6Fragment(packet, l3: l3, payload[offset..<end], offset: offset, more: end < payload.count, id: id))
            offset = end
        }
        return out
    }
}
