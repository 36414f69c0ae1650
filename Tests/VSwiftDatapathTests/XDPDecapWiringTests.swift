import CXDP
import Glibc
import Testing
@testable import VSwiftDatapath
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket
import VSwiftTesting

/// Which LISP ports XDP may decapsulate for (`XDPFlowCacheLISPIngress`, pure): exactly those the
/// worker's `receiveTunnelled` would choose for a packet heard on an underlay device.
@Suite struct XDPFlowCacheLISPIngressTests {
    static let remote = IPAddress(ipv4: 0xc633_6402), local = IPAddress(ipv4: 0xc000_0201)
    static let underlays: [PortSlot: UInt32] = [4: 44]

    static func hop(remote: IPAddress = remote, egress: PortSlot = 4, bridge: BridgeSlot = .unbridged,
                    localRLOC: IPAddress = local) -> TunnelNextHop {
        var hop = TunnelNextHop(remote: remote, local: IPAddress(), udpPort: LISP.udpPort, status: .resolved)
        hop.egressPort = egress
        hop.egressBridge = bridge
        hop.localRLOC = localRLOC
        return hop
    }

    static func ports(_ ordered: [(PortSlot, LISPPortOptions)], _ hops: [TunnelNextHop]) -> [XDPDecapPort] {
        XDPFlowCacheLISPIngress.ports(ordered: ordered.map { (slot: $0.0, options: $0.1) }, nextHops: hops, underlays: underlays)
    }

    @Test func aFixedPortHeardOnAnUnderlayDeviceGetsItsEndpoint() throws {
        let result = Self.ports([(9, LISPPortOptions(remote: .address(Self.remote), key: .id(7)))], [Self.hop()])
        let port = try #require(result.first)
        #expect(result.count == 1)
        #expect(port.slot == 9 && port.underlay == 4)
        #expect(port.port.inPort == XDPFlowCacheTranslation.inPortID(9))
        #expect(port.port.key == 7 && port.port.remote == Self.remote)
        #expect(port.port.egress?.localRLOC == Self.local && port.port.egress?.ifindex == 44)
        let planned = XDPDecapEntries.plan(result.map(\.port))
        #expect(planned == [XDPDecapKey(ifindex: 44, localRLOC: Self.local, remoteRLOC: Self.remote, instanceID: 7):
                                XDPFlowCacheTranslation.inPortID(9)])
    }

    /// Trust boundary: XDP may unwrap only where the worker would (DESIGN.md, "Trust boundary:
    /// LISP decapsulation").
    @Test func portsTheWorkerHearsElsewhereOrPerSourceGetNone() {
        let fixed = LISPPortOptions(remote: .address(Self.remote), key: .id(7))
        // Through a bridge (port mode consults no decap entry), out of a bridge's device port, unresolved.
        #expect(Self.ports([(9, fixed)], [Self.hop(bridge: BridgeSlot(0))]).isEmpty)
        #expect(Self.ports([(9, fixed)], [Self.hop(egress: 5)]).isEmpty)
        #expect(Self.ports([(9, fixed)], [Self.hop(localRLOC: IPAddress())]).isEmpty)
        #expect(Self.ports([(9, fixed)], []).isEmpty)
        // remote_ip=flow / map: trust per source; key=flow: any instance id.
        #expect(Self.ports([(9, LISPPortOptions(remote: .flow, key: .id(7)))], [Self.hop()]).isEmpty)
        #expect(Self.ports([(9, LISPPortOptions(remote: .map, key: .id(7)))], [Self.hop()]).isEmpty)
        #expect(Self.ports([(9, LISPPortOptions(remote: .address(Self.remote), key: .flow))], [Self.hop()]).isEmpty)
        // local_ip the route does not use: the worker never hears it there.
        var other = fixed
        other.local = IPAddress(ipv4: 0xc000_0299)
        #expect(XDPDecapEntries.plan(Self.ports([(9, other)], [Self.hop()]).map(\.port)).isEmpty)
    }

    /// The worker's loop stops at the first fixed port whose remote and key match: a fixed
    /// key=flow port before a fixed key=7 port with the same remote takes every instance id.
    @Test func aKeyFlowPortFirstTakesEveryInstanceID() {
        let flowKey = LISPPortOptions(remote: .address(Self.remote), key: .flow)
        let seven = LISPPortOptions(remote: .address(Self.remote), key: .id(7))
        #expect(Self.ports([(8, flowKey), (9, seven)], [Self.hop()]).isEmpty)
        #expect(Self.ports([(9, seven), (8, flowKey)], [Self.hop()]).map(\.slot) == [9])
    }
}

/// The installer's side of the wiring (XDPFlowCacheInstaller+Decap.swift) with the real program
/// in underlay mode (BPF_PROG_RUN): decap entries follow the ports and the captures before the
/// call returns, a LISP port is an entry's input only while it has one, a worker's miss on a
/// decapsulated frame becomes an entry XDP hits, and the counts reach the ports.
@Suite(.serialized) struct XDPDecapWiringTests {
    static let remote = XDPDecapTests.remote4, local = XDPDecapTests.local4, instanceID = XDPDecapTests.instanceID
    static let lispSlot: PortSlot = 9, underlaySlot: PortSlot = 4, deviceSlot: PortSlot = 1

    final class Rig: XDPInstallerRig {
        let table: CompiledFlowTable

        /// The program in underlay mode on the underlay's slot; OpenFlow 1: the device (slot 1,
        /// lo); 2: the LISP port (slot 9).
        init() throws {
            let slots: [OpenFlowPortNumber: PortSlot] = [1: 1, 2: 9]
            table = try CompiledFlowTable(rules: try PipelineHarness.rules(["priority=10,in_port=2,ip,actions=output:1"]),
                                          portSlot: { slots[$0] })
            try super.init(outputs: [1], inPort: XDPDecapWiringTests.underlaySlot)
            try program.setUnderlay(address: XDPDecapWiringTests.local)
            publishPorts()
        }

        func publishPorts() {
            let lisp = LISPPortOptions(remote: .address(XDPDecapWiringTests.remote), key: .id(XDPDecapWiringTests.instanceID))
            let ports: [UInt32: XDPCachePortInfo] = [
                1: XDPCachePortInfo(cache: CachePort(kind: .device), slot: 1),
                2: XDPFlowCacheLISPEgress.portInfo(slot: 9, options: lisp, nextHops: [], redirectTargets: [1]),
            ]
            installer.refresh(bridge: 0, table: table, ports: ports, ofport: [1: 1, 9: 2])
        }

        func setDecap(_ on: Bool) {
            installer.setDecapPorts(on ? [XDPDecapPort(
                port: .init(inPort: XDPFlowCacheTranslation.inPortID(XDPDecapWiringTests.lispSlot), remote: XDPDecapWiringTests.remote,
                            key: XDPDecapWiringTests.instanceID, egress: (XDPDecapWiringTests.local, XDPDecapTests.ifindex)),
                slot: XDPDecapWiringTests.lispSlot, underlay: XDPDecapWiringTests.underlaySlot)] : [])
        }

        /// The worker decapsulated `outer` and its exact-match cache missed: the key it hands over
        /// (in_port = the LISP port's OpenFlow number, the tunnel words from the outer headers).
        func workerMiss(_ outer: [UInt8]) throws {
            var key = try #require(XDPDecapTests.worker(outer, remote: XDPDecapWiringTests.remote,
                                                        instanceID: XDPDecapWiringTests.instanceID)).key
            key.set(.inPort, 2)
            handOver(key, version: table.classifier.version)
        }
    }

    static func outer(from source: IPAddress = remote) throws -> [UInt8] {
        let inner = Build.ethernet(dst: 0x5254_0000_0002, src: 0x5254_0000_0001, type: 0x0800,
                                   Build.ipv4(src: 0x0a01_0114, dst: 0x0a01_011e, proto: 17, Build.udp(src: 1, dst: 2, Array("h17j decap".utf8))))
        return try #require(XDPDecapTests.encapsulate(inner, source: source, destination: local, instanceID: instanceID))
    }

    @Test func aDecapsulatedFlowIsCachedHitInXDPAndCountedOnItsPorts() throws {
        let rig = try Rig()
        let outer = try Self.outer()
        let inner = try #require(XDPDecapTests.worker(outer, remote: Self.remote, instanceID: Self.instanceID)).frame

        // Without a decap entry the LISP port is no input: the worker's miss is refused.
        try rig.workerMiss(outer)
        #expect(rig.installer.entryCount == 0)
        #expect(rig.installer.statistics.notCacheable == 1)

        // The key waits: the worker decapsulates as soon as the next hop is published, before the
        // installer's sync gives the port its entry, and its exact-match cache would not miss again.
        rig.setDecap(true)
        #expect(rig.installer.decapEntrySnapshot.values.map { $0 } == [Self.lispSlot])
        #expect(rig.installer.entryCount == 1, "the waiting key installed with the decap entry: \(rig.installer.statistics)")
        try rig.workerMiss(outer)
        #expect(rig.installer.entryCount == 1, "in_port = the LISP port, now an input: \(rig.installer.statistics)")
        var result = try rig.run(outer)
        #expect(result.action == XDPTestRun.redirect, "decapsulated and output in XDP")
        #expect(result.frame == inner, "the worker's decapsulation, byte for byte")
        // A stranger RLOC's packet stays on the workers (which refuse and count it).
        let stranger = try Self.outer(from: XDPDecapTests.stranger4)
        #expect(try rig.run(stranger).frame == stranger)
        #expect(try rig.run(stranger).action == XDPTestRun.pass)

        rig.installer.runOnce(fold: true)
        let counters = rig.installer.counters
        #expect(counters.decapsulated[Int(Self.lispSlot.rawValue)] == 1)
        #expect(counters.ports[Int(Self.lispSlot.rawValue)].rxPackets == 1, "the LISP port's rx, from the megaflow entry")
        #expect(counters.ports[Int(Self.lispSlot.rawValue)].rxBytes == UInt64(inner.count))
        #expect(counters.ports[Int(Self.underlaySlot.rawValue)].rxPackets == 1)
        #expect(counters.ports[Int(Self.underlaySlot.rawValue)].rxBytes == UInt64(outer.count), "the outer frame's length")
        #expect(counters.ports[Int(Self.deviceSlot.rawValue)].txPackets == 1)

        // Removed (the port deleted, its remote changed): out of the map when the call returns,
        // the last counts folded, and the port's entries gone with it.
        result = try rig.run(outer)
        #expect(result.action == XDPTestRun.redirect)
        rig.setDecap(false)
        #expect(rig.installer.decapEntrySnapshot.isEmpty)
        #expect(rig.installer.entryCount == 0)
        #expect(counters.decapsulated[Int(Self.lispSlot.rawValue)] == 2, "the deleted entry's last count folded")
        #expect(try rig.run(outer).frame == outer, "nothing decapsulated after the change returned")
    }

    /// A capture on the LISP port or on the underlay device must see the outer frames and the
    /// workers' decapsulation: its decap entry goes before setCapturing returns.
    @Test(arguments: [XDPDecapWiringTests.lispSlot, XDPDecapWiringTests.underlaySlot])
    func aCaptureTakesTheDecapEntryAway(on slot: PortSlot) throws {
        let rig = try Rig()
        let outer = try Self.outer()
        rig.setDecap(true)
        try rig.workerMiss(outer)
        #expect(try rig.run(outer).action == XDPTestRun.redirect)
        rig.installer.setCapturing(slot, true)
        #expect(rig.installer.decapEntrySnapshot.isEmpty)
        #expect(try rig.run(outer).frame == outer, "the capture sees every outer frame")
        try rig.workerMiss(outer)
        #expect(rig.installer.entryCount == 0, "no entry from a port XDP does not decapsulate for")
        rig.installer.setCapturing(slot, false)
        #expect(rig.installer.decapEntrySnapshot.count == 1)
        try rig.workerMiss(outer)
        #expect(try rig.run(outer).action == XDPTestRun.redirect)
    }
}
