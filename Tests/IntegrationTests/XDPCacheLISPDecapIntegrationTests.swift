import Foundation
import Glibc
import Testing
import VSwiftProtocol
import VSwiftTesting

/// LISP decapsulation by the XDP flow cache between two sites (LISPHosts with underlay devices,
/// static `remote_ip`, both daemons with `--xdp-cache on`): traffic from the remote site is
/// decapsulated by host2's underlay program and forwarded in XDP (dump-xdp-cache shows the entry
/// with in_port = the LISP port and packets; the rule, `lisp decap=` and the port's rx count them);
/// LISP from a stranger RLOC is still refused by the workers (counted, never delivered); a LISP
/// port deleted or re-added with another remote_ip takes its decap entry with it before the call
/// returns. DESIGN.md, "XDP flow cache", *LISP decapsulation in XDP*. Test name prefix h17j.
extension Integration {
@Suite("XDP flow cache: LISP decapsulation in XDP")
struct XDPCacheLISPDecapIntegrationTests {
    static let rlocs = ("192.168.117.1", "192.168.117.2")
    static let stranger: UInt32 = 0xc0a8_7509  // 192.168.117.9
    static let echoIdentifier: UInt16 = 0x117a

    /// An ICMP echo request from VM1 to VM2 with our identifier, as an IPv4 packet.
    static var innerPacket: [UInt8] {
        Build.ipv4(src: 0x0a01_0114, dst: 0x0a01_011e, proto: 1,
                   Build.icmp(type: 8, code: 0, Ref.be16(echoIdentifier) + Ref.be16(1) + Array("h17j decap".utf8)))
    }

    /// `innerPacket` in LISP (I bit, instance id 0, UDP checksum 0) from `source` to host2's RLOC,
    /// addressed to host2's ul0: what a stranger on the underlay could send.
    static func lispFrame(from source: UInt32, to mac: [UInt8]) -> [UInt8] {
        let lisp: [UInt8] = [0x08, 0, 0, 0, 0, 0, 0, 0]
        let destination = mac.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Build.ethernet(dst: destination, src: 0x0200_0000_0117, type: 0x0800,
                              Build.ipv4(src: source, dst: 0xc0a8_7502, proto: 17, Build.udp(src: 40000, dst: 4341, lisp + innerPacket)))
    }

    /// Our echo requests arriving at VM2 (eth5) within `timeout` seconds.
    static func delivered(_ socket: PacketSocket, timeout: Double) -> Int {
        socket.receive(timeout: timeout) { f in
            f.count >= 42 && Ref.u16(f, 12) == 0x0800 && f[23] == 1 && f[34] == 8 && Ref.u16(f, 38) == echoIdentifier
        }.count
    }

    static func rxPackets(_ daemon: Daemon, port: String) throws -> UInt64 {
        let text = try daemon.ctl("dump-ports", "br2", port).stdout
        guard let range = text.range(of: "rx pkts=") else { return 0 }
        return UInt64(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    /// ul0's XDP path counters (its program's decap stage), as dump-xdp-cache reports them.
    static func underlayPath(_ daemon: Daemon) throws -> XDPPathReport {
        let report: XDPCacheReport = try daemon.call("dump-xdp-cache").get().decode()
        return try #require(report.ports.first { $0.name == "ul0" }, "ul0 is not in \(report.ports)").path
    }

    @Test("h17j: the remote site's traffic is decapsulated in XDP, counted on the rule and the LISP port; a stranger RLOC is refused; removing the port removes the decap entry")
    func decapsulationInXDP() throws {
        let hosts = try LISPHosts(underlay: .device, rlocs: Self.rlocs, daemonArguments: ["--xdp-cache", "on"])
        defer { hosts.destroy() }
        // XDP_REDIRECT into a veth reaches its peer only when the peer runs NAPI: GRO on every far end.
        for w in ["w1", "w2"] { try run(["ip", "netns", "exec", hosts.wire, "ethtool", "-K", w, "gro", "on"]) }
        try run(["ip", "netns", "exec", hosts.vm1, "ethtool", "-K", "eth3", "gro", "on"])
        try run(["ip", "netns", "exec", hosts.vm2, "ethtool", "-K", "eth5", "gro", "on"])
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        usleep(1_500_000)  // the path's XDP decap counts folded into lisp0's, as below
        let before = try lispCounters(hosts.daemon2)
        let pathBefore = try Self.underlayPath(hosts.daemon2)
        let rxBefore = try Self.rxPackets(hosts.daemon2, port: "2")

        // 1. Pings from VM1: host2 decapsulates them; after the first, in XDP.
        let count = 60
        let ping = try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "\(count)", "-i", "0.02", "-W", "1", "10.1.1.30"],
                           check: false)
        let received = ping.stdout.split(separator: "\n").first { $0.contains("received") }.flatMap {
            $0.split(separator: ",").dropFirst().first.flatMap { Int($0.split(separator: " ").first ?? "") }
        } ?? 0
        #expect(received >= count - 2, "ping: \(ping.stdout)")
        usleep(2_500_000)  // the installer folds the XDP counters once a second
        let report: XDPCacheReport = try hosts.daemon2.call("dump-xdp-cache").get().decode()
        // lisp0 is br2's port 2: its decapsulated frames are looked up with in_port(2).
        let entry = report.flows.first { $0.bridge == "br2" && $0.match.hasPrefix("in_port(2)") }
        #expect(entry != nil, "no entry with in_port = the LISP port: \(report.flows.map(\.match)) refused \(report.refused)")
        #expect((entry?.packets ?? 0) >= UInt64(count / 2), "the decapsulated flow's entry counted \(entry?.packets ?? 0) of \(count)")
        // The underlay device's program is in the path counts: its decap stage's hits.
        let underlayHits = report.ports.filter { $0.name == "ul0" }.map(\.path.hits).reduce(0, +)
        #expect(underlayHits >= UInt64(count / 2), "ul0's XDP hits \(underlayHits): \(report.ports)")
        let after = try lispCounters(hosts.daemon2)
        let decapsulated = (after["decap"] ?? 0) - (before["decap"] ?? 0)
        #expect(decapsulated >= UInt64(received), "lisp decap= \(before) → \(after)")
        // ul0's decap stage sees only UDP to host2's RLOC and LISP port (is_underlay_frame), here
        // only host1's LISP: each frame decapsulated once, in XDP (a hit, counted on lisp0's
        // decap entry and folded into its decap=) or by the workers (a miss or a punt).
        let path = try Self.underlayPath(hosts.daemon2)
        let hits = path.hits &- pathBefore.hits
        let handedOver = (path.misses &+ path.punted) &- (pathBefore.misses &+ pathBefore.punted)
        #expect(hits + handedOver == decapsulated && path.failed == pathBefore.failed,
                "ul0 \(pathBefore) → \(path), lisp decap= \(before) → \(after)")
        #expect(hits >= UInt64(count / 2), "in XDP after the first: \(hits) of \(decapsulated)")
        #expect(try Self.rxPackets(hosts.daemon2, port: "2") - rxBefore >= UInt64(received), "the LISP port's rx")
        let flows = try flowPacketCounts(hosts.daemon2)
        let rule = flows.first { $0.key.contains("dl_dst=02:00:00:00:00:00") }?.value ?? 0
        #expect(rule >= UInt64(count), "the decapsulated frames' rule n_packets \(rule)")

        // 2. A stranger on the underlay sends LISP to host2's RLOC: refused (unknown_rloc), never delivered.
        let mac = try macAddress(namespace: hosts.host2, interface: "ul0")
        let vm2 = try PacketSocket(namespace: hosts.vm2, interface: "eth5")
        let wire = try PacketSocket(namespace: hosts.wire, interface: "w2")
        let strangerBefore = try lispCounters(hosts.daemon2)
        let forged = Self.lispFrame(from: Self.stranger, to: mac)
        for _ in 0..<20 {
            wire.send(forged)
            usleep(5_000)
        }
        #expect(Self.delivered(vm2, timeout: 1) == 0, "a stranger's packet reached VM2")
        let strangerAfter = try lispCounters(hosts.daemon2)
        #expect((strangerAfter["unknown_rloc"] ?? 0) - (strangerBefore["unknown_rloc"] ?? 0) == 20, "\(strangerBefore) → \(strangerAfter)")
        #expect(strangerAfter["decap"] == strangerBefore["decap"])

        // 3. The same bytes from host1's RLOC are delivered (decapsulated) — the forged frame is valid LISP.
        let legitimate = Self.lispFrame(from: 0xc0a8_7501, to: mac)
        for _ in 0..<5 { wire.send(legitimate); usleep(5_000) }
        #expect(Self.delivered(vm2, timeout: 1) == 5, "host1's RLOC is heard")

        // 4. lisp0 re-added with another remote_ip: from the moment the calls return, nothing from
        // host1 is decapsulated (by XDP or the workers) and nothing reaches VM2.
        try hosts.daemon2.ctl("del-port", "br2", "lisp0")
        for _ in 0..<5 { wire.send(legitimate); usleep(5_000) }
        #expect(Self.delivered(vm2, timeout: 1) == 0, "delivered after del-port returned")
        try hosts.daemon2.ctl("add-port", "br2", "lisp0", "--", "set", "Interface", "lisp0", "type=lisp",
                              "options:remote_ip=192.168.117.77")
        let readded = try lispCounters(hosts.daemon2, port: "lisp0")
        for _ in 0..<10 { wire.send(legitimate); usleep(5_000) }
        #expect(Self.delivered(vm2, timeout: 1) == 0, "delivered from the old remote after add-port returned")
        let last = try lispCounters(hosts.daemon2, port: "lisp0")
        #expect(last["decap"] == readded["decap"], "decapsulated from the old remote: \(readded) → \(last)")
        #expect((last["unknown_rloc"] ?? 0) - (readded["unknown_rloc"] ?? 0) == 10, "refused by the workers: \(readded) → \(last)")
        let remaining: XDPCacheReport = try hosts.daemon2.call("dump-xdp-cache").get().decode()
        #expect(!remaining.flows.contains { $0.bridge == "br2" && $0.match.hasPrefix("in_port(2)") && $0.packets > 0 },
                "\(remaining.flows.map(\.match))")
    }
}
}
