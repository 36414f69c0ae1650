import Foundation
import Glibc
import Testing
import VSwiftLISPControl
import VSwiftPacket
import VSwiftTesting

/// Our LISP control codec (VSwiftLISPControl) against the test mapping system
/// (Fixtures/lisp_mapping_system.py), a second reading of RFC 9301 written without it: what our codec
/// builds, the fixture accepts; what the fixture sends, our codec decodes and authenticates; and
/// tshark (a third reading, Wireshark's dissector) finds nothing malformed in the exchange.
/// Namespaces and interfaces carry the prefix `ms`.
struct MappingSystemBench {
    let topology = Topology()
    let server: String, client: String
    static let serverV4 = "10.77.0.1", serverV6 = "fd77::1"
    static let etr1V4 = "10.77.0.2", etr1V6 = "fd77::2", etr2V4 = "10.77.0.3"

    init() throws {
        server = try topology.namespace("msmap")
        client = try topology.namespace("msxtr")
        try topology.veth("ms0", in: server, "ms1", in: client)
        for ns in [server, client] { try LISPHosts.enableIPv6(ns) }
        try run(["ip", "-n", server, "addr", "add", Self.serverV4 + "/24", "dev", "ms0"])
        try run(["ip", "-n", server, "addr", "add", Self.serverV6 + "/64", "dev", "ms0", "nodad"])
        try run(["ip", "-n", client, "addr", "add", Self.etr1V4 + "/24", "dev", "ms1"])
        try run(["ip", "-n", client, "addr", "add", Self.etr2V4 + "/24", "dev", "ms1"])
        try run(["ip", "-n", client, "addr", "add", Self.etr1V6 + "/64", "dev", "ms1", "nodad"])
    }
}

func eid(_ iid: UInt32?, _ text: String, _ length: UInt8) -> EIDPrefix {
    EIDPrefix(instanceID: iid, IPAddress(text)!, maskLength: length)
}
func rloc(_ text: String) -> LocatorRecord { LocatorRecord(address: LISPAddress(IPAddress(text)!), priority: 1, weight: 100) }

/// An ECM Map-Request (RFC 9301 §5.8, §5.2) for `target` from an ITR at `itr`.
func encapsulatedMapRequest(nonce: UInt64, iid: UInt32, target: String, itr: String) throws -> [UInt8] {
    let length: UInt8 = target.contains(":") ? 128 : 32
    let request = MapRequest(nonce: nonce, sourceEID: .none, itrRLOCs: [LISPAddress(IPAddress(itr)!)],
                             records: [eid(iid, target, length)])
    let ecm = EncapsulatedControlMessage(message: .mapRequest(request), innerSource: LISPAddress(IPAddress(itr)!),
                                         innerDestination: LISPAddress(IPAddress(target)!))
    return try ControlMessage.encapsulated(ecm).encoded()
}

extension Integration {
@Suite("MappingSystem: our codec against the RFC 9301 test fixture")
struct MappingSystemFixtureTests {
    static let key1 = AuthenticationKey(algorithm: .hmacSHA1_96, password: "site-one-secret")
    static let key2 = AuthenticationKey(algorithm: .hmacSHA256_128, password: "site-two-secret")
    static let sites = ["s1,1,site-one-secret,1000:10.3.1.0/24,1000:fd00:3:1::/48",
                        "s2,2,site-two-secret,1000:10.3.2.0/24"]

    @Test("RFC 9301 §5.6–5.8, §8.2–8.3: Map-Register (key ids 1 and 2, full and truncated MACs) → authenticated Map-Notify; ECM Map-Request → proxy Map-Reply, forwarded ECM, negative Map-Reply; a wrong key and garbage are refused and logged; tshark finds nothing malformed")
    func registerRequestReply() throws {
        if !TestMachine.isCI && TestMachine.tool("python3") == nil { return }
        let bench = try MappingSystemBench()
        defer { bench.topology.destroy() }
        let fixture = try MappingSystemFixture(namespace: bench.server, sites: Self.sites)
        defer { fixture.stop() }
        let capture = try ControlCapture(namespace: bench.server, interface: "ms0")
        let etr4 = try ControlSocket(namespace: bench.client, ipv6: false, bindPort: 4342)
        let etr6 = try ControlSocket(namespace: bench.client, ipv6: true, bindPort: 4342)

        // Site 1 registers over IPv4 with key id 1 (HMAC-SHA-1, the whole 20-byte digest), asking
        // for proxy replies, an IPv4 and an IPv6 EID prefix, with an xTR-ID.
        let identity = XTRIdentity(xtrIDHigh: 0x0123_4567_89ab_cdef, xtrIDLow: 0xfedc_ba98_7654_3210, siteID: 7)
        let site1Records = [
            MappingRecord(eid: eid(1000, "10.3.1.0", 24), ttl: 3, locators: [rloc(MappingSystemBench.etr1V4)]),
            MappingRecord(eid: eid(1000, "fd00:3:1::", 48), ttl: 3, locators: [rloc(MappingSystemBench.etr1V6)]),
        ]
        let register1 = MapRegister(nonce: 0x1111_2222_3333_4444, records: site1Records, proxyMapReply: true,
                                    wantMapNotify: true, xtrIdentity: identity)
        etr4.send(try register1.encoded(authenticatingWith: Self.key1), to: MappingSystemBench.serverV4)
        let notify1 = try #require(etr4.receive(timeout: 5), "no Map-Notify:\n\(fixture.logText)")
        #expect(notify1.from == MappingSystemBench.serverV4)
        guard case .mapNotify(let n1) = try ControlMessage.decode(notify1.payload) else {
            Issue.record("not a Map-Notify: \(notify1.payload)")
            return
        }
        #expect(n1.nonce == register1.nonce)
        #expect(n1.keyID == 1 && n1.authenticationData.count == 20)
        #expect(n1.records == site1Records)
        #expect(n1.xtrIdentity == identity)
        #expect(throws: Never.self) { try ControlAuthentication.verify(notify1.payload, key: Self.key1) }
        // The notify is refused under the other site's key: the MAC is the key's, not a checksum.
        #expect(throws: AuthenticationError.self) {
            try ControlAuthentication.verify(notify1.payload, key: AuthenticationKey(algorithm: .hmacSHA1_96, password: "x"))
        }

        // Site 2 registers over IPv6 with key id 2, once with the whole 32-byte digest, once with
        // the 16 bytes HMAC-SHA-256-128's name says; no proxy replies (Map-Requests go to its ETR).
        for length in [32, 16] {
            let key = AuthenticationKey(algorithm: .hmacSHA256_128, password: "site-two-secret", sentLength: length)
            let register2 = MapRegister(nonce: 0x5555_0000 + UInt64(length), records: [
                MappingRecord(eid: eid(1000, "10.3.2.0", 24), ttl: 3, locators: [rloc(MappingSystemBench.etr2V4)]),
            ], wantMapNotify: true)
            etr6.send(try register2.encoded(authenticatingWith: key), to: MappingSystemBench.serverV6)
            let notify2 = try #require(etr6.receive(timeout: 5), "no Map-Notify over IPv6:\n\(fixture.logText)")
            #expect(notify2.from == MappingSystemBench.serverV6)
            guard case .mapNotify(let n2) = try ControlMessage.decode(notify2.payload) else {
                Issue.record("not a Map-Notify: \(notify2.payload)")
                return
            }
            #expect(n2.nonce == register2.nonce && n2.keyID == 2 && n2.authenticationData.count == length)
            #expect(n2.xtrIdentity == nil)
            #expect(throws: Never.self) { try ControlAuthentication.verify(notify2.payload, key: key) }
        }

        // A wrong key: no Map-Notify, and the log says why.
        let forged = MapRegister(nonce: 0xbad0_0000_0000_0001, records: [site1Records[0]], wantMapNotify: true)
        etr4.send(try forged.encoded(authenticatingWith: AuthenticationKey(algorithm: .hmacSHA1_96, password: "wrong")),
                  to: MappingSystemBench.serverV4)
        #expect(etr4.receive(timeout: 1.5) == nil)
        #expect(fixture.waitFor { $0["nonce"] as? String == "bad0000000000001" && $0["reason"] as? String == "bad-mac" } != nil,
                "\(fixture.logText)")
        // Site 2's key on site 1's prefix: authenticated, but not its EID.
        let trespass = MapRegister(nonce: 0xbad0_0000_0000_0002, records: [site1Records[0]], wantMapNotify: true)
        etr4.send(try trespass.encoded(authenticatingWith: Self.key2), to: MappingSystemBench.serverV4)
        #expect(etr4.receive(timeout: 1.5) == nil)
        #expect(fixture.waitFor { $0["nonce"] as? String == "bad0000000000002" && $0["reason"] as? String == "eid-not-allowed" } != nil,
                "\(fixture.logText)")

        // Garbage and truncations are counted, and the fixture carries on.
        etr4.send([0x30, 0x01, 0x02], to: MappingSystemBench.serverV4)
        etr4.send([0x80, 0, 0, 0, 0x45], to: MappingSystemBench.serverV4)
        etr4.send(Array(try register1.encoded(authenticatingWith: Self.key1).dropLast(3)), to: MappingSystemBench.serverV4)

        // §8.2: site 1 asked for proxy replies: the Map-Server answers for it (A clear), at the
        // ITR-RLOC, with the registered record.
        etr4.send(try encapsulatedMapRequest(nonce: 0xaaaa_0001, iid: 1000, target: "10.3.1.77", itr: MappingSystemBench.etr1V4),
                  to: MappingSystemBench.serverV4)
        let reply = try #require(etr4.receive(timeout: 5), "no Map-Reply:\n\(fixture.logText)")
        guard case .mapReply(let r1) = try ControlMessage.decode(reply.payload) else {
            Issue.record("not a Map-Reply: \(reply.payload)")
            return
        }
        #expect(r1.nonce == 0xaaaa_0001)
        #expect(r1.records.count == 1)
        #expect(r1.records.first?.eid == eid(1000, "10.3.1.0", 24))
        #expect(r1.records.first?.locators.map(\.address) == [LISPAddress(IPAddress(MappingSystemBench.etr1V4)!)])
        #expect(r1.records.first?.authoritative == false)
        #expect(r1.records.first?.ttl == 3)

        // The same over IPv6: an IPv6 EID in an ECM with an IPv6 inner header, the reply to the
        // IPv6 ITR-RLOC.
        etr6.send(try encapsulatedMapRequest(nonce: 0xaaaa_0006, iid: 1000, target: "fd00:3:1::5", itr: MappingSystemBench.etr1V6),
                  to: MappingSystemBench.serverV6)
        let reply6 = try #require(etr6.receive(timeout: 5), "no Map-Reply over IPv6:\n\(fixture.logText)")
        guard case .mapReply(let r6) = try ControlMessage.decode(reply6.payload) else {
            Issue.record("not a Map-Reply: \(reply6.payload)")
            return
        }
        #expect(r6.nonce == 0xaaaa_0006)
        #expect(r6.records.first?.eid == eid(1000, "fd00:3:1::", 48))
        #expect(r6.records.first?.locators.map(\.address) == [LISPAddress(IPAddress(MappingSystemBench.etr1V6)!)])

        // §8.2: site 2 did not: the ECM goes on to its ETR (10.77.0.3), unchanged.
        let request2 = try encapsulatedMapRequest(nonce: 0xaaaa_0002, iid: 1000, target: "10.3.2.9", itr: MappingSystemBench.etr1V4)
        etr4.send(request2, to: MappingSystemBench.serverV4)
        let forwarded = try #require(etr4.receive(timeout: 5), "no forwarded ECM:\n\(fixture.logText)")
        #expect(forwarded.from == MappingSystemBench.serverV4)
        #expect(forwarded.payload == request2)
        guard case .encapsulated(let ecm) = try ControlMessage.decode(forwarded.payload) else {
            Issue.record("not an ECM: \(forwarded.payload)")
            return
        }
        #expect(ecm.mapRequest?.nonce == 0xaaaa_0002)
        #expect(fixture.waitFor { $0["dir"] as? String == "tx" && $0["peer"] as? String == "10.77.0.3:4342" } != nil)

        // §8.3: nobody registered 10.9.9.9: a negative reply, natively-forward, 15 minutes, for the
        // least specific prefix that covers it and no registered prefix (10.8.0.0/13: 10.0.0.0/12
        // would cover 10.3.1.0/24).
        etr4.send(try encapsulatedMapRequest(nonce: 0xaaaa_0003, iid: 1000, target: "10.9.9.9", itr: MappingSystemBench.etr1V4),
                  to: MappingSystemBench.serverV4)
        let negative = try #require(etr4.receive(timeout: 5), "no negative Map-Reply:\n\(fixture.logText)")
        guard case .mapReply(let r3) = try ControlMessage.decode(negative.payload) else {
            Issue.record("not a Map-Reply: \(negative.payload)")
            return
        }
        #expect(r3.nonce == 0xaaaa_0003)
        #expect(r3.records == [MappingRecord.negative(eid: eid(1000, "10.8.0.0", 13), ttl: 15, action: .nativelyForward)])

        fixture.stop()
        let refused = fixture.entries.compactMap { $0["verdict"] as? String == "refused" ? $0["reason"] as? String : nil }
        #expect(refused.sorted() == ["bad-mac", "eid-not-allowed", "truncated", "truncated", "truncated"], "\(fixture.logText)")
        let exit = try #require(fixture.entries.last { $0["event"] as? String == "exit" }, "\(fixture.logText)")
        let counters = (exit["counters"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.intValue ?? ($0 as? Int) }
        #expect(counters["registered"] == 3 && counters["sent-map-notify"] == 3 && counters["sent-map-reply"] == 3
                && counters["sent-ecm-map-request"] == 1, "\(counters)")

        // Wireshark's reading of the same exchange: each message named, nothing malformed.
        if let dissection = try capture.stop() {
            let info = dissection.summary
            for name in ["Map-Register", "Map-Notify", "Encapsulated Map-Request", "Map-Reply"] {
                #expect(info.contains(name), "\(name) missing:\n\(info)")
            }
            // The three garbage datagrams are the only malformed packets.
            let malformed = dissection.summary.split(separator: "\n").filter { $0.contains("Malformed") }
            #expect(malformed.count == 3, "\(info)")
            let good = dissection.summary.split(separator: "\n").filter { !$0.contains("Malformed") }
            #expect(good.count >= 14, "\(info)")
            #expect(!dissection.detail.contains("[incorrect"), "\(dissection.detail)")
        }
    }

    @Test("hostile input: 3,000 mutated and truncated messages are refused by reason, none crashes the fixture; registrations stop at the cap")
    func hostileInput() throws {
        if !TestMachine.isCI && TestMachine.tool("python3") == nil { return }
        let bench = try MappingSystemBench()
        defer { bench.topology.destroy() }
        let fixture = try MappingSystemFixture(namespace: bench.server, sites: Self.sites,
                                               extraArguments: ["--max-registrations", "8"])
        defer { fixture.stop() }
        let etr4 = try ControlSocket(namespace: bench.client, ipv6: false, bindPort: 4342)
        let valid = [
            try MapRegister(nonce: 1, records: [MappingRecord(eid: eid(1000, "10.3.1.0", 24), locators: [rloc(MappingSystemBench.etr1V4)])],
                            proxyMapReply: true).encoded(authenticatingWith: Self.key1),
            try encapsulatedMapRequest(nonce: 2, iid: 1000, target: "10.3.1.9", itr: MappingSystemBench.etr1V4),
            try encapsulatedMapRequest(nonce: 3, iid: 1000, target: "fd00:3:1::9", itr: MappingSystemBench.etr1V6),
        ]
        let seed = TestSeed.resolve(0x16f0_cafe)
        var random = SplitMix64(seed: seed)
        for _ in 0..<3000 {
            var bytes = valid[Int(random.next() % UInt64(valid.count))]
            for _ in 0...(random.next() % 3) {
                switch random.next() % 3 {
                case 0: bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count + 1))))
                default: bytes += random.bytes(Int(random.next() % 16) + 1)
                }
                if bytes.isEmpty { bytes = [0] }
            }
            etr4.send(bytes, to: MappingSystemBench.serverV4)
            if random.next() % 64 == 0 { usleep(2_000) } // let the fixture keep up (UDP drops what a full buffer cannot hold)
        }
        while etr4.receive(timeout: 1) != nil {} // replies to mutations that stayed valid
        // Twelve host prefixes of site 1 (more specifics of its 10.3.1.0/24): the cap of 8 holds.
        for n in 0..<12 {
            let register = MapRegister(nonce: 0x100 + UInt64(n), records: [
                MappingRecord(eid: eid(1000, "10.3.1.\(n)", 32), locators: [rloc(MappingSystemBench.etr1V4)]),
            ], wantMapNotify: true)
            etr4.send(try register.encoded(authenticatingWith: Self.key1), to: MappingSystemBench.serverV4)
            _ = etr4.receive(timeout: 0.5)
        }
        // Still answering.
        etr4.send(try encapsulatedMapRequest(nonce: 0xfeed, iid: 1000, target: "10.3.2.1", itr: MappingSystemBench.etr1V4),
                  to: MappingSystemBench.serverV4)
        var answered = false
        while let datagram = etr4.receive(timeout: 3) {
            if case .mapReply(let reply)? = try? ControlMessage.decode(datagram.payload), reply.nonce == 0xfeed { answered = true; break }
        }
        #expect(answered, "\(fixture.logText.suffix(3000))")
        fixture.stop()
        let exit = try #require(fixture.entries.last { $0["event"] as? String == "exit" }, "\(fixture.errorText)")
        let counters = (exit["counters"] as? [String: Any] ?? [:]).compactMapValues { ($0 as? NSNumber)?.intValue ?? ($0 as? Int) }
        #expect(counters["refused-internal-error"] == nil, "\(counters) \(TestSeed.replay(seed))")
        #expect((exit["registrations"] as? NSNumber)?.intValue ?? (exit["registrations"] as? Int) ?? 99 <= 8, "\(exit)")
        #expect((counters["refused-registrations-full"] ?? 0) >= 3, "\(counters)")
        let refusals = counters.filter { $0.key.hasPrefix("refused-") }.values.reduce(0, +)
        #expect(refusals > 1000, "\(counters) \(TestSeed.replay(seed))")
        #expect(fixture.errorText.isEmpty, "\(fixture.errorText)")
    }

    @Test("RFC 9301 §8.2–8.3: a registration not refreshed expires (timeout shortened to 2 s), then the site's prefix is answered natively-forward for 1 minute; a record TTL of 0 withdraws at once")
    func registrationsExpire() throws {
        if !TestMachine.isCI && TestMachine.tool("python3") == nil { return }
        let bench = try MappingSystemBench()
        defer { bench.topology.destroy() }
        let fixture = try MappingSystemFixture(namespace: bench.server, sites: Self.sites,
                                               extraArguments: ["--registration-timeout", "2"])
        defer { fixture.stop() }
        let etr4 = try ControlSocket(namespace: bench.client, ipv6: false, bindPort: 4342)
        func register(ttl: UInt32, nonce: UInt64) throws {
            let register = MapRegister(nonce: nonce, records: [
                MappingRecord(eid: eid(1000, "10.3.1.0", 24), ttl: ttl, locators: [rloc(MappingSystemBench.etr1V4)]),
            ], proxyMapReply: true, wantMapNotify: true)
            etr4.send(try register.encoded(authenticatingWith: Self.key1), to: MappingSystemBench.serverV4)
            #expect(etr4.receive(timeout: 5) != nil, "\(fixture.logText)")
        }
        func ask(_ nonce: UInt64) throws -> MappingRecord? {
            etr4.send(try encapsulatedMapRequest(nonce: nonce, iid: 1000, target: "10.3.1.1", itr: MappingSystemBench.etr1V4),
                      to: MappingSystemBench.serverV4)
            guard let reply = etr4.receive(timeout: 5), case .mapReply(let r) = try ControlMessage.decode(reply.payload) else { return nil }
            return r.records.first
        }
        try register(ttl: 3, nonce: 1)
        #expect(try ask(10)?.locators.isEmpty == false)
        #expect(fixture.waitFor(timeout: 6) { $0["event"] as? String == "expired" } != nil, "\(fixture.logText)")
        // §8.2: the site's configured prefix, nobody registered: natively-forward for a minute.
        #expect(try ask(11) == MappingRecord.negative(eid: eid(1000, "10.3.1.0", 24), ttl: 1, action: .nativelyForward))
        try register(ttl: 3, nonce: 2)
        #expect(try ask(12)?.locators.isEmpty == false)
        try register(ttl: 0, nonce: 3)
        #expect(try ask(13)?.locators.isEmpty == true)
    }
}
}

/// tcpdump on a namespace's interface (UDP 4342), then tshark's summary and `-V` detail of the file.
final class ControlCapture {
    let process = Process()
    let file: String

    init(namespace: String, interface: String) throws {
        file = "/tmp/\(namespace)-\(interface)-\(uniqueTag()).pcap"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ip", "netns", "exec", namespace, "tcpdump", "--immediate-mode", "-U", "-n", "-i", interface,
                             "-w", file, "udp", "port", "4342"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(700_000)
    }

    /// Stops the capture; nil when tshark is missing outside CI (under CI its absence is a failure).
    func stop() throws -> (summary: String, detail: String)? {
        usleep(300_000)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        defer { unlink(file) }
        guard TestMachine.tool("tshark") != nil else {
            if TestMachine.isCI { Issue.record("tshark is not installed") }
            return nil
        }
        let checks = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
        let summary = try run(["tshark", "-n", "-r", file] + checks).stdout
        let detail = try run(["tshark", "-n", "-V", "-r", file] + checks).stdout
        return (summary, detail)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
