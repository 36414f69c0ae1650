import Foundation
import Glibc

/// One VXLAN tunnel end of an OVS instance, in the tunnel scenarios: which AF_XDP device is on the
/// overlay bridge br0 (beside vxlan0) and which on the underlay bridge br-ul, the local address
/// (on br-ul's internal port) and the far end's.
struct VXLANLeg {
    enum Direction { case encap, decap }
    var direction: Direction
    var overlayDevice: String
    var underlayDevice: String
    var local: String
    var remote: String
    /// encap: the far end's MAC, set as a static tunnel neighbour (nobody answers ARP on the underlay).
    var remoteMAC: [UInt8] = []

    /// The single-switch scenarios: the same addresses as vswift's LISP runs. encap: s0 → vxlan0,
    /// out of s1 to the sink; decap: the generator's VXLAN arrives on s0, vxlan0 → s1.
    static func forScenario(_ tunnel: TunnelScenario, sinkMAC: [UInt8]) -> VXLANLeg? {
        switch tunnel {
        case .encap:
            return VXLANLeg(direction: .encap, overlayDevice: "s0", underlayDevice: "s1",
                            local: VSwiftSwitch.encapLocal, remote: VSwiftSwitch.encapRemote, remoteMAC: sinkMAC)
        case .decap:
            return VXLANLeg(direction: .decap, overlayDevice: "s1", underlayDevice: "s0",
                            local: VSwiftSwitch.decapLocal, remote: VSwiftSwitch.decapRemote)
        case .none, .roundtrip:
            return nil
        }
    }
}

/// The round trip through OVS: two ovs-vswitchd, one per switch namespace, each with its own
/// private directory, A's PMD on the switch CPU and B's on the second switch CPU (by default the
/// same: like vswift's pair, they share it). A
/// encapsulates s0 → vxlan0 and sends the VXLAN frames out of u0 (198.19.2.1); B receives them on
/// u1 (198.19.2.2, br-ul with u1's MAC), pops the tunnel and forwards vxlan0 → s1. Measured as
/// one switch: both PMDs' CPU time.
final class OVSPair: SwitchUnderTest {
    let name = "ovs-vxlan"
    let first: OVSSwitch
    let second: OVSSwitch
    private var stopped = false

    init(topology: Topology, cpu: Int, secondCPU: Int, helperCPU: Int) throws {
        guard let namespaceB = topology.secondSwitchNamespace else {
            throw BenchError.failed("the OVS pair needs a topology with two switch namespaces")
        }
        let u1 = try Threads.run(inNamespace: namespaceB) { try deviceIdentity("u1", namespace: namespaceB) }
        let legA = VXLANLeg(direction: .encap, overlayDevice: "s0", underlayDevice: "u0",
                            local: VSwiftPair.localA, remote: VSwiftPair.localB, remoteMAC: u1.mac)
        let legB = VXLANLeg(direction: .decap, overlayDevice: "s1", underlayDevice: "u1",
                            local: VSwiftPair.localB, remote: VSwiftPair.localA)
        first = try OVSSwitch(namespace: topology.switchNamespace, cpu: cpu, helperCPU: helperCPU, rules: 0, vxlan: legA, instance: "a")
        do {
            second = try OVSSwitch(namespace: namespaceB, cpu: secondCPU, helperCPU: helperCPU, rules: 0, vxlan: legB, instance: "b")
        } catch {
            first.stop()
            throw error
        }
    }

    var pid: Int32 { first.pid }
    var threadIDs: [Int32] { first.threadIDs + second.threadIDs }
    var measuredThreads: [(pid: Int32, tid: Int32)] { first.measuredThreads + second.measuredThreads }
    var stopNotes: [String] { first.stopNotes + second.stopNotes }
    func transmitted() -> UInt64? { second.transmitted() }
    func upcalls() -> OVSUpcalls? {
        guard let a = first.upcalls(), let b = second.upcalls() else { return nil }
        return OVSUpcalls(succeeded: a.succeeded + b.succeeded, failed: a.failed + b.failed)
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        second.stop()
        first.stop()
    }
}

/// Upcall counts of OVS's PMD threads (summed), see OVSSwitch.upcalls().
struct OVSUpcalls: Equatable {
    var succeeded: UInt64
    var failed: UInt64

    init(succeeded: UInt64, failed: UInt64) {
        self.succeeded = succeeded
        self.failed = failed
    }

    /// From `ovs-appctl dpif-netdev/pmd-stats-show`; nil if it lists no PMD counters.
    init?(pmdStatistics text: String) {
        var succeeded: UInt64 = 0, failed: UInt64 = 0
        var found = false
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            for (label, isFailure) in [("miss with success upcall:", false), ("miss with failed upcall:", true)] where trimmed.hasPrefix(label) {
                guard let value = UInt64(trimmed.dropFirst(label.count).trimmingCharacters(in: .whitespaces)) else { continue }
                if isFailure { failed += value } else { succeeded += value }
                found = true
            }
        }
        guard found else { return nil }
        self.succeeded = succeeded
        self.failed = failed
    }
}
