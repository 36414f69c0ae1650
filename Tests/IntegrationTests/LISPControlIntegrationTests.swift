import Foundation
import Glibc
import Testing
import VSwiftControl
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
        #expect(bad.status != 0 && bad.stderr.contains("--key-id must be 1"))

        let text = try daemon.ctl("show-lisp").stdout
        #expect(text.hasPrefix("LISP control: udp port \(port), IPv4 and IPv6\n"), "\(text)")
        #expect(text.contains("    Map-Server 10.216.0.2\n        key id: 1 (hmac-sha-1-96)\n"))
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
        #expect(try again.ctl("show-lisp").stdout.contains("    Map-Server 10.216.0.2\n        key id: 1 (hmac-sha-1-96)\n"))

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
