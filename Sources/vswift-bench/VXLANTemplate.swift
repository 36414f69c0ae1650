/// The generator's frame for OVS's VXLAN decapsulation run: `inner` (a whole Ethernet frame) in
/// VXLAN (RFC 7348, VNI 0) over UDP 4789 over IPv4 `from` → `to`, outer UDP checksum 0. The
/// generator program varies the outer UDP source port like the plain frame's.
extension FrameTemplate {
    static let vxlanPort: UInt16 = 4789

    static func vxlan(inner: [UInt8], source: [UInt8], destination: [UInt8], from: [UInt8], to: [UInt8]) -> [UInt8] {
        let outer = 14 + 20 + 8 + 8
        var f = [UInt8](repeating: 0, count: outer)
        f.replaceSubrange(0..<6, with: destination)
        f.replaceSubrange(6..<12, with: source)
        f[12] = 0x08; f[13] = 0x00
        let ipLength = 20 + 8 + 8 + inner.count
        f[14] = 0x45
        f[16] = UInt8(ipLength >> 8); f[17] = UInt8(ipLength & 0xff)
        f[20] = 0x40  // DF
        f[22] = 64    // TTL
        f[23] = 17    // UDP
        f.replaceSubrange(26..<30, with: from)
        f.replaceSubrange(30..<34, with: to)
        let checksum = ipv4HeaderChecksum(f[14..<34])
        f[24] = UInt8(checksum >> 8); f[25] = UInt8(checksum & 0xff)
        let udpLength = 8 + 8 + inner.count
        f[34] = UInt8(baseSourcePort >> 8); f[35] = UInt8(baseSourcePort & 0xff)
        f[36] = UInt8(vxlanPort >> 8); f[37] = UInt8(vxlanPort & 0xff)
        f[38] = UInt8(udpLength >> 8); f[39] = UInt8(udpLength & 0xff)
        f[42] = 0x08  // VXLAN flags: I (VNI valid); VNI 0
        return f + inner
    }

    /// RFC 1071 over a 20-byte header whose checksum field is zero.
    static func ipv4HeaderChecksum(_ header: ArraySlice<UInt8>) -> UInt16 {
        var sum: UInt32 = 0
        var i = header.startIndex
        while i < header.endIndex {
            sum += UInt32(header[i]) << 8 | UInt32(header[i + 1])
            i += 2
        }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}
