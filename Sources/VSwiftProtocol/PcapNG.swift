// The pcapng file format (draft-ietf-opsawg-pcapng, "PCAP Next Generation (pcapng) Capture File
// Format"), as much of it as `vswiftctl capture` writes: a Section Header Block (§4.1), one
// Interface Description Block per captured port (§4.2), an Enhanced Packet Block per frame (§4.3)
// and, at the end, an Interface Statistics Block (§4.6). Written little-endian (the byte-order
// magic tells readers so); every block and option is padded to 32 bits (§3.1, §3.5).

/// Builds pcapng blocks as bytes. Pure: the caller writes them where it wants (a file, stdout).
public enum PcapNG {
    public enum BlockType {
        public static let sectionHeader: UInt32 = 0x0A0D_0D0A
        public static let interfaceDescription: UInt32 = 0x0000_0001
        public static let interfaceStatistics: UInt32 = 0x0000_0005
        public static let enhancedPacket: UInt32 = 0x0000_0006
    }

    /// LINKTYPE_ETHERNET (the tcpdump.org link-layer header types registry).
    public static let linkTypeEthernet: UInt16 = 1
    public static let byteOrderMagic: UInt32 = 0x1A2B_3C4D

    /// epb_flags (§4.3.1) bits 0–1: the packet's direction.
    public enum Direction: UInt32, Sendable {
        case inbound = 1
        case outbound = 2
    }

    /// SHB: version 1.0, section length unknown (-1), option shb_userappl (4).
    public static func sectionHeader(application: String? = nil) -> [UInt8] {
        var body: [UInt8] = []
        append32(&body, byteOrderMagic)
        append16(&body, 1)  // major version
        append16(&body, 0)  // minor version
        append64(&body, UInt64.max)  // section length: not specified
        var options: [(UInt16, [UInt8])] = []
        if let application { options.append((4, Array(application.utf8))) }
        appendOptions(&body, options)
        return block(BlockType.sectionHeader, body)
    }

    /// IDB for an Ethernet port: if_name (2), if_description (3) and if_tsresol (9) = 9, so
    /// timestamps count nanoseconds.
    public static func interfaceDescription(name: String, description: String? = nil, snapLength: UInt32) -> [UInt8] {
        var body: [UInt8] = []
        append16(&body, linkTypeEthernet)
        append16(&body, 0)  // reserved
        append32(&body, snapLength)
        var options: [(UInt16, [UInt8])] = [(2, Array(name.utf8))]
        if let description { options.append((3, Array(description.utf8))) }
        options.append((9, [9]))
        appendOptions(&body, options)
        return block(BlockType.interfaceDescription, body)
    }

    /// EPB: `data` is what was kept of a frame `originalLength` long; `timestamp` in nanoseconds
    /// since the epoch (the IDB's if_tsresol), stored high word first; the direction in epb_flags (2).
    public static func enhancedPacket(
        interface: UInt32, timestamp: UInt64, originalLength: UInt32, data: some Collection<UInt8>, direction: Direction?
    ) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(20 + data.count + 16)
        append32(&body, interface)
        append32(&body, UInt32(truncatingIfNeeded: timestamp >> 32))
        append32(&body, UInt32(truncatingIfNeeded: timestamp))
        append32(&body, UInt32(data.count))
        append32(&body, max(originalLength, UInt32(data.count)))
        body.append(contentsOf: data)
        pad(&body)
        var options: [(UInt16, [UInt8])] = []
        if let direction {
            var flags: [UInt8] = []
            append32(&flags, direction.rawValue)
            options.append((2, flags))
        }
        appendOptions(&body, options)
        return block(BlockType.enhancedPacket, body)
    }

    /// ISB: isb_starttime (2), isb_endtime (3), isb_osdrop (7: frames the capture could not keep)
    /// and isb_usrdeliv (8: frames delivered), timestamps in the IDB's nanoseconds.
    public static func interfaceStatistics(
        interface: UInt32, timestamp: UInt64, start: UInt64, end: UInt64, dropped: UInt64, delivered: UInt64
    ) -> [UInt8] {
        var body: [UInt8] = []
        append32(&body, interface)
        append32(&body, UInt32(truncatingIfNeeded: timestamp >> 32))
        append32(&body, UInt32(truncatingIfNeeded: timestamp))
        func time(_ t: UInt64) -> [UInt8] {
            var bytes: [UInt8] = []
            append32(&bytes, UInt32(truncatingIfNeeded: t >> 32))
            append32(&bytes, UInt32(truncatingIfNeeded: t))
            return bytes
        }
        func count(_ n: UInt64) -> [UInt8] {
            var bytes: [UInt8] = []
            append64(&bytes, n)
            return bytes
        }
        appendOptions(&body, [(2, time(start)), (3, time(end)), (7, count(dropped)), (8, count(delivered))])
        return block(BlockType.interfaceStatistics, body)
    }

    // MARK: Encoding

    /// Type, total length, body, total length again (§3.1).
    static func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
        precondition(body.count % 4 == 0, "pcapng block bodies are padded to 32 bits")
        let total = UInt32(12 + body.count)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(total))
        append32(&bytes, type)
        append32(&bytes, total)
        bytes.append(contentsOf: body)
        append32(&bytes, total)
        return bytes
    }

    /// Options (§3.5): code, length, value padded to 32 bits; opt_endofopt when there are any.
    static func appendOptions(_ bytes: inout [UInt8], _ options: [(UInt16, [UInt8])]) {
        guard !options.isEmpty else { return }
        for (code, value) in options {
            append16(&bytes, code)
            append16(&bytes, UInt16(min(value.count, Int(UInt16.max))))
            bytes.append(contentsOf: value.prefix(Int(UInt16.max)))
            pad(&bytes)
        }
        append32(&bytes, 0)  // opt_endofopt
    }

    static func pad(_ bytes: inout [UInt8]) {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    static func append16(_ bytes: inout [UInt8], _ value: UInt16) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    static func append32(_ bytes: inout [UInt8], _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    static func append64(_ bytes: inout [UInt8], _ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
}
