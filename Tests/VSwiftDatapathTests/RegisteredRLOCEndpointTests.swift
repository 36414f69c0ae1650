import Testing
import VSwiftMapCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// Where the underlay is for `remote_ip=map` ports without any route: each local RLOC we register
/// is an underlay endpoint on the device holding it (`RegisteredRLOCEndpoints`), so first contact
/// works in each family we registered an RLOC in, whatever family the mapping system is reached over.
@Suite("Registered local RLOCs are underlay endpoints")
struct RegisteredRLOCEndpointTests {
    static let iid: UInt32 = 1000
    static let unknownSite6 = IPAddress("2001:db8::77")!

    @Test func eachRegisteredRLOCIsAnEndpointOnTheDeviceHoldingIt() {
        let egress: [UInt32: TunnelResolver.Egress] = [
            7: .init(port: 3, bridge: .unbridged, name: "ul0", checksumOffload: false),
            9: .init(port: 5, bridge: 2, name: "br1", checksumOffload: false),
        ]
        let devices: [(address: IPAddress, ifindex: UInt32)] = [
            (IPAddress("192.0.2.1")!, 7), (IPAddress("2001:db8::1")!, 7), (IPAddress("198.51.100.1")!, 9),
            (IPAddress("203.0.113.1")!, 4),  // a device vswift does not drive
        ]
        let rlocs = ["2001:db8::1", "192.0.2.1", "198.51.100.1", "203.0.113.1", "192.0.2.99", "192.0.2.1"].map { IPAddress($0)! }
        let endpoints = RegisteredRLOCEndpoints.endpoints(for: rlocs, addressDevices: devices, egress: egress)
        #expect(endpoints == [
            UnderlayEndpoint(localRLOC: IPAddress("2001:db8::1")!, port: 3, bridge: .unbridged),
            UnderlayEndpoint(localRLOC: IPAddress("192.0.2.1")!, port: 3, bridge: .unbridged),
            // A bridge's internal port holds it: the bridge is the underlay (its uplink included).
            UnderlayEndpoint(localRLOC: IPAddress("198.51.100.1")!, port: 5, bridge: 2),
        ])
        // Bounded, whatever is configured.
        let many = (0..<100).map { IPAddress(ipv4: 0xc000_0200 + UInt32($0)) }
        let bounded = RegisteredRLOCEndpoints.endpoints(for: many, addressDevices: many.map { (address: $0, ifindex: UInt32(7)) }, egress: egress)
        #expect(bounded.count == RegisteredRLOCEndpoints.maxEndpoints)
    }

    /// `inner` as IPv6 LISP from `source` to the harness's IPv6 local RLOC.
    func lisp6(_ inner: [UInt8], source: IPAddress) -> [UInt8] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512 + inner.count, alignment: 64)
        defer { buffer.deallocate() }
        var start = buffer + 256
        inner.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var length = inner.count
        var parameters = PipelineHarness.encapsulationToHarness
        parameters.source = source
        parameters.destination = PipelineHarness.localRLOC6
        _ = LISP.encapsulate(&start, length: &length, headroom: 256, instanceID: Self.iid, parameters: parameters, ipIdentification: 7)
        return Array(UnsafeRawBufferPointer(start: start, count: length))
    }

    func harness(registered: [IPAddress]) throws -> PipelineHarness {
        let h = try PipelineHarness(packets: [lisp6(udpFrame(), source: Self.unknownSite6)],
                                    rules: try rules(["in_port=2,actions=output:1"]), tunnel: .decapsulate)
        // Only IPv4 is known (the mapping system's family): no IPv6 route, so no IPv6 route endpoint.
        h.useMapCache(instanceID: Self.iid, rlocs: [IPAddress("192.0.2.2")!], encapsulating: false, registered: registered)
        return h
    }

    /// First contact over IPv6 with an IPv4-only mapping system: LISP to our registered IPv6 RLOC
    /// from a site not in the map-cache is refused as `unknown_rloc` and its source EID asked about
    /// (RFC 9301 §5.3: a Map-Request for it), instead of passing as a tenant's frame.
    @Test func firstContactOverIPv6IsHeardAtARegisteredRLOC() throws {
        let without = try harness(registered: [])
        _ = without.run(packets: 2)
        #expect(without.tunnelStatistics.refusedOffUnderlay == 2)
        #expect(without.tunnelStatistics.droppedUnknownRLOC == 0)

        let h = try harness(registered: [PipelineHarness.localRLOC6])
        _ = h.run(packets: 3)
        #expect(h.tunnelStatistics.refusedOffUnderlay == 0)
        #expect(h.tunnelStatistics.droppedUnknownRLOC == 3)
        var misses: [MapCacheMiss] = []
        #expect(h.drainMapCacheMisses(into: &misses) == 3)
        #expect(misses.allSatisfy {
            $0 == MapCacheMiss(instanceID: Self.iid, destination: IPAddress("10.1.1.20")!, source: IPAddress("10.1.1.30")!)
        })
        #expect(h.accounting().isConsistent)
    }
}
