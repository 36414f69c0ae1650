import VSwiftPacket

/// The generator's template: Ethernet / IPv4 / UDP from 198.18.0.1 to 198.18.0.2 (the benchmarking
/// range, RFC 2544), UDP port 1024 (the program varies it per flow) to 9, UDP checksum 0.
enum FrameTemplate {
    static let baseSourcePort: UInt16 = 1024
    static let minimumSize = 60
    static let maximumSize = 1514

    /// `inner` encapsulated as vswift's LISP ports send it (outer IPv4 `from` → `to`, UDP 4341).
    static func lisp(inner: [UInt8], source: [UInt8], destination: [UInt8], from: String, to: String) -> [UInt8] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 256 + inner.count, alignment: 64)
        defer { buffer.deallocate() }
        var start = buffer + 256 - 64
        inner.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var length = inner.count
        let parameters = LISP.EncapsulationParameters(
            ethernetDestination: macValue(destination), ethernetSource: macValue(source),
            source: IPAddress(from)!, destination: IPAddress(to)!)
        let result = LISP.encapsulate(&start, length: &length, headroom: 256 - 64, instanceID: 0,
                                      parameters: parameters, ipIdentification: 1)
        precondition(result == .done)
        return Array(UnsafeRawBufferPointer(start: start, count: length))
    }

    private static func macValue(_ mac: [UInt8]) -> UInt64 { mac.reduce(0) { $0 << 8 | UInt64($1) } }

    static func udp(size: Int, source: [UInt8], destination: [UInt8]) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: size)
        f.replaceSubrange(0..<6, with: destination)
        f.replaceSubrange(6..<12, with: source)
        f[12] = 0x08; f[13] = 0x00
        let ipLength = size - 14
        f[14] = 0x45
        f[16] = UInt8(ipLength >> 8); f[17] = UInt8(ipLength & 0xff)
        f[20] = 0x40  // DF
        f[22] = 64    // TTL
        f[23] = 17    // UDP
        f.replaceSubrange(26..<30, with: [198, 18, 0, 1])
        f.replaceSubrange(30..<34, with: [198, 18, 0, 2])
        var sum: UInt32 = 0
        for i in stride(from: 14, to: 34, by: 2) { sum += UInt32(f[i]) << 8 | UInt32(f[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        f[24] = UInt8(checksum >> 8); f[25] = UInt8(checksum & 0xff)
        let udpLength = size - 34
        f[34] = UInt8(baseSourcePort >> 8); f[35] = UInt8(baseSourcePort & 0xff)
        f[37] = 9
        f[38] = UInt8(udpLength >> 8); f[39] = UInt8(udpLength & 0xff)
        return f
    }
}
