import Foundation
import Glibc
import Logging
import Synchronization
import Testing
import VSwiftLISPAgent
import VSwiftMapCache
import VSwiftPacket
import VSwiftProtocol
import VSwiftTesting
@testable import VSwiftControl

/// Stands in for the datapath: records what is published and hands out queued misses.
final class RecordingPublisher: MapCachePublishing {
    struct State {
        var published = 0
        var pendingMisses: [MapCacheMiss] = []
        var drained = 0
        var registeredRLOCs: [IPAddress] = []
    }

    let state = Mutex(State())

    func publishMapCache(_ snapshot: MapCacheSnapshot) {
        state.withLock { $0.published += 1 }
    }

    func setRegisteredRLOCs(_ addresses: [IPAddress]) {
        state.withLock { $0.registeredRLOCs = addresses }
    }

    func drainMapCacheMisses(into misses: inout [MapCacheMiss], limit: Int) -> Int {
        state.withLock { state in
            let moved = state.pendingMisses.prefix(limit)
            misses.append(contentsOf: moved)
            state.pendingMisses.removeFirst(moved.count)
            state.drained += moved.count
            return moved.count
        }
    }
}

/// The LISP control thread and its socket on the loopback device (no root needed: port 0 lets the
/// kernel choose a free port).
@Suite(.serialized) struct LISPControlServiceTests {
    let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func settings(resolvers: [String] = [], servers: [String] = [], hasMapPorts: Bool = false) throws -> LISPControlSettings {
        var saved = LISPSavedConfig()
        saved.mapResolvers = resolvers
        saved.mapServers = servers.map { AddMapServerParams(address: $0, key: "k", keyID: 2) }
        return LISPControlSettings(config: try ValidatedLISPConfig(saved), hasMapPorts: hasMapPorts)
    }

    /// Sends `bytes` over UDP from a new socket of `family` to the loopback address at `port`.
    func sendUDP(_ bytes: [UInt8], port: UInt16, ipv4: Bool) throws {
        let fd = socket(ipv4 ? AF_INET : AF_INET6, Int32(SOCK_DGRAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var sent = -1
        if ipv4 {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            sent = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        } else {
            var address = LISPControlSocket.socketAddress(IPAddress("::1")!, port: port)
            sent = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        try #require(sent == bytes.count, "sendto: \(String(cString: strerror(errno)))")
    }

    /// Whether the loopback device has ::1 (containers without IPv6 have none): the IPv6 halves
    /// of these tests need it.
    static let hasIPv6Loopback = UnderlaySourceAddress.toward(IPAddress("::1")!) == IPAddress("::1")

    /// Polls `condition` for up to 5 s.
    func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test func socketIsDualStackAndBounded() throws {
        let socket = try LISPControlSocket(port: 0)
        #expect(socket.port != 0)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: LISPControlSocket.maxDatagram + 1, alignment: 16)
        defer { buffer.deallocate() }
        let v6 = Self.hasIPv6Loopback
        try sendUDP([1, 2, 3], port: socket.port, ipv4: true)
        try sendUDP([4, 5], port: socket.port, ipv4: !v6)
        try sendUDP([UInt8](repeating: 7, count: 9001), port: socket.port, ipv4: true)
        try sendUDP([UInt8](repeating: 8, count: 9000), port: socket.port, ipv4: !v6)
        var received: [(Int, IPAddress)] = []
        var oversized = 0
        for _ in 0..<200 where received.count + oversized < 4 {
            switch socket.receive(into: buffer) {
            case .datagram(let length, let source, _): received.append((length, source))
            case .oversized: oversized += 1
            case .empty: usleep(10_000)
            case .failed(let error): Issue.record("recvfrom: \(error)")
            }
        }
        // An IPv4 peer arrives IPv4-mapped: the `IPAddress` of 127.0.0.1 itself.
        let other = IPAddress(v6 ? "::1" : "127.0.0.1")!
        #expect(received.map(\.1) == [IPAddress("127.0.0.1")!, other, other])
        #expect(received.map(\.0) == [3, 2, 9000])
        #expect(oversized == 1)
        #expect(socket.send([9], to: IPAddress("127.0.0.1")!, port: 9) == nil)
        // A second socket on the same port is refused with a clear error.
        #expect(throws: LISPControlSocket.OpenError.self) { try LISPControlSocket(port: socket.port) }
    }

    @Test func defaultRLOCIsTheSourceTowardTheMapServer() throws {
        #expect(UnderlaySourceAddress.toward(IPAddress("127.0.0.1")!) == IPAddress("127.0.0.1"))
        #expect(UnderlaySourceAddress.toward(IPAddress("127.0.0.2")!) == IPAddress("127.0.0.1"))
        // Only concrete RLOCs reach the control plane: without a default one the EID waits.
        var configuration = LISPControlConfiguration()
        configuration.localEIDs = [
            LocalEIDConfiguration(prefix: EIDPrefix(instanceID: 1, "10.1.0.0/16")!),
            LocalEIDConfiguration(prefix: EIDPrefix(instanceID: 1, "10.2.0.0/16")!, rlocs: [LocalRLOCConfiguration(address: IPAddress("192.0.2.1")!, priority: 3, weight: 7)]),
        ]
        let none = LISPControlThread.effective(configuration, defaultRLOCs: [])
        #expect(none.localEIDs == [configuration.localEIDs[1]])
        let filled = LISPControlThread.effective(configuration, defaultRLOCs: [IPAddress("198.51.100.1")!])
        #expect(filled.localEIDs[0].rlocs == [LocalRLOCConfiguration(address: IPAddress("198.51.100.1")!, priority: 1, weight: 100)])
        #expect(filled.localEIDs[1] == configuration.localEIDs[1])
        let servers = try ValidatedLISPConfig(LISPSavedConfig(
            mapServers: [AddMapServerParams(address: "127.0.0.1", key: "k", keyID: 2)], mapResolvers: ["::1"])).configuration
        let resolved = LISPControlThread.resolve(servers)
        #expect(resolved.defaults == [IPAddress("127.0.0.1")!])
        #expect(resolved.local == [IPAddress("127.0.0.1")!] + (Self.hasIPv6Loopback ? [IPAddress("::1")!] : []))
    }

    @Test func threadRunsWhileConfiguredAndCountsWhatArrives() async throws {
        let publisher = RecordingPublisher()
        let service = LISPControlService(port: 0, publisher: publisher, logger: logger)
        #expect(service.port == nil && service.status() == nil)
        try service.configure(settings(servers: ["127.0.0.1"]))
        let port = try #require(service.port)
        try sendUDP([0x80], port: port, ipv4: true)
        try sendUDP([UInt8](repeating: 0, count: 9500), port: port, ipv4: !Self.hasIPv6Loopback)
        #expect(await eventually { service.status()?.socket["datagrams_received"] == 1 && service.status()?.socket["oversized"] == 1 })
        let status = try #require(service.status())
        #expect(status.port == port)
        #expect(status.defaultRLOCs == [IPAddress("127.0.0.1")!])

        // Misses are drained only while a remote_ip=map port exists.
        publisher.state.withLock { $0.pendingMisses = (0..<300).map { MapCacheMiss(instanceID: 1, destination: IPAddress(ipv4: UInt32($0)), source: IPAddress("10.0.0.1")!) } }
        try await Task.sleep(for: .milliseconds(50))
        #expect(publisher.state.withLock { $0.drained } == 0)
        try service.configure(settings(servers: ["127.0.0.1"], hasMapPorts: true))
        #expect(await eventually { publisher.state.withLock { $0.drained } == 300 })
        #expect(await eventually { service.status()?.socket["misses"] == 300 })

        // Empty: the thread stops and the port is free again.
        try service.configure(LISPControlSettings())
        #expect(service.port == nil && service.status() == nil)
        let again = try LISPControlSocket(port: port)
        #expect(again.port == port)
    }

    @Test func staticEntriesArePublishedAndWithdrawn() async throws {
        let publisher = RecordingPublisher()
        let service = LISPControlService(port: 0, publisher: publisher, logger: logger)
        var saved = LISPSavedConfig()
        saved.mapCache = [EIDParams(instanceID: 1000, prefix: "10.2.0.0/16", rlocs: [RLOCParams(address: "192.0.2.20", priority: 1, weight: 100)])]
        try service.configure(LISPControlSettings(config: try ValidatedLISPConfig(saved)))
        #expect(await eventually { publisher.state.withLock { $0.published } >= 1 })
        let entries = try #require(service.status()?.report.mapCache)
        #expect(entries.map(\.eidPrefix) == ["10.2.0.0/16"] && entries.map(\.source) == ["static"] && entries.first?.ttlLeft == nil)
        // Changed RLOCs replace the entry.
        saved.mapCache[0].rlocs = [RLOCParams(address: "192.0.2.21", priority: 1, weight: 100)]
        try service.configure(LISPControlSettings(config: try ValidatedLISPConfig(saved)))
        #expect(await eventually { service.status()?.report.mapCache.first?.rlocs.map(\.address) == ["192.0.2.21"] })
        // Emptied: the workers get a version without it before the thread ends.
        let before = publisher.state.withLock { $0.published }
        try service.configure(LISPControlSettings())
        #expect(publisher.state.withLock { $0.published } > before)
    }

    @Test func switchServiceOpensAndClosesTheSocketWithTheConfiguration() async throws {
        let publisher = RecordingPublisher()
        let control = LISPControlService(port: 0, publisher: publisher, logger: logger)
        let service = SwitchService(datapath: FakeDatapath(devices: []), logger: logger, lispControl: control)
        func call(_ method: String, _ params: [String: JSONValue]) async -> Result<JSONValue, RPCError> {
            await service.handle(RPCRequest(id: 1, method: method, params: .object(params)))
        }
        _ = try await call("add-map-resolver", ["address": "127.0.0.1"]).get()
        let port = try #require(control.port)
        let report = try await call("show-lisp", [:]).get().decode(ShowLISPReport.self)
        #expect(report.controlPort == port)
        #expect(formatShowLISP(report).hasPrefix("LISP control: udp port \(port), IPv4 and IPv6\n"))
        _ = try await call("add-eid", ["instance_id": 5, "prefix": "10.5.0.0/16"]).get()
        // The default RLOC toward the resolver (no map-server) shows.
        let eids = try await call("show-lisp", [:]).get().decode(ShowLISPReport.self).localEIDs
        #expect(eids == [LocalEIDReport(instanceID: 5, prefix: "10.5.0.0/16", rlocs: [RLOCReport(address: "127.0.0.1", priority: 1, weight: 100)], defaultRLOCs: true)])
        #expect(try await call("dump-map-cache", [:]).get().decode(DumpMapCacheReport.self).entries.allSatisfy { $0.source != "map-reply" })
        // The RLOCs we register are the datapath's underlay endpoints for map ports: the default
        // one, and an IPv6 one given by hand, although the mapping system is reached over IPv4.
        #expect(await eventually { publisher.state.withLock { $0.registeredRLOCs } == [IPAddress("127.0.0.1")!] })
        _ = try await call("add-eid", ["instance_id": 5, "prefix": "fd00:5::/64", "rlocs": .array([.object(["address": "2001:db8::5", "priority": 1, "weight": 100])])]).get()
        #expect(await eventually {
            publisher.state.withLock { $0.registeredRLOCs } == [IPAddress("127.0.0.1")!, IPAddress("2001:db8::5")!]
        })
        _ = try await call("del-eid", ["instance_id": 5, "prefix": "fd00:5::/64"]).get()

        _ = try await call("del-eid", ["instance_id": 5, "prefix": "10.5.0.0/16"]).get()
        _ = try await call("del-map-resolver", ["address": "127.0.0.1"]).get()
        #expect(control.port == nil)
        #expect(publisher.state.withLock { $0.registeredRLOCs }.isEmpty)

        // A port someone else holds: the change is refused and nothing changes.
        let holder = try LISPControlSocket(port: 0)
        let blocked = LISPControlService(port: holder.port, publisher: publisher, logger: logger)
        let other = SwitchService(datapath: FakeDatapath(devices: []), logger: logger, lispControl: blocked)
        let refused = await other.handle(RPCRequest(id: 1, method: "add-map-resolver", params: ["address": "127.0.0.1"]))
        guard case .failure(let error) = refused else { Issue.record("add-map-resolver succeeded on a port in use"); return }
        #expect(error.message.contains("the LISP control socket cannot be opened: cannot bind UDP port \(holder.port)"))
        #expect(await other.configuration().lisp == nil)
    }
}
