import CXDP
import Foundation
import Glibc
import Testing
import VSwiftTesting
import VSwiftControl
import VSwiftDatapath
import VSwiftProtocol

/// End-to-end: real namespaces, veth pairs, taps, AF_XDP sockets, a real vswiftd and vswiftctl.
extension Integration {
@Suite("Switch integration")
struct SwitchIntegrationTests {

    /// Two namespace hosts on one bridge; returns (topology, switch ns, h1, h2, daemon).
    func twoHosts(workers: Int = 1, subnet: String) throws -> (Topology, String, String, String, Daemon) {
        let topology = Topology()
        let sw = try topology.namespace("sw")
        let h1 = try topology.namespace("h1")
        let h2 = try topology.namespace("h2")
        try topology.veth("eth0", in: h1, "vp1", in: sw, queues: workers)
        try topology.veth("eth0", in: h2, "vp2", in: sw, queues: workers)
        try run(["ip", "-n", h1, "addr", "add", "\(subnet).1/24", "dev", "eth0"])
        try run(["ip", "-n", h2, "addr", "add", "\(subnet).2/24", "dev", "eth0"])
        let daemon = try Daemon(namespace: sw, workers: workers)
        try daemon.ctl("add-br", "br0")
        try daemon.ctl("add-port", "br0", "vp1")
        try daemon.ctl("add-port", "br0", "vp2")
        return (topology, sw, h1, h2, daemon)
    }

    func ping(from ns: String, _ address: String, count: Int = 3) throws {
        try run(["ip", "netns", "exec", ns, "ping", "-c", "\(count)", "-i", "0.2", "-W", "2", address])
    }

    private func dumpPorts(_ daemon: Daemon, bridge: String = "br0") throws -> [UInt32: PortStatisticsReport] {
        let report: DumpPortsReport = try daemon.call("dump-ports", ["bridge": .string(bridge)]).get().decode()
        return Dictionary(uniqueKeysWithValues: report.ports.map { ($0.ofport, $0.statistics) })
    }

    func expectFramesAccounted(_ daemon: Daemon, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let census: [FrameAccountingReport] = try daemon.call("frame-accounting").get().decode()
        #expect(!census.isEmpty, sourceLocation: sourceLocation)
        for worker in census {
            #expect(worker.consistent, "\(worker)", sourceLocation: sourceLocation)
        }
    }

    /// Pins each host's neighbour entry for the other, so no ARP crosses the switch mid-measurement.
    private func pinNeighbours(_ h1: String, _ h2: String, subnet: String) throws {
        let mac1 = try macAddress(namespace: h1, interface: "eth0").map { String(format: "%02x", $0) }.joined(separator: ":")
        let mac2 = try macAddress(namespace: h2, interface: "eth0").map { String(format: "%02x", $0) }.joined(separator: ":")
        try run(["ip", "-n", h1, "neigh", "replace", "\(subnet).2", "lladdr", mac2, "dev", "eth0", "nud", "permanent"])
        try run(["ip", "-n", h2, "neigh", "replace", "\(subnet).1", "lladdr", mac1, "dev", "eth0", "nud", "permanent"])
    }

    /// Sends `count` numbered datagrams h1 → h2 and returns the numbers that arrived.
    private func udpStream(from h1: String, to h2: String, address: String, count: Int, payloadSize: Int) throws -> Set<UInt32> {
        let receiver = try UDPSocket(namespace: h2, bindPort: 9000)
        let sender = try UDPSocket(namespace: h1)
        var payload = [UInt8](repeating: 0x5a, count: payloadSize)
        for seq in 0..<UInt32(count) {
            withUnsafeBytes(of: seq.bigEndian) { payload.replaceSubrange(0..<4, with: $0) }
            #expect(sender.send(payload, to: address, port: 9000))
            // Pace the burst a little: the sender's CPU also runs the switch's XDP copy on veth.
            if seq % 256 == 255 { usleep(2000) }
        }
        let received = receiver.receiveAll(idleTimeout: 1.5)
        return Set(received.map { UInt32(bigEndian: $0.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }) })
    }

    @Test("two hosts ping both ways; a 10,000-packet UDP stream arrives complete and the counters match")
    func twoHostsForward() throws {
        let (topology, _, h1, h2, daemon) = try twoHosts(subnet: "10.77.0")
        defer { daemon.stop(); topology.destroy() }

        try ping(from: h1, "10.77.0.2")
        try ping(from: h2, "10.77.0.1")
        try pinNeighbours(h1, h2, subnet: "10.77.0")

        let before = try dumpPorts(daemon)
        let count = 10_000
        let payloadSize = 64
        let arrived = try udpStream(from: h1, to: h2, address: "10.77.0.2", count: count, payloadSize: payloadSize)
        #expect(arrived == Set(0..<UInt32(count)), "lost \(count - arrived.count) datagrams")

        let after = try dumpPorts(daemon)
        let frameBytes = UInt64(14 + 20 + 8 + payloadSize)
        let rx = after[1]!.rxPackets - before[1]!.rxPackets
        let tx = after[2]!.txPackets - before[2]!.txPackets
        #expect(rx == UInt64(count))
        #expect(tx == UInt64(count))
        #expect(after[1]!.rxBytes - before[1]!.rxBytes == UInt64(count) * frameBytes)
        #expect(after[2]!.txBytes - before[2]!.txBytes == UInt64(count) * frameBytes)
        #expect(after[1]!.rxDropped == 0 && after[2]!.txDropped == 0)
        try expectFramesAccounted(daemon)

        // The text form is OVS's.
        let text = try daemon.ctl("dump-ports", "br0").stdout
        #expect(text.hasPrefix("OFPST_PORT reply (xid=0x2): 3 ports\n  port  1: rx pkts="))
        #expect(text.contains("  port LOCAL: rx pkts="))

        // Each worker accounts for its packets and cycles (vswiftctl dump-workers).
        let workers: [WorkerReport] = try daemon.call("dump-workers").get().decode()
        #expect(workers.count == 1)
        #expect(workers[0].rxPackets >= UInt64(count))  // the stream, the pings and ARP
        #expect(workers[0].busyCycles > 0 && workers[0].rounds > 0)
        #expect((workers[0].busyCyclesPerPacket ?? 0) > 0)
        let workerText = try daemon.ctl("dump-workers").stdout
        #expect(workerText.hasPrefix("worker 0"))
        #expect(workerText.contains("avg processing cycles per packet: "))
    }

    @Test("two workers, two queues per device: traffic flows and every frame is accounted for")
    func twoWorkers() throws {
        let (topology, _, h1, h2, daemon) = try twoHosts(workers: 2, subnet: "10.77.5")
        defer { daemon.stop(); topology.destroy() }
        try ping(from: h1, "10.77.5.2")
        try ping(from: h2, "10.77.5.1")
        try pinNeighbours(h1, h2, subnet: "10.77.5")
        let arrived = try udpStream(from: h1, to: h2, address: "10.77.5.2", count: 2000, payloadSize: 100)
        #expect(arrived.count == 2000)
        try expectFramesAccounted(daemon)
    }

    @Test("frames written into a tap port come out of a veth port, and back")
    func tapPort() throws {
        let topology = Topology()
        defer { topology.destroy() }
        let sw = try topology.namespace("sw")
        let h1 = try topology.namespace("h1")
        try topology.veth("eth0", in: h1, "vp1", in: sw)
        let tap = try TestTap(namespace: sw, name: "vtap0")
        let daemon = try Daemon(namespace: sw)
        defer { daemon.stop() }
        try daemon.ctl("add-br", "br0")
        try daemon.ctl("add-port", "br0", "vp1")
        try daemon.ctl("add-port", "br0", "vtap0")

        let host = try PacketSocket(namespace: h1, interface: "eth0")
        let hostMAC = try macAddress(namespace: h1, interface: "eth0")
        let tapSideMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0xaa]
        let experimental: [UInt8] = [0x88, 0xb5]

        let outbound = hostMAC + tapSideMAC + experimental + Array("vswift tap → veth".utf8) + [UInt8](repeating: 0, count: 30)
        #expect(tap.write(outbound))
        let seen = host.receive(timeout: 3, until: 1) { $0.starts(with: outbound.prefix(14)) }
        #expect(seen.first.map { Array($0.prefix(outbound.count)) } == outbound)

        // The switch learned 02:00:00:00:00:aa on the tap port: the reply goes only there.
        let inbound = tapSideMAC + hostMAC + experimental + Array("vswift veth → tap".utf8) + [UInt8](repeating: 0, count: 30)
        host.send(inbound)
        let back = tap.read(timeout: 3) { $0.starts(with: inbound.prefix(14)) }
        #expect(back.map { Array($0.prefix(inbound.count)) } == inbound)
        try expectFramesAccounted(daemon)
    }

    @Test("the bridge's internal port lets the switch's host ping a namespace")
    func internalPort() throws {
        let topology = Topology()
        defer { topology.destroy() }
        let sw = try topology.namespace("sw")
        let h1 = try topology.namespace("h1")
        try topology.veth("eth0", in: h1, "vp1", in: sw)
        try run(["ip", "-n", h1, "addr", "add", "10.77.1.1/24", "dev", "eth0"])
        let daemon = try Daemon(namespace: sw)
        defer { daemon.stop() }
        try daemon.ctl("add-br", "br0")
        try daemon.ctl("add-port", "br0", "vp1")
        try run(["ip", "-n", sw, "addr", "add", "10.77.1.254/24", "dev", "br0"])
        try ping(from: sw, "10.77.1.1")
        try ping(from: h1, "10.77.1.254")
        let ports = try dumpPorts(daemon)
        #expect(ports[ofportLocal]!.rxPackets >= 3 && ports[ofportLocal]!.txPackets >= 3)
    }

    @Test("del-port and daemon exit (SIGTERM, SIGINT, even SIGKILL) leave no XDP program and no tap behind")
    func cleanup() throws {
        let topology = Topology()
        defer { topology.destroy() }
        let sw = try topology.namespace("sw")
        let h1 = try topology.namespace("h1")
        try topology.veth("eth0", in: h1, "vp1", in: sw)
        try topology.veth("eth1", in: h1, "vp2", in: sw)

        for signal in [SIGTERM, SIGINT, SIGKILL] {
            let daemon = try Daemon(namespace: sw)
            try daemon.ctl("add-br", "br0")
            try daemon.ctl("add-port", "br0", "vp1")
            try daemon.ctl("add-port", "br0", "vp2")
            #expect(hasXDP(namespace: sw, interface: "vp1"))
            #expect(interfaceExists(namespace: sw, interface: "br0"))
            try daemon.ctl("del-port", "br0", "vp1")
            #expect(!hasXDP(namespace: sw, interface: "vp1"))
            #expect(hasXDP(namespace: sw, interface: "vp2"))
            daemon.stop(signal: signal)
            // Link and tap teardown after SIGKILL happens as the kernel closes the fds.
            var waited = 0
            while (hasXDP(namespace: sw, interface: "vp2") || interfaceExists(namespace: sw, interface: "br0")) && waited < 50 {
                usleep(100_000)
                waited += 1
            }
            #expect(!hasXDP(namespace: sw, interface: "vp2"), "signal \(signal)")
            #expect(!interfaceExists(namespace: sw, interface: "br0"), "signal \(signal)")
            if signal != SIGKILL { #expect(access(daemon.socketPath, F_OK) != 0, "socket file left behind") }
        }
    }

    @Test("bad requests get JSON-RPC errors naming the problem; state is unchanged and forwarding goes on")
    func badRequests() throws {
        let (topology, _, h1, _, daemon) = try twoHosts(subnet: "10.77.2")
        defer { daemon.stop(); topology.destroy() }
        try ping(from: h1, "10.77.2.2", count: 1)
        let showBefore = try daemon.call("show").get()

        let raw = try RawControlConnection(path: daemon.socketPath)
        let cases: [(String, Int, String)] = [
            ("this is not json", -32700, "parse error"),
            (#"[1,2,3]"#, -32600, "JSON object"),
            (#"{"jsonrpc":"2.0","id":1}"#, -32600, "method"),
            (#"{"jsonrpc":"2.0","id":2,"method":"frobnicate"}"#, -32601, "frobnicate"),
            (#"{"jsonrpc":"2.0","id":3,"method":"add-port","params":{"bridge":"br0"}}"#, -32602, "port"),
            (#"{"jsonrpc":"2.0","id":4,"method":"add-br","params":{"bridge":5}}"#, -32602, "bridge"),
            (#"{"jsonrpc":"2.0","id":5,"method":"add-port","params":{"bridge":"br0","port":"nosuchdev0"}}"#, -32003, "nosuchdev0"),
            (#"{"jsonrpc":"2.0","id":6,"method":"add-port","params":{"bridge":"br0","port":"vp1"}}"#, -32004, "vp1"),
            (#"{"jsonrpc":"2.0","id":7,"method":"add-port","params":{"bridge":"br9","port":"vp1"}}"#, -32001, "br9"),
            (#"{"jsonrpc":"2.0","id":8,"method":"add-br","params":{"bridge":"br0"}}"#, -32004, "br0"),
            (#"{"jsonrpc":"2.0","id":9,"method":"del-port","params":{"port":"ghost"}}"#, -32002, "ghost"),
            (#"{"jsonrpc":"2.0","id":10,"method":"del-br","params":{"bridge":"ghost"}}"#, -32001, "ghost"),
            (#"{"jsonrpc":"2.0","id":11,"method":"add-port","params":{"bridge":"br0","port":"vp9","type":"gre"}}"#, -32602, "gre"),
            (#"{"jsonrpc":"2.0","id":12,"method":"dump-ports","params":{"bridge":"br0","port":"42"}}"#, -32002, "42"),
        ]
        for (line, code, mention) in cases {
            let reply = try raw.request(line)
            guard case .object(let object) = reply, case .object(let error)? = object["error"] else {
                Issue.record("no error for \(line): \(reply)")
                continue
            }
            #expect(error["code"] == .int(Int64(code)), "\(line)")
            if case .string(let message)? = error["message"] {
                #expect(message.contains(mention), "\(line) → \(message)")
            }
        }
        #expect(try daemon.call("show").get() == showBefore)
        try ping(from: h1, "10.77.2.2")
        // The CLI reports errors the OVS way, exit status 1.
        let failed = try daemon.ctl("add-port", "br0", "nosuchdev0", check: false)
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("vswiftctl: no network device named \"nosuchdev0\""))
    }
}
}

/// A control-socket connection that sends arbitrary bytes, for malformed-request tests.
final class RawControlConnection {
    let fd: Int32

    init(path: String) throws {
        fd = socket(AF_UNIX, vs_sock_stream, 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw CommandFailed(command: ["connect", path], result: CommandResult(status: errno, stdout: "", stderr: "")) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends one line and returns the one-line reply, parsed.
    func request(_ line: String) throws -> JSONValue {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        var reply: [UInt8] = []
        var byte: UInt8 = 0
        while read(fd, &byte, 1) == 1 {
            if byte == UInt8(ascii: "\n") { break }
            reply.append(byte)
        }
        return try JSONDecoder().decode(JSONValue.self, from: Data(reply))
    }

    deinit { close(fd) }
}

extension Integration {
    @Suite("Devices")
    struct DeviceTests {
        @Test("rx queue counts come from the thread's own network namespace, even where /sys shows another")
        func rxQueueCountFollowsTheThreadsNamespace() throws {
            let topology = Topology()
            defer { topology.destroy() }
            let a = try topology.namespace("qa")
            let b = try topology.namespace("qb")
            try topology.veth("vq0", in: a, "vq1", in: b, queues: 3)
            // This thread entered namespace `a` with setns but /sys is still the test's own mount.
            let count = try inNamespace(a) { try NetworkDevice(name: "vq0").rxQueueCount }
            #expect(count == 3)
        }
    }
}

extension Integration.SwitchIntegrationTests {
    @Test("a device that vanishes while attached is reported, released by del-port, and loses no frame")
    func vanishingDevice() throws {
        let (topology, sw, h1, _, daemon) = try twoHosts(subnet: "10.77.6")
        defer { daemon.stop(); topology.destroy() }
        try ping(from: h1, "10.77.6.2", count: 2)
        // Removing vp2 from the switch's namespace takes its peer with it.
        try run(["ip", "-n", sw, "link", "del", "vp2"])
        let show = try daemon.ctl("show").stdout
        #expect(show.contains("vp2\\\" no longer exists; del-port releases it"), "\(show)")
        // The rest of the switch keeps working and answering.
        _ = try daemon.ctl("dump-ports", "br0")
        try daemon.ctl("del-port", "br0", "vp2")
        try expectFramesAccounted(daemon)
        #expect(!(try daemon.ctl("show").stdout.contains("vp2")))
    }
}
