// Frames from a capture file, for `vswiftctl trace --pcap`: classic pcap (either byte order,
// microsecond or nanosecond) and pcapng (Enhanced and Simple Packet Blocks), Ethernet link type
// only. The file is the user's, but read as hostile: every length is checked against the bytes.

public enum PcapFrames {
    public struct FormatError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The Ethernet frames of the file, in order (at most `limit`).
    public static func frames(_ data: [UInt8], limit: Int = .max) throws(FormatError) -> [[UInt8]] {
        guard data.count >= 4 else { throw FormatError(description: "not a pcap or pcapng file (too short)") }
        let magic = read32(data, 0, bigEndian: false)
        if magic == 0x0a0d_0d0a { return try pcapng(data, limit: limit) }
        let isBig: Bool
        switch magic {
        case 0xa1b2_c3d4, 0xa1b2_3c4d: isBig = false
        case 0xd4c3_b2a1, 0x4d3c_b2a1: isBig = true
        default: throw FormatError(description: "not a pcap or pcapng file")
        }
        guard data.count >= 24 else { throw FormatError(description: "pcap file header cut short") }
        let linkType = read32(data, 20, bigEndian: isBig) & 0x0fff_ffff
        guard linkType == 1 else { throw FormatError(description: "pcap link type \(linkType) is not Ethernet (1)") }
        var frames: [[UInt8]] = []
        var offset = 24
        while offset + 16 <= data.count && frames.count < limit {
            let captured = Int(read32(data, offset + 8, bigEndian: isBig))
            let start = offset + 16
            guard captured <= data.count - start else { throw FormatError(description: "pcap record at byte \(offset) cut short") }
            frames.append(Array(data[start..<start + captured]))
            offset = start + captured
        }
        return frames
    }

    private static func pcapng(_ data: [UInt8], limit: Int) throws(FormatError) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var offset = 0
        var isBig = false
        /// Link type per interface of the current section.
        var interfaces: [UInt32] = []
        while offset + 12 <= data.count && frames.count < limit {
            var type = read32(data, offset, bigEndian: isBig)
            if type == 0x0a0d_0d0a {
                // Section header: its byte-order magic decides how the section reads.
                guard offset + 12 <= data.count else { break }
                isBig = read32(data, offset + 8, bigEndian: false) != 0x1a2b_3c4d
                type = 0x0a0d_0d0a
                interfaces = []
            }
            let length = Int(read32(data, offset + 4, bigEndian: isBig))
            guard length >= 12, length % 4 == 0, length <= data.count - offset else {
                throw FormatError(description: "pcapng block at byte \(offset) has a bad length")
            }
            let body = offset + 8
            switch type {
            case 1:  // Interface Description Block
                guard length >= 20 else { throw FormatError(description: "pcapng interface block cut short") }
                interfaces.append(UInt32(read16(data, body, bigEndian: isBig)))
            case 6:  // Enhanced Packet Block
                guard length >= 32 else { throw FormatError(description: "pcapng packet block cut short") }
                let interface = Int(read32(data, body, bigEndian: isBig))
                let captured = Int(read32(data, body + 12, bigEndian: isBig))
                let start = body + 20
                guard captured <= offset + length - 4 - start else { throw FormatError(description: "pcapng packet at byte \(offset) cut short") }
                guard interface < interfaces.count, interfaces[interface] == 1 else {
                    throw FormatError(description: "pcapng packet at byte \(offset) is not on an Ethernet interface")
                }
                frames.append(Array(data[start..<start + captured]))
            case 3:  // Simple Packet Block
                let original = Int(read32(data, body, bigEndian: isBig))
                let start = body + 4
                let captured = min(original, offset + length - 4 - start)
                guard interfaces.first == 1 else { throw FormatError(description: "pcapng packet is not on an Ethernet interface") }
                frames.append(Array(data[start..<start + max(0, captured)]))
            default:
                break
            }
            offset += length
        }
        return frames
    }

    private static func read16(_ d: [UInt8], _ at: Int, bigEndian: Bool) -> UInt16 {
        bigEndian ? UInt16(d[at]) << 8 | UInt16(d[at + 1]) : UInt16(d[at + 1]) << 8 | UInt16(d[at])
    }

    private static func read32(_ d: [UInt8], _ at: Int, bigEndian: Bool) -> UInt32 {
        let b = (UInt32(d[at]), UInt32(d[at + 1]), UInt32(d[at + 2]), UInt32(d[at + 3]))
        return bigEndian ? b.0 << 24 | b.1 << 16 | b.2 << 8 | b.3 : b.3 << 24 | b.2 << 16 | b.1 << 8 | b.0
    }
}
