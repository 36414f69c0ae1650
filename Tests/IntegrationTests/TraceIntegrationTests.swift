import Foundation
import Glibc
import Testing
import VSwiftProtocol
import VSwiftTesting

/// `vswiftctl trace` on the seed's two hosts (LISPHosts: namespaces named with a unique tag): the
/// rules a trace names are the rules a real ping bumps, the LISP stages say what the wire carries,
/// and tracing changes no counter.
struct TraceIntegrationTests {
    static func trace(_ daemon: Daemon, _ bridge: String, _ flow: String, frame: String? = nil) throws -> TraceReport {
        var params: [String: JSONValue] = ["bridge": .string(bridge), "flow": .string(flow)]
        if let frame { params["frame"] = .string(frame) }
        return try daemon.call("trace", .object(params)).get().decode(TraceReport.self)
    }

    /// The rule as dump-flows prints its match (`priority=N,MATCH`).
    static func dumpKey(_ rule: TraceReport.Rule?) -> String? {
        guard let rule else { return nil }
        return "priority=\(rule.priority)" + (rule.match.isEmpty ? "" : "," + rule.match)
    }

    static func echo(from: String, to: String, _ source: String, _ destination: String, type: Int) -> String {
        "in_port=1,dl_src=\(from),dl_dst=\(to),icmp,nw_src=\(source),nw_dst=\(destination),icmp_type=\(type)"
    }

    @Test("trace of the seed's flows on both hosts names the rules a real ping bumps, with the LISP stages, and changes nothing")
    func seedTraceMatchesPing() throws {
        let hosts = try LISPHosts(underlay: .bridge)
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")

        // VM1 → VM2 on host1, VM2 → VM1 on host2 (requests and replies).
        let out1 = try Self.trace(hosts.daemon1, "br2", Self.echo(from: LISPHosts.vm1MAC, to: LISPHosts.vm2MAC, "10.1.1.20", "10.1.1.30", type: 8))
        let out2 = try Self.trace(hosts.daemon2, "br2", Self.echo(from: LISPHosts.vm2MAC, to: LISPHosts.vm1MAC, "10.1.1.30", "10.1.1.20", type: 0))
        for (report, local, remote) in [(out1, "192.168.1.249", "192.168.1.252"), (out2, "192.168.1.252", "192.168.1.249")] {
            #expect(report.stages.count == 2, "\(report.text)")
            guard report.stages.count == 2 else { continue }
            let vm = report.stages[0], underlay = report.stages[1]
            #expect(Self.dumpKey(vm.rule) == "priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24", "\(report.text)")
            #expect(vm.handedOn == 1 && vm.events.contains("lisp0: encapsulated +1"), "\(report.text)")
            #expect(underlay.entry == "reentered" && underlay.bridge == "br1" && underlay.inPort == "br1" && underlay.depth == 1)
            #expect(underlay.lisp?.source == local && underlay.lisp?.destination == remote && underlay.lisp?.udpDestinationPort == 4341)
            #expect(underlay.lisp?.instanceID == 0 && underlay.lisp?.port == "lisp0")
            #expect(underlay.lookup == "hit" && underlay.rule?.actions == "NORMAL" && underlay.normal?.decision == "learned")
            #expect(underlay.outputs.count == 1 && report.outputs.count == 1, "\(report.text)")
        }
        // What host2 would put on the wire, fed to host1's underlay port (em1, port 1 of br1):
        // decapsulated into br2 by lisp0, then priority=3 rewrites the MAC and outputs to vnet0.
        let wireFrame = try #require(out2.stages.last?.outputs.first?.frame)
        let in1 = try Self.trace(hosts.daemon1, "br1", "in_port=1", frame: wireFrame)
        #expect(in1.stages.count == 2 && in1.stages.last?.entry == "decapsulated", "\(in1.text)")
        #expect(in1.stages.first?.lookup == "decapsulated" && in1.stages.first?.bridge == "br1", "\(in1.text)")
        let decapsulated = try #require(in1.stages.last)
        #expect(decapsulated.bridge == "br2" && decapsulated.inPort == "lisp0" && decapsulated.lisp?.source == "192.168.1.252")
        #expect(Self.dumpKey(decapsulated.rule) == "priority=3,dl_dst=02:00:00:00:00:00", "\(in1.text)")
        #expect(decapsulated.outputs.map(\.port) == ["vnet0"])
        #expect(decapsulated.outputs.first?.changes.contains(.init(field: "dl_dst", before: "02:00:00:00:00:00", after: "52:54:00:b8:27:75")) == true)
        let wireFrame1 = try #require(out1.stages.last?.outputs.first?.frame)
        let in2 = try Self.trace(hosts.daemon2, "br1", "in_port=1", frame: wireFrame1)
        #expect(Self.dumpKey(in2.stages.last?.rule) == "priority=3,dl_dst=02:00:00:00:00:00", "\(in2.text)")
        // ARP from the VM: priority=2, NORMAL floods it to LOCAL and lisp0, which refuses non-IP.
        let arp = try Self.trace(hosts.daemon1, "br2", "in_port=1,dl_src=\(LISPHosts.vm1MAC),dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_op=1,arp_spa=10.1.1.20,arp_tpa=10.1.1.30")
        #expect(Self.dumpKey(arp.stages.first?.rule) == "priority=2,arp,in_port=1", "\(arp.text)")
        #expect(arp.stages.first?.normal?.decision == "group" && arp.stages.first?.events.contains("lisp0: non_ip +1") == true, "\(arp.text)")
        // Anything else: priority=0, NORMAL.
        let other = try Self.trace(hosts.daemon1, "br2", "in_port=LOCAL,dl_dst=\(LISPHosts.vm1MAC),udp")
        #expect(Self.dumpKey(other.stages.first?.rule) == "priority=0", "\(other.text)")

        // Tracing changed no counter: flows and ports of both bridges as before.
        // (br2 only: the VMs are quiet, while the hosts' own stacks may use br1 at any time.)
        // vswift's port counters (not the kernel's socket statistics on the xsk line, which move
        // with the kernel's own polling).
        func portCounters() throws -> String {
            try hosts.daemon1.ctl("dump-ports", "br2").stdout.split(separator: "\n").filter { !$0.contains("xsk ") }.joined(separator: "\n")
        }
        let quiet = try flowPacketCounts(hosts.daemon1), quietPorts = try portCounters()
        for _ in 0..<5 { _ = try Self.trace(hosts.daemon1, "br2", Self.echo(from: LISPHosts.vm1MAC, to: LISPHosts.vm2MAC, "10.1.1.20", "10.1.1.30", type: 8)) }
        #expect(try flowPacketCounts(hosts.daemon1) == quiet)
        let portsAfter = try portCounters()
        #expect(portsAfter == quietPorts, "before:\n\(quietPorts)after:\n\(portsAfter)")

        // A real ping bumps exactly the br2 rules the traces name: on each host, priority=1 (to the
        // tunnel) and priority=3 (from it).
        let flows1 = try flowPacketCounts(hosts.daemon1), flows2 = try flowPacketCounts(hosts.daemon2)
        try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.1.30"])
        let after1 = try flowPacketCounts(hosts.daemon1), after2 = try flowPacketCounts(hosts.daemon2)
        for (before, after, traced) in [(flows1, after1, [Self.dumpKey(out1.stages[0].rule), Self.dumpKey(in1.stages.last?.rule)]),
                                        (flows2, after2, [Self.dumpKey(out2.stages[0].rule), Self.dumpKey(in2.stages.last?.rule)])] {
            let bumped = Set(after.keys.filter { (after[$0] ?? 0) >= (before[$0] ?? 0) + 3 })
            #expect(bumped == Set(traced.compactMap { $0 }), "bumped \(bumped), traced \(traced)")
        }

        // The command line: text, --json, --hex and --pcap.
        let text = try hosts.daemon1.ctl("trace", "br2", Self.echo(from: LISPHosts.vm1MAC, to: LISPHosts.vm2MAC, "10.1.1.20", "10.1.1.30", type: 8)).stdout
        #expect(text.contains("Rule: table=0, priority=1, cookie=0x0\n"), "\(text)")
        #expect(text.contains("Encapsulated by lisp0: re-enters on br1"), "\(text)")
        #expect(text.hasSuffix("Final: output to em1 (1)\n"), "\(text)")
        let json = try hosts.daemon1.ctl("trace", "br1", "in_port=1", "--hex", wireFrame, "--json").stdout
        #expect(try JSONValue.parse(Array(json.utf8)).map { try $0.decode(TraceReport.self) }?.stages.count == 2, "\(json)")
        let bytes = try #require(TraceFrameHex.bytes(wireFrame))
        var pcap: [UInt8] = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0] + [UInt8](repeating: 0, count: 8) + [0xff, 0xff, 0, 0, 1, 0, 0, 0]
        let length = withUnsafeBytes(of: UInt32(bytes.count).littleEndian, Array.init)
        pcap += [UInt8](repeating: 0, count: 8) + length + length + bytes
        let file = "/tmp/t18a-\(uniqueTag()).pcap"
        _ = FileManager.default.createFile(atPath: file, contents: Data(pcap))
        defer { unlink(file) }
        let fromPcap = try hosts.daemon1.ctl("trace", "br1", "in_port=1", "--pcap", file).stdout
        #expect(fromPcap.contains("Decapsulated by lisp0: enters on lisp0") && fromPcap.hasSuffix("Final: output to vnet0 (1)\n"), "\(fromPcap)")
        // Hostile input: a frame longer than a UMEM frame is cut (and said so), one of 70,000 bytes
        // refused, and neither changes a counter.
        let long = try Self.trace(hosts.daemon1, "br2", "in_port=1", frame: String(repeating: "ab", count: 5000))
        #expect(long.stages.first?.events.first?.hasPrefix("input: cut to") == true, "\(long.text)")
        let huge = try hosts.daemon1.call("trace", .object(["bridge": "br2", "flow": "in_port=1", "frame": .string(String(repeating: "ab", count: 70_000))]))
        guard case .failure(let hugeError) = huge else { Issue.record("a 70,000-byte frame was traced"); return }
        #expect(hugeError.message.contains("65535"), "\(hugeError.message)")
        #expect(try flowPacketCounts(hosts.daemon1) == after1)
        let refused = try hosts.daemon1.ctl("trace", "br2", "dl_dst=00:00:00:00:00:01", check: false)
        #expect(refused.status != 0 && refused.stderr.contains("in_port"), "\(refused.stderr)")
    }
}

/// Hex to bytes for the test (the frames the reports carry).
enum TraceFrameHex {
    static func bytes(_ hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16) ?? 0 }
    }
}
