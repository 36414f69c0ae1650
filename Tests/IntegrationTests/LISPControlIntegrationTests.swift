import Foundation
import Glibc
import Testing
import VSwiftControl
import VSwiftLISPControl
import VSwiftPacket
import VSwiftProtocol
import VSwiftTesting

/// vswiftd's LISP control socket as an operator sees it (issue 16): opened with the first
/// mapping-system item, kept across a restart, closed with the last; the verbs through vswiftctl.
/// Names carry the prefix `lc`.
extension Integration {
@Suite("LISP control integration")
struct LISPControlIntegrationTests {
    /// Whether something in `namespace` holds UDP `port` on all IPv6 (and so IPv4) addresses: a
    /// dual-stack bind of the same port fails then.
    func portHeld(_ port: UInt16, namespace: String) throws -> Bool {
        try inNamespace(namespace) { () -> Bool in
            let fd = socket(AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            var off: Int32 = 0
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, 4)
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
            return rc != 0 && errno == EADDRINUSE
        }
    }

    @Test("lc: a map-server in another namespace gets a Map-Register whose HMAC verifies with the configured key (RFC 9301 §5.6)")
    func mapRegisterArrives() throws {
        let topology = Topology()
        defer { topology.destroy() }
        let ns = try topology.namespace("lc3")
        let server = try topology.namespace("lc4")
        try topology.veth("lc1", in: ns, "lc1p", in: server)
        try run(["ip", "-n", ns, "addr", "add", "10.217.0.1/24", "dev", "lc1"])
        try run(["ip", "-n", server, "addr", "add", "10.217.0.2/24", "dev", "lc1p"])
        // The test's map-server: a UDP socket on 4342 in its own namespace.
        let listener = try UDPSocket(namespace: server, bindPort: 4342)
        let daemon = try Daemon(namespace: ns)
        // RFC 6830's key ids 1 and 2 (the algorithm, Key ID 0), and RFC 9301's Key ID 5 with an
        // algorithm by name: the Map-Register carries Key ID and Algorithm ID (§5.6).
        let cases: [(keyID: String, arguments: [String], key: AuthenticationKey)] = [
            ("1", ["--key-id", "1"], AuthenticationKey(algorithm: .hmacSHA1_96, password: "lc-key-1")),
            ("2", ["--key-id", "2"], AuthenticationKey(algorithm: .hmacSHA256_128, password: "lc-key-2")),
            ("5", ["--algorithm", "HMAC-SHA-256-128", "--key-id", "5"], AuthenticationKey(algorithm: .hmacSHA256_128, keyID: 5, password: "lc-key-5")),
        ]
        for (keyID, arguments, key) in cases {
            let algorithm = key.algorithm
            try run([Paths.vswiftctl, "--socket", daemon.socketPath, "add-map-server", "10.217.0.2", "--key", "lc-key-\(keyID)"] + arguments)
            if keyID == "1" { try daemon.ctl("add-eid", "1000", "10.1.0.0/16") }
            let datagrams = listener.receiveAll(idleTimeout: 3)
            var verified = 0
            for datagram in datagrams {
                // Retransmissions to the previous key may still arrive.
                guard case .mapRegister(let register) = try ControlMessage.decode(datagram), register.keyID == key.field else { continue }
                #expect(register.wantMapNotify)
                #expect(throws: Never.self) { try ControlAuthentication.verify(datagram, key: key) }
                #expect(throws: AuthenticationError.self) { try ControlAuthentication.verify(datagram, key: AuthenticationKey(algorithm: algorithm, password: "wrong")) }
                // The EID, with the default RLOC: the address toward the map-server.
                let record = try #require(register.records.first)
                #expect(record.eid == VSwiftLISPControl.EIDPrefix(instanceID: 1000, IPAddress("10.1.0.0")!, maskLength: 16))
                #expect(record.locators.map(\.address) == [LISPAddress(IPAddress("10.217.0.1")!)])
                verified += 1
            }
            #expect(verified >= 1, "key id \(keyID): \(datagrams.count) datagram(s), none a verified Map-Register; log: \(daemon.log.suffix(2000))")
            try daemon.ctl("del-map-server", "10.217.0.2")
        }
        // The map-server deleted last is told at once (RFC 9301 §5.6, §8.2: Record TTL 0, M clear),
        // authenticated with its Key ID 5, instead of keeping the EID for three minutes.
        let key5 = AuthenticationKey(algorithm: .hmacSHA256_128, keyID: 5, password: "lc-key-5")
        let withdrawals = try listener.receiveAll(idleTimeout: 3).filter { datagram in
            guard case .mapRegister(let register) = try ControlMessage.decode(datagram), register.keyID == key5.field,
                  !register.records.isEmpty, register.records.allSatisfy({ $0.ttl == 0 }) else { return false }
            #expect(!register.wantMapNotify)
            #expect(throws: Never.self) { try ControlAuthentication.verify(datagram, key: key5) }
            return true
        }
        #expect(withdrawals.count == 1, "log: \(daemon.log.suffix(2000))")
        let report = try daemon.ctl("show-lisp").stdout
        #expect(report.contains("sent: ") && report.contains("map-register="), "\(report)")
        #expect(!daemon.log.contains("lc-key-"))
        daemon.stop()
    }

    @Test("lc: the control socket opens with the configuration, survives a restart, closes with it; keys never shown")
    func socketFollowsConfiguration() throws {
        let topology = Topology()
        defer { topology.destroy() }
        let ns = try topology.namespace("lc1")
        let peer = try topology.namespace("lc2")
        try topology.veth("lc0", in: ns, "lc0p", in: peer)
        try run(["ip", "-n", ns, "addr", "add", "10.216.0.1/24", "dev", "lc0"])
        try run(["ip", "-n", peer, "addr", "add", "10.216.0.2/24", "dev", "lc0p"])
        let port: UInt16 = 14342
        let daemon = try Daemon(namespace: ns, extraArguments: ["--lisp-control-port", "\(port)"])
        #expect(try !portHeld(port, namespace: ns))
        #expect(try daemon.ctl("show-lisp").stdout == "LISP control: off (nothing configured)\n")

        try daemon.ctl("add-map-server", "10.216.0.2", "--key", "lc-secret-key", "--key-id", "1")
        #expect(try portHeld(port, namespace: ns))
        try daemon.ctl("add-map-resolver", "10.216.0.2")
        try daemon.ctl("add-eid", "1000", "10.1.0.0/16")
        try daemon.ctl("add-eid", "1000", "fd00:1::/48", "--rloc", "10.216.0.1,priority=2,weight=50")
        try daemon.ctl("add-map-cache", "1000", "10.2.0.0/16", "10.216.0.9,priority=1,weight=100")
        let refused = try daemon.ctl("add-eid", "1000", "10.1.0.0/16", check: false)
        #expect(refused.status == 1 && refused.stderr.contains("is already a local EID"))
        let bad = try daemon.ctl("add-map-server", "10.216.0.3", "--key", "k", "--key-id", "3", check: false)
        #expect(bad.status != 0 && bad.stderr.contains("--key-id without --algorithm must be 1"))

        let text = try daemon.ctl("show-lisp").stdout
        #expect(text.hasPrefix("LISP control: udp port \(port), IPv4 and IPv6\n"), "\(text)")
        #expect(text.contains("    Map-Server 10.216.0.2\n        key id: 0, algorithm: hmac-sha-1-96 (1)\n"))
        #expect(text.contains("    Map-Resolver 10.216.0.2\n"))
        // The default RLOC: the address the route toward the map-server leaves from.
        #expect(text.contains("    EID [1000] 10.1.0.0/16\n        rloc 10.216.0.1 priority 1 weight 100 (the host's address toward a map-server)\n"), "\(text)")
        #expect(text.contains("    EID [1000] fd00:1::/48\n        rloc 10.216.0.1 priority 2 weight 50\n"))
        #expect(text.contains("    Map-Cache [1000] 10.2.0.0/16 (static)\n"))
        let json = try daemon.ctl("show-lisp", "--json").stdout
        #expect(try JSONValue.parse(Array(json.utf8))?.decode(ShowLISPReport.self).controlPort == port)
        for output in [text, json, try daemon.ctl("show").stdout, try daemon.ctl("dump-map-cache", "--json").stdout, daemon.log] {
            #expect(!output.contains("lc-secret-key"))
        }
        #expect(try fileText(daemon.dbPath)?.contains("lc-secret-key") == true)

        // A restart brings it all back, socket included.
        daemon.stop()
        #expect(try !portHeld(port, namespace: ns))
        let again = try Daemon(namespace: ns, freshConfiguration: false, extraArguments: ["--lisp-control-port", "\(port)"])
        #expect(try portHeld(port, namespace: ns))
        #expect(try again.ctl("show-lisp").stdout.contains("    Map-Server 10.216.0.2\n        key id: 0, algorithm: hmac-sha-1-96 (1)\n"))

        // The socket closes with the last item.
        try again.ctl("del-map-server", "10.216.0.2")
        try again.ctl("del-map-resolver", "10.216.0.2")
        try again.ctl("del-eid", "1000", "10.1.0.0/16")
        try again.ctl("del-eid", "1000", "fd00:1::/48")
        #expect(try portHeld(port, namespace: ns))
        try again.ctl("del-map-cache", "1000", "10.2.0.0/16")
        #expect(try !portHeld(port, namespace: ns))
        #expect(try again.ctl("show-lisp").stdout == "LISP control: off (nothing configured)\n")
        again.stop()
    }
}
}
