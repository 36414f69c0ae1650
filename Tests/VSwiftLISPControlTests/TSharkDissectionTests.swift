import Foundation
import Testing
import VSwiftLISPControl
import VSwiftPacket
import VSwiftTesting

/// An independent reader of the wire format: Wireshark's LISP dissector (tshark, installed by
/// scripts/setup.sh) reads every vector as the message it is meant to be, with nothing malformed
/// and the ECMs' inner IPv4/UDP checksums correct.
@Suite("LISP control messages: tshark reads the vectors")
struct TSharkDissectionTests {
    /// The vectors and the summary line tshark gives each (Map-Notify-Ack, type 5, is newer than
    /// Debian 12's Wireshark 4.0 and left out).
    static let expected: [([UInt8], String)] = [
        (Vectors.mapRequestSMRInvoked, "Map-Request (SMR-invoked) for 10.2.0.0/24"),
        (Vectors.mapRequestProbe, "Map-Request (RLOC-probe) for [1000] 2001:db8:2::/64"),
        (Vectors.mapReply, "Map-Reply for [1000] 10.2.0.0/24"),
        (Vectors.negativeMapReply(act: 3), "Map-Reply for 10.3.0.0/16"),
        (Vectors.mapRegister, "Map-Register for [1000] 10.1.0.0/16"),
        (Vectors.mapNotify, "Map-Notify for [1000] 10.1.0.0/16"),
        (Vectors.ecmIPv4, "Encapsulated Map-Request (SMR-invoked) for 10.2.0.0/24"),
        (Vectors.ecmIPv6, "Encapsulated Map-Request (SMR-invoked) for 10.2.0.0/24"),
    ]

    @Test func wiresharkDissectsEveryVector() throws {
        guard TestMachine.tool("tshark") != nil else {
            if TestMachine.isCI { Issue.record("tshark is not installed") }
            return
        }
        let directory = try makeTemporaryDirectory("vswift-h16a-tshark")
        defer { _ = try? run(["rm", "-rf", directory]) }
        let file = directory + "/control.pcap"
        #expect(FileManager.default.createFile(atPath: file, contents: Data(Self.pcap(Self.expected.map(\.0)))))
        let checks = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
        let summary = try run(["tshark", "-n", "-r", file] + checks).stdout
        let lines = summary.split(separator: "\n").filter { $0.contains("LISP") }
        #expect(lines.count == Self.expected.count, "\(summary)")
        for (line, (_, text)) in zip(lines, Self.expected) {
            #expect(line.hasSuffix(text), "\(line)")
        }
        let detail = try run(["tshark", "-n", "-V", "-r", file] + checks).stdout
        #expect(!detail.contains("Malformed"), "\(detail)")
        #expect(!detail.contains("[incorrect"), "\(detail)")
        // Checked and good: the 8 outer IPv4 headers and the ECM's inner one; the inner UDP checksums
        // of both ECMs (the outer UDP checksums are 0, "none").
        func count(_ text: String) -> Int { detail.components(separatedBy: text).count - 1 }
        #expect(count("[Header checksum status: Good]") == 9, "\(detail)")
        #expect(count("[Checksum Status: Good]") == 2, "\(detail)")
    }

    /// A pcap file (LINKTYPE_RAW: IPv4 packets) with each payload in UDP 4342 -> 4342 from
    /// 192.0.2.1 to 192.0.2.9.
    static func pcap(_ payloads: [[UInt8]]) -> [UInt8] {
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func be16(_ v: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
        var out = le32(0xa1b2_c3d4) + [2, 0, 4, 0] + le32(0) + le32(0) + le32(65_535) + le32(101)
        for payload in payloads {
            var ip: [UInt8] = [0x45, 0] + be16(28 + payload.count) + [0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 9]
            let sum = ip.withUnsafeBytes { Checksum.checksum($0.baseAddress!, length: 20) }
            ip[10] = UInt8(sum >> 8)
            ip[11] = UInt8(sum & 0xff)
            let packet = ip + be16(4342) + be16(4342) + be16(8 + payload.count) + [0, 0] + payload
            out += le32(1) + le32(0) + le32(UInt32(packet.count)) + le32(UInt32(packet.count)) + packet
        }
        return out
    }
}
