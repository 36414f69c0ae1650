import Foundation
import Glibc
import Testing
import VSwiftProtocol
import VSwiftTesting

/// LISP encapsulation by the XDP flow cache between two sites (the seed's topology, LISPHosts,
/// with underlay devices: `add-underlay ul0`, static `remote_ip`): with `--xdp-cache on` an
/// established flow to the LISP port is encapsulated in XDP and redirected out of the underlay
/// device; `dump-xdp-cache` shows the entry with packets, the rule and the LISP port count them,
/// and the frames on the wire are byte for byte what the workers send with the cache off (RFC 9300
/// §5.3; over IPv4 the outer identification, and so the header checksum, is a per-sender counter,
/// compared apart). Test name prefix x17g.
extension Integration {
@Suite("XDP flow cache: LISP encapsulation in XDP")
struct XDPCacheLISPIntegrationTests {
    static let echoIdentifier: UInt16 = 0x1717

    /// One fixed ICMP echo request VM1 sends to VM2 (every copy the same bytes, so every
    /// encapsulation is too). ICMP like the pings that opened the path (another shape would get
    /// an XDP entry of its own: with the cache on the workers' exact-match cache keys on the
    /// megaflow shape, XDPFlowCacheShapeTests).
    static var innerFrame: [UInt8] {
        let icmp = Build.icmp(type: 8, code: 0, Ref.be16(echoIdentifier) + Ref.be16(1) + Array("x17g lisp encap".utf8))
        return Build.ethernet(dst: 0x5254_001b_ead5, src: 0x5254_00b8_2775, type: 0x0800,
                              Build.ipv4(src: 0x0a01_0114, dst: 0x0a01_011e, proto: 1, icmp))
    }

    /// tcpdump writing a pcap file; `stop` returns the captured frames' bytes.
    final class Capture {
        let process = Process()
        let file: String

        init(namespace: String, interface: String, filter: String) throws {
            file = "/tmp/x17g-\(interface)-\(uniqueTag()).pcap"
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["ip", "netns", "exec", namespace, "tcpdump", "--immediate-mode", "-U", "-n", "-i", interface,
                                 "-w", file] + filter.split(separator: " ").map(String.init)
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Capturing once tcpdump has written the pcap header (on a loaded host that can take
            // longer than a fixed wait), then a moment for the filter.
            for _ in 0..<100 {
                if let size = try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int, size >= 24 { break }
                usleep(50_000)
            }
            usleep(300_000)
        }

        func stop() throws -> [[UInt8]] {
            usleep(300_000)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            defer { unlink(file) }
            // pcap: a 24-byte file header, then per frame a 16-byte header (incl_len at 8) and the bytes.
            let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            var frames: [[UInt8]] = []
            var at = 24
            while at + 16 <= data.count {
                let length = Int(data[at + 8]) | Int(data[at + 9]) << 8 | Int(data[at + 10]) << 16 | Int(data[at + 11]) << 24
                guard at + 16 + length <= data.count else { break }
                frames.append(Array(data[(at + 16)..<(at + 16 + length)]))
                at += 16 + length
            }
            return frames
        }
    }

    struct Run {
        var frames: [[UInt8]]
        var report: XDPCacheReport
        var rulePackets: UInt64
        var workerReceived: UInt64
        var encapsulated: UInt64
        /// The outer Ethernet header host1 should write: host2's ul0 MAC, then host1's.
        var macs: [UInt8]
    }

    /// Sends `count` copies of `innerFrame` from VM1 with host1's vswiftd running the cache on or
    /// off and returns what the wire carried from host1 (the encapsulated copies) and the counters.
    func send(count: Int, cache: Bool, rlocs: (String, String)) throws -> Run {
        let hosts = try LISPHosts(underlay: .device, rlocs: rlocs, daemonArguments: ["--xdp-cache", cache ? "on" : "off"])
        defer { hosts.destroy() }
        // XDP_REDIRECT into a veth reaches its peer only when the peer runs NAPI: GRO on the wire's ends.
        for w in ["w1", "w2"] { try run(["ip", "netns", "exec", hosts.wire, "ethtool", "-K", w, "gro", "on"]) }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        let capture = try Capture(namespace: hosts.wire, interface: "w1", filter: "udp port 4341")
        let vm1 = try PacketSocket(namespace: hosts.vm1, interface: "eth3")
        for _ in 0..<count {
            vm1.send(Self.innerFrame)
            usleep(5_000)
        }
        let captured = try capture.stop()
        // Only our copies (echo requests with our identifier, at a fixed offset behind the outer headers).
        let outer = rlocs.0.contains(":") ? 70 : 50
        let frames = captured.filter { f in
            f.count >= outer + 26 && f[outer + 9] == 1 && f[outer + 20] == 8 && Ref.u16(f, outer + 24) == Self.echoIdentifier
        }
        usleep(2_500_000)  // the installer folds the XDP counters once a second
        let report: XDPCacheReport = try hosts.daemon1.call("dump-xdp-cache").get().decode()
        let flows = try flowPacketCounts(hosts.daemon1)
        let rule = flows.first { $0.key == "priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24" }?.value
            ?? flows.first { $0.key.contains("nw_src=10.1.1.0/24") }?.value ?? 0
        let workersJSON = try hosts.daemon1.ctl("--format", "json", "dump-workers").stdout
        let workers = try JSONValue.parse(Array(workersJSON.utf8))?.decode([WorkerReport].self) ?? []
        let encapsulated = try lispCounters(hosts.daemon1)["encap"] ?? 0
        let macs = try macAddress(namespace: hosts.host2, interface: "ul0") + macAddress(namespace: hosts.host1, interface: "ul0")
        return Run(frames: frames, report: report, rulePackets: rule, workerReceived: workers.reduce(0) { $0 + $1.rxPackets },
                   encapsulated: encapsulated, macs: macs)
    }

    /// The frame after its MACs (each run has its own veth addresses, checked apart), with the
    /// outer IPv4 identification and header checksum zeroed (the checksum checked first), or as
    /// it is over IPv6.
    static func normalized(_ frame: [UInt8], ipv6: Bool) -> [UInt8]? {
        guard frame.count >= 34 else { return nil }
        var f = frame
        if !ipv6 {
            guard Ref.checksum(Array(frame[14..<34])) == 0 else { return nil }
            for i in [18, 19, 24, 25] { f[i] = 0 }
        }
        return Array(f[12...])
    }

    @Test("x17g: a static LISP port's flow is encapsulated in XDP, counted on the rule and the port, and the wire carries the workers' bytes",
          arguments: [("192.168.17.1", "192.168.17.2"), ("fd17::1", "fd17::2")])
    func encapsulationInXDPMatchesTheWorkers(rlocs: (String, String)) throws {
        let ipv6 = rlocs.0.contains(":")
        let count = 60
        let on = try send(count: count, cache: true, rlocs: rlocs)
        // Every copy crossed the wire, most of them encapsulated in XDP: vnet0's program hit an
        // entry (the pings' ICMP megaflow, installed within ~1 ms of their first miss).
        #expect(on.frames.count == count, "\(on.frames.count) of \(count) copies on the wire")
        let entry = on.report.flows.first { $0.bridge == "br2" && $0.actions.contains("output:2") }
        #expect(entry != nil && (entry?.packets ?? 0) > 0, "no LISP entry with packets: \(on.report.flows)")
        #expect(on.rulePackets >= UInt64(count), "rule n_packets \(on.rulePackets)")
        #expect(on.encapsulated >= UInt64(count), "lisp encap=\(on.encapsulated)")
        let hits = on.report.ports.first { $0.name == "vnet0" }?.path.hits ?? 0
        #expect(hits >= UInt64(count / 2), "vnet0's XDP program hit \(hits) times for \(count) copies: \(on.report.ports)")
        #expect((entry?.packets ?? 0) >= UInt64(count / 2), "the entry counted \(entry?.packets ?? 0)")

        let off = try send(count: count, cache: false, rlocs: rlocs)
        #expect(off.frames.count == count)
        #expect(off.report.enabled == false)
        let reference = try #require(off.frames.first.flatMap { Self.normalized($0, ipv6: ipv6) }, "no valid frame with the cache off")
        for (i, frame) in on.frames.enumerated() {
            #expect(Self.normalized(frame, ipv6: ipv6) == reference, "copy \(i) differs from the workers' encapsulation")
        }
        for frame in off.frames { #expect(Self.normalized(frame, ipv6: ipv6) == reference) }
        for run in [on, off] {
            #expect(run.frames.allSatisfy { Array($0.prefix(12)) == run.macs }, "outer MACs: the next hop's, then the device's")
        }
    }
}
}
