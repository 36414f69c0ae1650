import Testing
import VSwiftProtocol

/// The trace report as vswiftctl prints it, its JSON, and the capture files `trace --pcap` reads.
@Suite struct TraceReportTests {
    static let report = TraceReport(
        bridge: "br2",
        stages: [
            .init(entry: "received", lispPort: nil, bridge: "br2", inPort: "vnet0", inPortNumber: 1, depth: 0,
                  flow: "icmp,in_port=1,dl_src=52:54:00:b8:27:75,dl_dst=52:54:00:1b:ea:d5,nw_src=10.1.1.1,nw_dst=10.1.1.2",
                  lookup: "hit",
                  rule: .init(priority: 1, cookie: "0x0", match: "ip,in_port=1,nw_src=10.1.1.0/24", actions: "output:2"),
                  normal: nil, lisp: nil,
                  outputs: [.init(port: "br1", ofport: 65534, bridge: "br1", bytes: 134, changes: [],
                                  lisp: .init(port: "lisp0", source: "192.168.1.1", destination: "192.168.1.252",
                                              udpSourcePort: 51234, udpDestinationPort: 4341, instanceID: 0,
                                              nextHopMAC: "52:54:00:aa:00:02", sourceMAC: "52:54:00:aa:00:01", egress: "br1"),
                                  frame: "00")],
                  handedOn: 1, events: ["lisp0: encapsulated +1"], result: "handed on 1 packet (next stage)"),
            .init(entry: "reentered", lispPort: "lisp0", bridge: "br1", inPort: "br1", inPortNumber: 65534, depth: 1,
                  flow: "udp,in_port=LOCAL", lookup: "hit",
                  rule: .init(priority: 0, cookie: "0x0", match: "", actions: "NORMAL"),
                  normal: .init(destination: "52:54:00:aa:00:02", decision: "learned", port: "em1", floodPorts: []),
                  lisp: nil, outputs: [], handedOn: 0, events: [], result: "output to em1"),
        ],
        outputs: ["em1 (1)"], dropReason: nil)

    @Test func textNamesEachStageRuleDecisionAndOutput() {
        let text = Self.report.text
        #expect(text.contains("bridge(\"br2\")\n-------------\nReceived on vnet0 (port 1)\n"))
        #expect(text.contains("Rule: table=0, priority=1, cookie=0x0\n      ip,in_port=1,nw_src=10.1.1.0/24\n      actions=output:2\n"))
        #expect(text.contains("LISP by lisp0: 192.168.1.1 -> 192.168.1.252, UDP 51234 -> 4341, instance id 0"))
        #expect(text.contains("Encapsulated by lisp0: re-enters on br1 (depth 1)"))
        #expect(text.contains("NORMAL: 52:54:00:aa:00:02 learned on em1: sent there"))
        #expect(text.contains("Counter: lisp0: encapsulated +1"))
        #expect(text.hasSuffix("Final: output to em1 (1)\n"))
        var dropped = Self.report
        dropped.outputs = []
        dropped.dropReason = "no flow matches (table miss)"
        #expect(dropped.text.hasSuffix("Final: dropped (no flow matches (table miss))\n"))
    }

    @Test func jsonRoundTrips() throws {
        let value = try JSONValue(encoding: Self.report)
        #expect(try value.decode(TraceReport.self) == Self.report)
        guard case .object(let members) = value, case .array(let stages)? = members["stages"],
              case .object(let first)? = stages.first else { Issue.record("not an object"); return }
        #expect(first["lookup"] == .string("hit") && first["entry"] == .string("received"))
    }

    static func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
    static func be32(_ v: UInt32) -> [UInt8] { le32(v).reversed() }

    @Test func pcapFramesReadsBothByteOrdersAndPcapng() throws {
        let a: [UInt8] = Array(1...20), b: [UInt8] = Array(21...60)
        func classic(_ u32: (UInt32) -> [UInt8], magic: UInt32) -> [UInt8] {
            var f = u32(magic) + [0, 0, 0, 0] + u32(0) + u32(0) + u32(65535) + u32(1)
            f[4...7] = u32(0x0004_0002)[0...3]
            for frame in [a, b] { f += u32(0) + u32(0) + u32(UInt32(frame.count)) + u32(UInt32(frame.count)) + frame }
            return f
        }
        #expect(try PcapFrames.frames(classic(Self.le32, magic: 0xa1b2_c3d4)) == [a, b])
        #expect(try PcapFrames.frames(classic(Self.be32, magic: 0xa1b2_c3d4)) == [a, b])
        #expect(try PcapFrames.frames(classic(Self.le32, magic: 0xa1b2_3c4d), limit: 1) == [a])
        // pcapng: section header, interface (Ethernet), two enhanced packet blocks.
        var ng = Self.le32(0x0a0d_0d0a) + Self.le32(28) + Self.le32(0x1a2b_3c4d) + [1, 0, 0, 0] + [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] + Self.le32(28)
        ng += Self.le32(1) + Self.le32(20) + [1, 0, 0, 0] + Self.le32(0) + Self.le32(20)
        for frame in [a, b] {
            let padded = frame + [UInt8](repeating: 0, count: (4 - frame.count % 4) % 4)
            let length = UInt32(32 + padded.count)
            ng += Self.le32(6) + Self.le32(length) + Self.le32(0) + Self.le32(0) + Self.le32(0)
            ng += Self.le32(UInt32(frame.count)) + Self.le32(UInt32(frame.count)) + padded + Self.le32(length)
        }
        #expect(try PcapFrames.frames(ng) == [a, b])
    }

    @Test func hostileCaptureFilesAreRefusedNotCrashedOn() {
        #expect(throws: PcapFrames.FormatError.self) { try PcapFrames.frames([1, 2]) }
        #expect(throws: PcapFrames.FormatError.self) { try PcapFrames.frames([UInt8](repeating: 0x42, count: 64)) }
        var lying = Self.le32(0xa1b2_c3d4) + [2, 0, 4, 0] + Self.le32(0) + Self.le32(0) + Self.le32(65535) + Self.le32(1)
        lying += Self.le32(0) + Self.le32(0) + Self.le32(0xffff_fff0) + Self.le32(10) + [1, 2, 3]
        #expect(throws: PcapFrames.FormatError.self) { try PcapFrames.frames(lying) }
        let badBlock = Self.le32(0x0a0d_0d0a) + Self.le32(0xffff_fffc) + Self.le32(0x1a2b_3c4d) + [UInt8](repeating: 0, count: 20)
        #expect(throws: PcapFrames.FormatError.self) { try PcapFrames.frames(badBlock) }
        var notEthernet = Self.le32(0xa1b2_c3d4) + [2, 0, 4, 0] + Self.le32(0) + Self.le32(0) + Self.le32(65535) + Self.le32(101)
        notEthernet += Self.le32(0) + Self.le32(0) + Self.le32(1) + Self.le32(1) + [1]
        #expect(throws: PcapFrames.FormatError.self) { try PcapFrames.frames(notEthernet) }
    }
}
