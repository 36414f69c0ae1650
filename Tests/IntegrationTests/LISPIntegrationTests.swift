import Foundation
import Glibc
import Testing
import CXDP
import VSwiftControl
import VSwiftProtocol
import VSwiftTesting

/// Two hosts joined by an underlay, each running its own vswiftd with a LISP port in br2 and a VM on
/// vnet0: the seed's scenario. The underlay wire runs through a plain Linux bridge in a "wire"
/// namespace, where captures see exactly what the hosts put on the wire (on the hosts' own devices
/// XDP and AF_XDP bypass the packet taps).
struct LISPHosts {
    enum Underlay {
        /// The seed: the wire is a port of bridge br1, whose internal port has the host's address.
        case bridge
        /// vswiftctl add-underlay: the host keeps the device and its address; only LISP goes to vswift.
        case device
    }

    static let vm1MAC = "52:54:00:b8:27:75"
    static let vm2MAC = "52:54:00:1b:ea:d5"

    let topology = Topology()
    let host1: String, host2: String, vm1: String, vm2: String, wire: String
    var daemon1: Daemon, daemon2: Daemon
    let rloc1: String, rloc2: String

    /// `rlocs`: the hosts' underlay addresses (IPv4 or IPv6). `lispOptions` go to both lisp0 ports.
    /// `lispOptions` apply to both lisp0 ports, `hostOptions` to each one's own (then remote_ip is
    /// not added unless given there).
    init(underlay: Underlay, rlocs: (String, String) = ("192.168.1.249", "192.168.1.252"),
         lispOptions: [String] = [], hostOptions: ([String], [String])? = nil, flows: (String, String)? = nil,
         daemonArguments: [String] = []) throws {
        host1 = try topology.namespace("host1")
        host2 = try topology.namespace("host2")
        vm1 = try topology.namespace("vm1")
        vm2 = try topology.namespace("vm2")
        wire = try topology.namespace("wire")
        (rloc1, rloc2) = rlocs
        let uplink1 = underlay == .bridge ? "em1" : "ul0"
        let uplink2 = underlay == .bridge ? "eth0" : "ul0"
        try topology.veth("w1", in: wire, uplink1, in: host1)
        try topology.veth("w2", in: wire, uplink2, in: host2)
        try run(["ip", "-n", wire, "link", "add", "br0", "type", "bridge"])
        for w in ["w1", "w2"] { try run(["ip", "-n", wire, "link", "set", w, "master", "br0"]) }
        try run(["ip", "-n", wire, "link", "set", "br0", "up"])
        try topology.veth("eth3", in: vm1, "vnet0", in: host1)
        try topology.veth("eth5", in: vm2, "vnet0", in: host2)
        try run(["ip", "-n", vm1, "link", "set", "eth3", "address", Self.vm1MAC])
        try run(["ip", "-n", vm2, "link", "set", "eth5", "address", Self.vm2MAC])
        try run(["ip", "-n", vm1, "addr", "add", "10.1.1.20/24", "dev", "eth3"])
        try run(["ip", "-n", vm2, "addr", "add", "10.1.1.30/24", "dev", "eth5"])
        try run(["ip", "-n", vm1, "neigh", "replace", "10.1.1.30", "lladdr", Self.vm2MAC, "dev", "eth3", "nud", "permanent"])
        try run(["ip", "-n", vm2, "neigh", "replace", "10.1.1.20", "lladdr", Self.vm1MAC, "dev", "eth5", "nud", "permanent"])
        let ipv6 = rlocs.0.contains(":")
        if ipv6 { for ns in [host1, host2] { try Self.enableIPv6(ns) } }

        daemon1 = try Daemon(namespace: host1, extraArguments: daemonArguments)
        daemon2 = try Daemon(namespace: host2, extraArguments: daemonArguments)
        let seedFlows = flows ?? (Self.seedFlows(vmMAC: "52:54:00:B8:27:75"), Self.seedFlows(vmMAC: "52:54:00:1B:EA:D5"))
        for (daemon, ns, uplink, local, remote, flowText, own) in [
            (daemon1, host1, uplink1, rlocs.0, rlocs.1, seedFlows.0, hostOptions?.0),
            (daemon2, host2, uplink2, rlocs.1, rlocs.0, seedFlows.1, hostOptions?.1),
        ] {
            let prefix = ipv6 ? "/64" : "/24"
            let extra = ipv6 ? ["nodad"] : []
            switch underlay {
            case .bridge:
                try daemon.ctl("add-br", "br1")
                try daemon.ctl("add-port", "br1", uplink)
                try run(["ip", "-n", ns, "addr", "add", local + prefix, "dev", "br1"] + extra)
            case .device:
                try run(["ip", "-n", ns, "addr", "add", local + prefix, "dev", uplink] + extra)
                try daemon.ctl("add-underlay", uplink)
            }
            try daemon.ctl("add-br", "br2")
            try daemon.ctl("add-port", "br2", "vnet0")
            try run([Paths.vswiftctl, "--socket", daemon.socketPath, "add-port", "br2", "lisp0", "--", "set", "Interface", "lisp0",
                     "type=lisp"] + (own ?? ["options:remote_ip=\(remote)"]) + lispOptions)
            let file = "/tmp/\(ns).flows"
            try flowText.write(toFile: file, atomically: true, encoding: .utf8)
            defer { unlink(file) }
            try daemon.ctl("add-flows", "br2", file)
        }
    }

    /// The seed's four flows, as its author typed them.
    static func seedFlows(vmMAC: String) -> String {
        """
        priority=0,action=NORMAL
        priority=2,in_port=1,dl_type=0x0806,action=NORMAL
        priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:\(vmMAC),output:1
        priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2
        """
    }

    static func enableIPv6(_ ns: String) throws {
        let devices = try run(["ip", "-n", ns, "-o", "link", "show"]).stdout.split(separator: "\n").compactMap { line -> String? in
            let parts = line.split(separator: ":")
            return parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init) : nil
        }
        for key in ["all", "default"] + devices {
            _ = try? run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.\(key).disable_ipv6=0"], check: false)
        }
    }

    /// Pings until one answer comes back (the first packets may wait for the underlay's neighbour).
    func waitForPath(from ns: String, to address: String, seconds: Int = 10) throws {
        for _ in 0..<seconds * 2 {
            if (try? run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", address], check: false))?.status == 0 { return }
            usleep(200_000)
        }
        throw CommandFailed(command: ["ping", address], result: CommandResult(status: 1, stdout: "", stderr: "no answer in \(seconds) s\n\(daemon1.log.suffix(2000))\n\(daemon2.log.suffix(2000))"))
    }

    func destroy() {
        daemon1.stop()
        daemon2.stop()
        topology.destroy()
    }
}

/// The LISP port's counters line of dump-ports, as numbers by name.
func lispCounters(_ daemon: Daemon, bridge: String = "br2", port: String = "2") throws -> [String: UInt64] {
    let text = try daemon.ctl("dump-ports", bridge, port).stdout
    guard let line = text.split(separator: "\n").first(where: { $0.contains("lisp encap=") }) else { return [:] }
    var counters: [String: UInt64] = [:]
    for field in line.split(whereSeparator: { $0 == " " || $0 == "," }) {
        let pair = field.split(separator: "=")
        if pair.count == 2, let value = UInt64(pair[1]) { counters[String(pair[0])] = value }
    }
    return counters
}

/// n_packets of each flow of br2, keyed by its printed match.
func flowPacketCounts(_ daemon: Daemon) throws -> [String: UInt64] {
    var counts: [String: UInt64] = [:]
    for line in try daemon.ctl("dump-flows", "br2").stdout.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        guard let n = fields.first(where: { $0.hasPrefix("n_packets=") }),
              let match = fields.first(where: { $0.hasPrefix("priority=") }) else { continue }
        counts[String(match)] = UInt64(n.dropFirst("n_packets=".count).dropLast())
    }
    return counts
}

/// A capture on a namespace's interface, decoded by tshark: tcpdump writes a pcap file (it has no
/// helper process, so SIGKILL stops it cleanly; the children of a test inherit a blocked signal
/// mask), then `tshark -r` prints the chosen fields (tab-separated) of each packet. Immediate mode:
/// otherwise libpcap hands over packets in blocks, up to a second late, and SIGKILL loses them.
final class TShark {
    let process = Process()
    let file: String
    let fields: [String]
    let options: [String]

    init(namespace: String, interface: String, filter: String, fields: [String], options: [String] = []) throws {
        file = "/tmp/\(namespace)-\(interface)-\(uniqueTag()).pcap"
        self.fields = fields
        self.options = options
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, "tcpdump", "--immediate-mode", "-U", "-n", "-i", interface, "-w", file]
            + filter.split(separator: " ").map(String.init)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // tcpdump needs a moment to open the interface.
        usleep(700_000)
    }

    func stop() throws -> [[String]] {
        usleep(300_000)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        defer { unlink(file) }
        let text = try run(["tshark", "-n", "-r", file, "-T", "fields"] + options.flatMap { ["-o", $0] } + fields.flatMap { ["-e", $0] }).stdout
        return text.split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
    }
}

extension Integration {
@Suite("LISP tunnels end to end")
struct LISPIntegrationTests {
    @Test("the seed: VM1 and VM2 ping each other over LISP, a 10,000-datagram stream arrives complete, tshark decodes the underlay, counters are where the seed has them")
    func seedEndToEnd() throws {
        let hosts = try LISPHosts(underlay: .bridge)
        defer { hosts.destroy() }

        let show = try hosts.daemon1.ctl("show").stdout
        #expect(show.contains("        Port \"lisp0\"\n            Interface \"lisp0\"\n                type: lisp\n                options: {remote_ip=\"192.168.1.252\"}\n"), "\(show)")

        let capture = try TShark(
            namespace: hosts.wire, interface: "w1", filter: "udp port 4341",
            fields: ["ip.src", "ip.dst", "udp.dstport", "lisp-data.flags", "lisp-data.iid", "lisp-data.lsb8", "ip.checksum.status", "icmp.type", "udp.checksum"],
            options: ["ip.check_checksum:TRUE"])
        // Nothing has resolved 192.168.1.252 on host1 but vswiftd (for lisp0).
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        let neighbour = try run(["ip", "-n", hosts.host1, "neigh", "show", "192.168.1.252"]).stdout
        #expect(neighbour.contains("lladdr"), "\(neighbour)")
        try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.1.1.30"])
        try run(["ip", "netns", "exec", hosts.vm2, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.1.1.20"])
        let packets = try capture.stop()

        // Host1 → host2 LISP as OVS sent it: flags 0x48 (L and I), instance id 0, LSBs 1, a valid
        // outer IPv4 header checksum, UDP checksum 0, the inner ICMP echo.
        // ip.* fields list the outer header, then the inner one.
        let requests = packets.filter { $0.count >= 9 && $0[0] == "192.168.1.249,10.1.1.20" && $0[7] == "8" }
        #expect(requests.count >= 5, "\(packets)")
        for p in requests {
            #expect(p[1] == "192.168.1.252,10.1.1.30")
            #expect(p[2] == "4341")
            #expect(p[3] == "0x48")
            #expect(p[4] == "0")
            #expect(p[5] == "0x01" || p[5] == "1")
            #expect(p[6] == "1,1", "IPv4 header checksum status \(p[6]) (outer, inner; 1 = good)")
            #expect(p[8] == "0x0000")
        }
        #expect(packets.contains { $0.count >= 8 && $0[0] == "192.168.1.252,10.1.1.30" && $0[7] == "0" }, "no echo reply from host2 on the wire: \(packets)")

        // A UDP stream VM1 → VM2 arrives complete.
        let receiver = try UDPSocket(namespace: hosts.vm2, bindPort: 9000)
        let sender = try UDPSocket(namespace: hosts.vm1)
        let count = 10_000
        var payload = [UInt8](repeating: 0x5a, count: 100)
        for seq in 0..<UInt32(count) {
            withUnsafeBytes(of: seq.bigEndian) { payload.replaceSubrange(0..<4, with: $0) }
            _ = sender.send(payload, to: "10.1.1.30", port: 9000)
            if seq % 50 == 49 { usleep(4000) }
        }
        let arrived = Set(receiver.receiveAll(idleTimeout: 1.5).map { UInt32(bigEndian: $0.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }) })
        #expect(arrived.count == count, "lost \(count - arrived.count) of \(count) datagrams")

        // The seed's counters: IP from VM1 left by priority=1, traffic from the tunnel came in by priority=3.
        for daemon in [hosts.daemon1, hosts.daemon2] {
            let counts = try flowPacketCounts(daemon)
            #expect((counts["priority=1,ip,in_port=1,vlan_tci=0x0000,nw_src=10.1.1.0/24"] ?? 0) >= 10, "\(counts)")
            #expect((counts["priority=3,dl_dst=02:00:00:00:00:00"] ?? 0) >= 10, "\(counts)")
            let lisp = try lispCounters(daemon)
            #expect((lisp["encap"] ?? 0) >= 10 && (lisp["decap"] ?? 0) >= 10, "\(lisp)")
            #expect(lisp["bad_header"] == 0 && lisp["unknown_rloc"] == 0 && lisp["iid_mismatch"] == 0, "\(lisp)")
            let reports: [FrameAccountingReport] = try daemon.call("frame-accounting").get().decode()
            let consistent = reports.allSatisfy { $0.consistent }
            #expect(consistent, "\(reports)")
        }
        let dumpPorts = try hosts.daemon2.ctl("dump-ports", "br2").stdout
        #expect(dumpPorts.contains("port  2: rx pkts="), "\(dumpPorts)")

        // A full-size packet (1500 bytes of IP, DF) is 1536 encapsulated: over the underlay's MTU,
        // so it is dropped and counted as too_big, not lost silently in the device, and VM1 hears
        // Fragmentation Needed (PathMTUIntegrationTests): its second ping never leaves it.
        let tooBigBefore = try lispCounters(hosts.daemon1)["too_big"] ?? 0
        let big = try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "2", "-i", "0.2", "-W", "1", "-M", "do", "-s", "1472", "10.1.1.30"], check: false)
        #expect(big.status != 0, "a 1536-byte encapsulation crossed a 1500-byte MTU: \(big.stdout)")
        let tooBig = try lispCounters(hosts.daemon1)["too_big"] ?? 0
        #expect(tooBig >= tooBigBefore + 1, "too_big \(tooBigBefore) -> \(tooBig)")
    }

    /// `--tx-checksum auto` on veth (no AF_XDP checksum offload in its driver): vswift computes the
    /// outer UDP checksum. `offload`: the UDP checksum field leaves vswift holding only the
    /// pseudo-header sum, with TX metadata asking for the checksum; the kernel completes it in copy
    /// mode (XDP_UMEM_TX_SW_CSUM) — a valid checksum on the wire proves the metadata path.
    @Test("underlay mode over IPv6 with an instance id: VMs talk, the outer UDP checksum is valid (computed by vswift, or through AF_XDP TX metadata), and the host's own ping and TCP on the device keep working",
          arguments: ["auto", "offload"])
    func underlayDeviceIPv6(txChecksum: String) throws {
        let hosts = try LISPHosts(underlay: .device, rlocs: ("fd00::1", "fd00::2"), lispOptions: ["options:key=5"],
                                  daemonArguments: ["--tx-checksum", txChecksum])
        defer { hosts.destroy() }
        for ns in [hosts.host1, hosts.host2] {
            try run(["ip", "-n", ns, "addr", "add", ns == hosts.host1 ? "10.0.0.1/24" : "10.0.0.2/24", "dev", "ul0"])
        }
        let show = try hosts.daemon1.ctl("show").stdout
        #expect(show.contains("    Underlay \"ul0\"\n        datapath: underlay, afxdp:"), "\(show)")
        if txChecksum == "offload" {
            #expect(show.contains("tx checksum: offloaded to the kernel (copy mode)"), "\(show)")
        } else {
            #expect(show.contains("tx checksum: software (the driver offers no AF_XDP checksum offload)"), "\(show)")
        }

        let capture = try TShark(
            namespace: hosts.wire, interface: "w1", filter: "udp port 4341",
            fields: ["ipv6.src", "ipv6.dst", "lisp-data.flags", "lisp-data.iid", "udp.checksum.status", "icmp.type"],
            options: ["udp.check_checksum:TRUE"])
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.1.1.30"])
        let packets = try capture.stop()
        let lisp = packets.filter { $0.count >= 6 && $0[0] == "fd00::1" }
        #expect(lisp.count >= 5, "\(packets)")
        let state = try hosts.daemon1.ctl("show").stdout
        #expect(state.contains("udp checksum offloaded") == (txChecksum == "offload"), "\(state)")
        for p in lisp {
            #expect(p[1] == "fd00::2")
            #expect(p[2] == "0x48")
            #expect(p[3] == "5")
            #expect(p[4] == "1", "UDP checksum status \(p[4]) (1 = good)")
        }

        // The host's own traffic on the underlay device: ping (IPv4 and IPv6) and TCP.
        try run(["ip", "netns", "exec", hosts.host1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2"])
        try run(["ip", "netns", "exec", hosts.host1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "fd00::2"])
        let listener = try TCPListener(namespace: hosts.host2, port: 7777)
        let sent = [UInt8]((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try tcpSend(namespace: hosts.host1, to: "10.0.0.2", port: 7777, sent)
        #expect(listener.receiveAll() == sent)

        try hosts.daemon1.ctl("del-underlay", "ul0")
        #expect(!hasXDP(namespace: hosts.host1, interface: "ul0"))
        #expect(!(try hosts.daemon1.ctl("show").stdout.contains("Underlay")))
    }

    /// What tshark sees on the underlay wire and at VM2 for a ping from VM1 with TOS 0xb9 (DSCP 46,
    /// ECT(1)) and TTL 17: with the defaults (ttl=inherit, tos=inherit) the outer header carries the
    /// inner TTL, DSCP and ECN (RFC 9300 §5.3, RFC 6040 §4.1); with ttl=9 and tos=0x20 the fixed
    /// values and the inner ECN, and the decapsulator lowers the inner TTL to the outer 9 (RFC 9300
    /// §5.3) while the inner TOS arrives unchanged.
    @Test("outer TTL, DSCP and ECN on the wire: inherited by default (RFC 9300 §5.3, RFC 6040 §4.1), fixed by options:ttl/tos; the inner TTL lowered to the outer one on decapsulation",
          arguments: [false, true])
    func outerTTLAndECNOnTheWire(fixed: Bool) throws {
        let hosts = try LISPHosts(underlay: .bridge, lispOptions: fixed ? ["options:ttl=9", "options:tos=0x20"] : [])
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        let wire = try TShark(namespace: hosts.wire, interface: "w1", filter: "udp port 4341",
                              fields: ["ip.src", "ip.ttl", "ip.dsfield.dscp", "ip.dsfield.ecn", "icmp.type"])
        let vm2 = try TShark(namespace: hosts.vm2, interface: "eth5", filter: "icmp and src host 10.1.1.20",
                             fields: ["ip.ttl", "ip.dsfield.dscp", "ip.dsfield.ecn", "icmp.type"])
        try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-Q", "0xb9", "-t", "17", "10.1.1.30"])
        let onWire = try wire.stop()
        let atVM2 = try vm2.stop()
        let requests = onWire.filter { $0.count >= 5 && $0[0] == "192.168.1.249,10.1.1.20" && $0[4] == "8" }
        #expect(requests.count == 3, "\(onWire)")
        for p in requests {
            // Outer, then inner.
            #expect(p[1] == (fixed ? "9,17" : "17,17"), "TTL \(p)")
            #expect(p[2] == (fixed ? "8,46" : "46,46"), "DSCP \(p)")
            #expect(p[3] == "1,1", "ECN \(p)")
        }
        let delivered = atVM2.filter { $0.count >= 4 && $0[3] == "8" }
        #expect(delivered.count == 3, "\(atVM2)")
        for p in delivered {
            #expect(p[0] == (fixed ? "9" : "17") && p[1] == "46" && p[2] == "1", "\(p)")
        }
        let show = try hosts.daemon1.ctl("show").stdout
        if fixed { #expect(show.contains(#"options: {remote_ip="192.168.1.252", tos="0x20", ttl="9"}"#), "\(show)") }
    }

    @Test("remote_ip=flow and key=flow: the flow picks the RLOC (set_field ->tun_dst) and the instance id (set_tunnel), and the far side matches tun_id")
    func flowChosenTunnels() throws {
        let flows1 = """
            priority=2,in_port=1,arp,actions=NORMAL
            priority=3,tun_id=9,dl_dst=02:00:00:00:00:00,actions=mod_dl_dst:52:54:00:B8:27:75,output:1
            priority=1,in_port=1,ip,actions=set_field:192.168.1.252->tun_dst,set_tunnel:9,output:2
            """
        let flows2 = """
            priority=3,tun_id=9,tun_src=192.168.1.249,dl_dst=02:00:00:00:00:00,actions=mod_dl_dst:52:54:00:1B:EA:D5,output:1
            priority=1,in_port=1,ip,actions=set_tunnel:9,output:2
            """
        let hosts = try LISPHosts(
            underlay: .bridge,
            hostOptions: (["options:remote_ip=flow", "options:key=flow"], ["options:remote_ip=192.168.1.249", "options:key=flow"]),
            flows: (flows1, flows2))
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.1.30"])
        for daemon in [hosts.daemon1, hosts.daemon2] {
            let counts = try flowPacketCounts(daemon)
            #expect(counts.contains { $0.key.hasPrefix("priority=3,tun_id=0x9") && $0.value >= 3 }, "\(counts)")
        }
        let show = try hosts.daemon1.ctl("show").stdout
        #expect(show.contains(#"options: {key="flow", remote_ip="flow"}"#), "\(show)")
    }

    @Test("decapsulation drops what it must, each with its own counter: unknown RLOC, instance id mismatch, malformed header, encrypted (RFC 8061 KK), outer CE on inner Not-ECT (RFC 6040 §4.2), inner TTL 0 (RFC 9300 §5.3); R and N+V are accepted (RFC 9300 §5.3); ARP output to LISP is dropped as non-IP")
    func dropsAreCounted() throws {
        let hosts = try LISPHosts(underlay: .device, rlocs: ("192.168.5.1", "192.168.5.2"), lispOptions: ["options:key=7"])
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        let before = try lispCounters(hosts.daemon1)
        let host1MAC = try macAddress(namespace: hosts.host1, interface: "ul0")
        // Sent out of w1 is received by host1's ul0.
        let injector = try PacketSocket(namespace: hosts.wire, interface: "w1")
        let capture = try TCPDump(namespace: hosts.vm1, interface: "eth3", filter: "icmp and src host 10.1.1.99")
        func frame(source: [UInt8], flags: UInt8, iid: UInt32, innerVersion: UInt8 = 0x45,
                   outerTOS: UInt8 = 0, outerTTL: UInt8 = 64) -> [UInt8] {
            var inner = icmpEcho(from: [10, 1, 1, 99], to: [10, 1, 1, 20])
            inner[0] = innerVersion
            var f = lispFrame(destinationMAC: host1MAC, source: source, destination: [192, 168, 5, 1], flags: flags, iid: iid,
                              inner: inner)
            f[15] = outerTOS
            f[22] = outerTTL
            Ref.put16(&f, 24, 0)
            Ref.put16(&f, 24, Ref.checksum(Array(f[14..<34])))
            return f
        }
        injector.send(frame(source: [192, 168, 5, 2], flags: 0x88, iid: 7))   // N and I: accepted
        injector.send(frame(source: [192, 168, 5, 9], flags: 0x48, iid: 7))   // unknown RLOC
        injector.send(frame(source: [192, 168, 5, 2], flags: 0x48, iid: 8))   // IID mismatch
        injector.send(frame(source: [192, 168, 5, 2], flags: 0x4c, iid: 7))   // R: ignored, accepted
        injector.send(frame(source: [192, 168, 5, 2], flags: 0x98, iid: 7))   // N and V together: a nonce, accepted
        injector.send(frame(source: [192, 168, 5, 2], flags: 0x49, iid: 7))   // KK: encrypted
        injector.send(frame(source: [192, 168, 5, 2], flags: 0x48, iid: 7, innerVersion: 0x55))  // malformed
        injector.send(frame(source: [192, 168, 5, 2], flags: 0x48, iid: 7, outerTOS: 0x03))      // CE on Not-ECT
        injector.send(frame(source: [192, 168, 5, 2], flags: 0x48, iid: 7, outerTTL: 0))         // inner TTL -> 0
        // ARP from VM1 goes NORMAL (the seed's priority=2 flow), which floods it to lisp0 too.
        _ = try run(["ip", "netns", "exec", hosts.vm1, "ping", "-c", "1", "-W", "1", "10.1.1.77"], check: false)
        let delivered = capture.stop()
        let after = try lispCounters(hosts.daemon1)
        func delta(_ name: String) -> UInt64 { (after[name] ?? 0) - (before[name] ?? 0) }
        #expect(delta("unknown_rloc") == 1, "\(after)")
        #expect(delta("iid_mismatch") == 1, "\(after)")
        #expect(delta("bad_header") == 1, "\(after)")
        #expect(delta("encrypted") == 1, "\(after)")
        #expect(delta("ce_not_ect") == 1, "\(after)")
        #expect(delta("ttl_expired") == 1, "\(after)")
        #expect(delta("non_ip") >= 1, "\(after)")
        #expect(delivered.filter { $0.contains("ICMP echo request") }.count == 3, "\(delivered)")
        let dump = try hosts.daemon1.ctl("dump-ports", "br2", "2").stdout
        #expect(dump.contains("drop=") && !dump.contains("rx pkts=0,"), "\(dump)")
    }

    @Test("trust boundary: LISP is decapsulated only from the underlay and to the local RLOC; a VM on another bridge sending as the remote RLOC, an EID host on the LISP port's bridge spoofing it, and LISP to the EID-side gateway address (from either side) never reach the LISP bridge's VM")
    func decapsulationTrustBoundary() throws {
        let hosts = try LISPHosts(underlay: .bridge, rlocs: ("192.168.7.249", "192.168.7.252"))
        defer { hosts.destroy() }
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
        // Another tenant on host1: bridge br3 with a VM of its own. And the EID side's gateway
        // address on br2's internal port.
        let vm3 = try hosts.topology.namespace("vm3")
        try hosts.topology.veth("vnet1", in: hosts.host1, "eth7", in: vm3)
        try hosts.daemon1.ctl("add-br", "br3")
        try hosts.daemon1.ctl("add-port", "br3", "vnet1")
        try run(["ip", "-n", hosts.host1, "link", "set", "br2", "up"])
        try run(["ip", "-n", hosts.host1, "addr", "add", "10.1.1.1/24", "dev", "br2"])
        let underlayMAC = try macAddress(namespace: hosts.host1, interface: "br1")
        let eidGatewayMAC = try macAddress(namespace: hosts.host1, interface: "br2")
        let otherBridgeMAC = try macAddress(namespace: hosts.host1, interface: "br3")
        let remote: [UInt8] = [192, 168, 7, 252], rloc: [UInt8] = [192, 168, 7, 249], gateway: [UInt8] = [10, 1, 1, 1]
        // Each attack's inner packet has its own source, so what reaches VM1 tells which got through.
        func frame(to mac: [UInt8], _ destination: [UInt8], innerSource: UInt8) -> [UInt8] {
            lispFrame(destinationMAC: mac, source: remote, destination: destination, flags: 0x88, iid: 0,
                      inner: icmpEcho(from: [10, 1, 1, innerSource], to: [10, 1, 1, 20]))
        }
        let before = try lispCounters(hosts.daemon1)
        let capture = try TCPDump(namespace: hosts.vm1, interface: "eth3", filter: "icmp and src net 10.1.1.0/24 and not src host 10.1.1.30")
        let wire = try PacketSocket(namespace: hosts.wire, interface: "w1")    // host1's underlay (em1 in br1)
        let fromVM3 = try PacketSocket(namespace: vm3, interface: "eth7")
        let fromVM1 = try PacketSocket(namespace: hosts.vm1, interface: "eth3")
        for _ in 0..<5 {
            wire.send(frame(to: underlayMAC, rloc, innerSource: 99))               // legitimate
            fromVM3.send(frame(to: otherBridgeMAC, rloc, innerSource: 91))         // another bridge's VM
            fromVM1.send(frame(to: underlayMAC, rloc, innerSource: 92))            // EID host spoofing the remote
            fromVM1.send(frame(to: eidGatewayMAC, gateway, innerSource: 93))       // to the EID-side gateway
            wire.send(frame(to: underlayMAC, gateway, innerSource: 94))            // same, from the underlay
            usleep(20_000)
        }
        let delivered = capture.stop().filter { $0.contains("ICMP echo request") }
        let after = try lispCounters(hosts.daemon1)
        func count(_ source: String) -> Int { delivered.filter { $0.contains(source + " > 10.1.1.20") }.count }
        #expect(count("10.1.1.99") == 5, "\(delivered)")
        for attack in ["10.1.1.91", "10.1.1.92", "10.1.1.93", "10.1.1.94"] {
            #expect(count(attack) == 0, "\(attack) got through: \(delivered)")
        }
        #expect(delivered.count == 5, "\(delivered)")
        let refused = (after["off_underlay"] ?? 0) - (before["off_underlay"] ?? 0)
        #expect(refused == 20, "\(after)")
        #expect((after["decap"] ?? 0) - (before["decap"] ?? 0) >= 5, "\(after)")
        // The legitimate path still works both ways.
        try hosts.waitForPath(from: hosts.vm1, to: "10.1.1.30")
    }
}
}

/// A TCP listener inside a namespace that accepts one connection and reads it to the end.
final class TCPListener {
    let fd: Int32

    init(namespace: String, port: UInt16) throws {
        fd = try inNamespace(namespace) { () throws -> Int32 in
            let fd = socket(AF_INET, vs_sock_stream, 0)
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard fd >= 0, rc == 0, listen(fd, 1) == 0 else {
                throw CommandFailed(command: ["tcp listen"], result: CommandResult(status: errno, stdout: "", stderr: ""))
            }
            return fd
        }
    }

    func receiveAll(timeout: Double = 10) -> [UInt8] {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return [] }
        let connection = accept(fd, nil, nil)
        guard connection >= 0 else { return [] }
        defer { close(connection) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            var cfd = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
            guard poll(&cfd, 1, Int32(timeout * 1000)) > 0 else { break }
            let n = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        return data
    }

    deinit { close(fd) }
}

/// Connects from inside a namespace and sends `data`, then closes.
func tcpSend(namespace: String, to ip: String, port: UInt16, _ data: [UInt8]) throws {
    try inNamespace(namespace) { () throws in
        let fd = socket(AF_INET, vs_sock_stream, 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        inet_pton(AF_INET, ip, &address.sin_addr)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw CommandFailed(command: ["tcp connect", ip], result: CommandResult(status: errno, stdout: "", stderr: String(cString: strerror(errno)))) }
        var offset = 0
        while offset < data.count {
            let n = data[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw CommandFailed(command: ["tcp send"], result: CommandResult(status: errno, stdout: "", stderr: "")) }
            offset += n
        }
    }
}
