import Foundation
import Testing
import VSwiftTesting
@testable import VSwiftProtocol

/// The pcapng writer (draft-ietf-opsawg-pcapng): blocks byte for byte as the draft lays them out,
/// then a whole file read back by tshark (every frame decodes, with its timestamp to the
/// nanosecond and its direction). tshark is installed by scripts/setup.sh: without it the
/// read-back test is skipped, except under CI=true, where it fails.
@Suite("pcapng writer")
struct PcapNGTests {
    static let tshark = TestMachine.tool("tshark") ?? "/usr/bin/tshark"

    @Test("§4.1 Section Header Block: magic, version 1.0, unspecified section length")
    func sectionHeaderBlock() {
        #expect(PcapNG.sectionHeader() == [
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0,
            0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            28, 0, 0, 0,
        ])
    }

    @Test("§4.2 Interface Description Block: Ethernet, snap length, if_name padded to 32 bits, if_tsresol 9 (ns)")
    func interfaceDescriptionBlock() {
        #expect(PcapNG.interfaceDescription(name: "vnet0", snapLength: 4096) == [
            1, 0, 0, 0, 44, 0, 0, 0,
            1, 0, 0, 0, 0, 0x10, 0, 0,
            2, 0, 5, 0, 0x76, 0x6e, 0x65, 0x74, 0x30, 0, 0, 0,
            9, 0, 1, 0, 9, 0, 0, 0,
            0, 0, 0, 0,
            44, 0, 0, 0,
        ])
    }

    @Test("§4.3 Enhanced Packet Block: timestamp high word first, data padded, epb_flags direction (§4.3.1)")
    func enhancedPacketBlock() {
        let block = PcapNG.enhancedPacket(
            interface: 0, timestamp: 0x0000_0001_0000_0002, originalLength: 60, data: [0xaa, 0xbb, 0xcc, 0xdd, 0xee] as [UInt8], direction: .outbound)
        #expect(block == [
            6, 0, 0, 0, 52, 0, 0, 0,
            0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 60, 0, 0, 0,
            0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0, 0, 0,
            2, 0, 4, 0, 2, 0, 0, 0,
            0, 0, 0, 0,
            52, 0, 0, 0,
        ])
        // Four bytes of data need no padding; no direction, no options at all.
        #expect(PcapNG.enhancedPacket(interface: 1, timestamp: 7, originalLength: 4, data: [1, 2, 3, 4] as [UInt8], direction: nil) == [
            6, 0, 0, 0, 36, 0, 0, 0,
            1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0,
            1, 2, 3, 4,
            36, 0, 0, 0,
        ])
    }

    @Test("§4.6 Interface Statistics Block: start and end time, isb_osdrop, isb_usrdeliv")
    func interfaceStatisticsBlock() {
        let block = PcapNG.interfaceStatistics(interface: 0, timestamp: 5, start: 3, end: 5, dropped: 9, delivered: 0x1_0000_0001)
        #expect(block == [
            5, 0, 0, 0, 76, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0,
            2, 0, 8, 0, 0, 0, 0, 0, 3, 0, 0, 0,
            3, 0, 8, 0, 0, 0, 0, 0, 5, 0, 0, 0,
            7, 0, 8, 0, 9, 0, 0, 0, 0, 0, 0, 0,
            8, 0, 8, 0, 1, 0, 0, 0, 1, 0, 0, 0,
            0, 0, 0, 0,
            76, 0, 0, 0,
        ])
    }

    // MARK: Read back by tshark

    static let vm1: [UInt8] = [0x52, 0x54, 0x00, 0xb8, 0x27, 0x75]
    static let vm2: [UInt8] = [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5]

    /// ARP who-has 10.1.1.30 from 10.1.1.20 (RFC 826).
    static let arp: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + vm1 + [0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1] + vm1
        + [10, 1, 1, 20] + [0, 0, 0, 0, 0, 0] + [10, 1, 1, 30]

    /// 10.1.1.20:5000 → 10.1.1.30:9000, UDP with checksum 0 (RFC 768: none), a valid IPv4 header checksum.
    static func udp(payload: Int) -> [UInt8] {
        var ip: [UInt8] = [0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 1, 1, 20, 10, 1, 1, 30]
        let total = 20 + 8 + payload
        ip[2] = UInt8(total >> 8)
        ip[3] = UInt8(total & 0xff)
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        let checksum = ~UInt16(sum)
        ip[10] = UInt8(checksum >> 8)
        ip[11] = UInt8(checksum & 0xff)
        let udp: [UInt8] = [0x13, 0x88, 0x23, 0x28, UInt8((8 + payload) >> 8), UInt8((8 + payload) & 0xff), 0, 0]
        return vm2 + vm1 + [0x08, 0x00] + ip + udp + [UInt8](repeating: 0x5a, count: payload)
    }

    @Test("a file of every block reads back in tshark: each frame decodes, ns timestamps, epb_flags directions, a cut frame keeps its length",
          .enabled(if: TestMachine.isCI || FileManager.default.isExecutableFile(atPath: tshark), "tshark is not installed"))
    func tsharkReadsItBack() throws {
        let path = NSTemporaryDirectory() + "vswift-pcapng-\(getpid()).pcapng"
        defer { unlink(path) }
        let base: UInt64 = 1_700_000_000_123_456_789
        let big = Self.udp(payload: 1400)
        var file = PcapNG.sectionHeader(application: "vswift tests") + PcapNG.interfaceDescription(name: "vnet0", description: "test port", snapLength: 128)
        file += PcapNG.enhancedPacket(interface: 0, timestamp: base, originalLength: UInt32(Self.arp.count), data: Self.arp, direction: .inbound)
        file += PcapNG.enhancedPacket(interface: 0, timestamp: base + 1, originalLength: 61, data: Self.udp(payload: 19), direction: .outbound)
        file += PcapNG.enhancedPacket(interface: 0, timestamp: base + 1_000_000_000, originalLength: UInt32(big.count), data: big.prefix(128), direction: .inbound)
        file += PcapNG.interfaceStatistics(interface: 0, timestamp: base + 2_000_000_000, start: base, end: base + 2_000_000_000, dropped: 4, delivered: 3)
        try Data(file).write(to: URL(fileURLWithPath: path))

        let fields = ["frame.number", "frame.time_epoch", "frame.len", "frame.cap_len", "frame.packet_flags_direction",
                      "eth.type", "arp.dst.proto_ipv4", "udp.dstport", "_ws.malformed", "frame.interface_name"]
        let out = try Self.run([Self.tshark, "-n", "-r", path, "-T", "fields", "-E", "separator=|"] + fields.flatMap { ["-e", $0] })
        let rows = out.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.count == 3, "\(out)")
        guard rows.count == 3, rows.allSatisfy({ $0.count == fields.count }) else { return }
        #expect(rows.map { $0[1] } == ["1700000000.123456789", "1700000000.123456790", "1700000001.123456789"])
        #expect(rows.map { $0[2] } == ["42", "61", "1442"])
        #expect(rows.map { $0[3] } == ["42", "61", "128"])
        #expect(rows.map { Self.direction($0[4]) } == [1, 2, 1], "\(rows.map { $0[4] })")
        #expect(rows.map { $0[5] } == ["0x0806", "0x0800", "0x0800"])
        #expect(rows[0][6] == "10.1.1.30" && rows[1][7] == "9000")
        #expect(rows.allSatisfy { $0[8].isEmpty }, "a frame did not decode: \(out)")
        #expect(rows.allSatisfy { $0[9] == "vnet0" })
    }

    /// tshark prints the direction bits as a number (decimal or 0x…), depending on its version.
    static func direction(_ text: String) -> Int? {
        text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
    }

    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
