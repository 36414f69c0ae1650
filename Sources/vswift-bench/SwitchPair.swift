import Foundation
import Glibc
import VSwiftDatapath
import VSwiftPacket

/// Two vswift switches in a row, one Datapath each in its own namespace (Topology with two
/// switches), A's worker pinned to the switch CPU, B's to the second switch CPU — by default the
/// same one: with two CPUs and the generator on the other, they share it. Measured as one switch: both workers' CPU time, the sink's counts.
///
/// - `lisp`: A forwards s0 → lisp0 (encapsulate, out of the underlay u0), B receives on its
///   underlay u1, decapsulates, forwards lisp0 → s1. Underlay 198.19.2.1 (A) – 198.19.2.2 (B); A
///   knows B's MAC as a static neighbour.
/// - plain: the same two switches forwarding s0 → u0 and u1 → s1 as ordinary ports (the reference).
final class VSwiftPair: SwitchUnderTest {
    let name: String
    let pid = getpid()
    let first: Datapath
    let second: Datapath
    private(set) var threadIDs: [Int32] = []
    private var stopped = false

    static let localA = "198.19.2.1", localB = "198.19.2.2"

    init(topology: Topology, cpu: Int, secondCPU: Int, bpfDirectory: String, lisp: Bool) throws {
        guard let namespaceB = topology.secondSwitchNamespace else {
            throw BenchError.failed("the switch pair needs a topology with two switch namespaces")
        }
        let namespaceA = topology.switchNamespace
        name = lisp ? "vswift" : "vswift-p2p"
        let ip = systemTool("ip")
        if lisp {
            let u1 = try Threads.run(inNamespace: namespaceB) { try deviceIdentity("u1", namespace: namespaceB) }
            try runCommand([ip, "-n", namespaceA, "addr", "replace", Self.localA + "/24", "dev", "u0"])
            try runCommand([ip, "-n", namespaceA, "neigh", "replace", Self.localB, "lladdr", formatMACAddress(u1.mac),
                            "dev", "u0", "nud", "permanent"])
            try runCommand([ip, "-n", namespaceB, "addr", "replace", Self.localB + "/24", "dev", "u1"])
        }
        first = try VSwiftSwitch.makeDatapath(namespace: namespaceA, cpu: cpu, bpfDirectory: bpfDirectory) { datapath in
            try datapath.addBridge("br0")
            try datapath.addPort("s0", bridge: "br0")
            if lisp {
                try datapath.addUnderlay("u0")
                try datapath.addTunnelPort("lisp0", bridge: "br0", options: LISPPortOptions(remote: .address(IPAddress(Self.localB)!)))
                try datapath.setPortNumbers(bridge: "br0", ["s0": 1, "lisp0": 2, "br0": 65534])
            } else {
                try datapath.addPort("u0", bridge: "br0")
                try datapath.setPortNumbers(bridge: "br0", ["s0": 1, "u0": 2, "br0": 65534])
            }
            try datapath.setFlowTable(bridge: "br0", rules: VSwiftSwitch.tunnelRules(in: 1, out: 2))
        }
        do {
            second = try VSwiftSwitch.makeDatapath(namespace: namespaceB, cpu: secondCPU, bpfDirectory: bpfDirectory) { datapath in
                try datapath.addBridge("br0")
                try datapath.addPort("s1", bridge: "br0")
                if lisp {
                    try datapath.addUnderlay("u1")
                    try datapath.addTunnelPort("lisp0", bridge: "br0", options: LISPPortOptions(remote: .address(IPAddress(Self.localA)!)))
                    try datapath.setPortNumbers(bridge: "br0", ["s1": 1, "lisp0": 2, "br0": 65534])
                    try datapath.setFlowTable(bridge: "br0", rules: VSwiftSwitch.tunnelRules(in: 2, out: 1))
                } else {
                    try datapath.addPort("u1", bridge: "br0")
                    try datapath.setPortNumbers(bridge: "br0", ["u1": 1, "s1": 2, "br0": 65534])
                    try datapath.setFlowTable(bridge: "br0", rules: VSwiftSwitch.tunnelRules(in: 1, out: 2))
                }
            }
        } catch {
            first.shutdown()
            throw error
        }
        do {
            if lisp {
                try VSwiftSwitch.waitForNextHop(first)
                try VSwiftSwitch.waitForLocalAddress(second, Self.localB)
            }
            threadIDs = try VSwiftSwitch.workerThreads(of: first) + VSwiftSwitch.workerThreads(of: second)
        } catch {
            stop()
            throw error
        }
    }

    /// What B sent toward the sink.
    var transmittedToSink: UInt64 { second.statistics(port: "s1")?.txPackets ?? 0 }

    func stop() {
        guard !stopped else { return }
        stopped = true
        second.shutdown()
        first.shutdown()
    }
}
