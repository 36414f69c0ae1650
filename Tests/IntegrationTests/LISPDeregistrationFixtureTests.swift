import Foundation
import Glibc
import Testing
import VSwiftLISPAgent
import VSwiftLISPControl
import VSwiftMapCache
import VSwiftPacket
import VSwiftTesting

extension Integration {
/// The control plane's deregistration (RFC 9301 §5.6 Map-Register with Record TTL 0, §8.2)
/// against the test mapping system (Fixtures/lisp_mapping_system.py, a second reading of RFC
/// 9301): `XTRControlPlane` has no I/O, so the test carries its datagrams over a UDP socket in a
/// namespace. Registered, the EID's Map-Requests are forwarded to the ETR; withdrawn (the local
/// EID removed), the mapping system answers them itself (§8.2: a configured prefix nobody
/// registered, natively-forward). Namespaces and interfaces carry the prefix `dr`.
@Suite("LISP deregistration against the RFC 9301 test fixture")
struct LISPDeregistrationFixtureTests {
    static let serverV4 = "10.78.0.1", etrV4 = "10.78.0.2"
    static let key = AuthenticationKey(algorithm: .hmacSHA1_96, password: "dereg-secret")

    @Test("RFC 9301 §5.6, §8.2: a removed local EID is withdrawn at once (Map-Register, Record TTL 0), not left to the three-minute timeout")
    func removedEIDIsWithdrawn() throws {
        if !TestMachine.isCI && TestMachine.tool("python3") == nil { return }
        let topology = Topology()
        defer { topology.destroy() }
        let server = try topology.namespace("drmap")
        let client = try topology.namespace("drxtr")
        try topology.veth("dr0", in: server, "dr1", in: client)
        try run(["ip", "-n", server, "addr", "add", Self.serverV4 + "/24", "dev", "dr0"])
        try run(["ip", "-n", client, "addr", "add", Self.etrV4 + "/24", "dev", "dr1"])
        let fixture = try MappingSystemFixture(namespace: server, sites: ["d1,1,dereg-secret,1000:10.4.1.0/24,1000:10.4.2.0/24"])
        defer { fixture.stop() }
        let socket = try ControlSocket(namespace: client, ipv6: false, bindPort: 4342)
        let mapServer = IPAddress(Self.serverV4)!, rloc = IPAddress(Self.etrV4)!

        func configuration(_ prefixes: [String]) -> LISPControlConfiguration {
            LISPControlConfiguration(
                mapServers: [MapServerConfiguration(address: mapServer, key: Self.key)], mapResolvers: [mapServer],
                localEIDs: prefixes.map { LocalEIDConfiguration(prefix: VSwiftMapCache.EIDPrefix(instanceID: 1000, $0)!, rlocs: [LocalRLOCConfiguration(address: rloc)]) })
        }
        func send(_ datagrams: [OutgoingDatagram]) {
            for d in datagrams { #expect(socket.send(d.bytes, to: "\(d.destination)", port: d.destinationPort)) }
        }
        /// The next datagram that is not a Map-Notify (those go to the control plane).
        func exchange(_ plane: inout XTRControlPlane, now: Double) -> [UInt8]? {
            while let (payload, from) = socket.receive(timeout: 5) {
                if case .mapNotify? = try? ControlMessage.decode(payload) {
                    send(plane.receive(payload, from: IPAddress(from)!, sourcePort: 4342, now: now))
                    continue
                }
                return payload
            }
            return nil
        }

        var plane = XTRControlPlane(mapCacheCapacity: 16, now: 0)
        send(plane.apply(configuration(["10.4.1.0/24", "10.4.2.0/24"]), localRLOCs: [rloc], now: 0))
        // Registered: the Map-Notify verifies, and a Map-Request for 10.4.2.9 is forwarded to us.
        let request1 = try encapsulatedMapRequest(nonce: 0xd0_0001, iid: 1000, target: "10.4.2.9", itr: Self.etrV4)
        #expect(fixture.waitFor { $0["verdict"] as? String == "registered" } != nil, "\(fixture.logText)")
        socket.send(request1, to: Self.serverV4)
        let forwarded = exchange(&plane, now: 0.5)
        #expect(forwarded == request1, "\(fixture.logText)")
        #expect(plane.report(now: 0.5).registrations.first?.state == .registered)

        // 10.4.2.0/24 is no longer local: withdrawn (TTL 0), and the rest registered again.
        send(plane.apply(configuration(["10.4.1.0/24"]), localRLOCs: [rloc], now: 1))
        let withdrawal = fixture.waitFor { entry in
            (entry["records"] as? [[String: Any]])?.contains { $0["eid"] as? String == "[1000]10.4.2.0/24" && ($0["ttl"] as? Int) == 0 } ?? false
        }
        #expect(withdrawal?["verdict"] as? String == "registered", "\(fixture.logText)")
        #expect(withdrawal?["want-map-notify"] as? Bool == false)
        socket.send(try encapsulatedMapRequest(nonce: 0xd0_0002, iid: 1000, target: "10.4.2.9", itr: Self.etrV4), to: Self.serverV4)
        let answer = try #require(exchange(&plane, now: 1.5), "no answer:\n\(fixture.logText)")
        guard case .mapReply(let reply) = try ControlMessage.decode(answer) else {
            Issue.record("not a Map-Reply: \(answer)\n\(fixture.logText)")
            return
        }
        #expect(reply.nonce == 0xd0_0002)
        #expect(reply.records.first?.locators.isEmpty == true, "a negative reply: \(reply)")
        // 10.4.1.0/24 is still registered: forwarded as before.
        let request3 = try encapsulatedMapRequest(nonce: 0xd0_0003, iid: 1000, target: "10.4.1.9", itr: Self.etrV4)
        socket.send(request3, to: Self.serverV4)
        #expect(exchange(&plane, now: 2) == request3, "\(fixture.logText)")
        // Shutdown (an empty configuration) withdraws it too.
        send(plane.apply(LISPControlConfiguration(), localRLOCs: [], now: 3))
        #expect(fixture.waitFor { entry in
            (entry["records"] as? [[String: Any]])?.contains { $0["eid"] as? String == "[1000]10.4.1.0/24" && ($0["ttl"] as? Int) == 0 } ?? false
        } != nil, "\(fixture.logText)")
    }
}
}
