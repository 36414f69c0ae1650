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
            try Self.configure(datapath, access: "s0", underlay: "u0", remote: Self.localB, lisp: lisp, towardWire: true)
        }
        do {
            second = try VSwiftSwitch.makeDatapath(namespace: namespaceB, cpu: secondCPU, bpfDirectory: bpfDirectory) { datapath in
                try Self.configure(datapath, access: "s1", underlay: "u1", remote: Self.localA, lisp: lisp, towardWire: false)
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

    /// One switch of the pair: bridge br0 with the access port (OpenFlow 1) and the wire (2) — the
    /// LISP port over `underlay` toward `remote`, or `underlay` itself as a port — and one rule
    /// forwarding 1 → 2 (`towardWire`) or 2 → 1.
    private static func configure(_ datapath: Datapath, access: String, underlay: String, remote: String,
                                  lisp: Bool, towardWire: Bool) throws {
        try datapath.addBridge("br0")
        try datapath.addPort(access, bridge: "br0")
        let wire: String
        if lisp {
            try datapath.addUnderlay(underlay)
            try datapath.addTunnelPort("lisp0", bridge: "br0", options: LISPPortOptions(remote: .address(IPAddress(remote)!)))
            wire = "lisp0"
        } else {
            try datapath.addPort(underlay, bridge: "br0")
            wire = underlay
        }
        try datapath.setPortNumbers(bridge: "br0", [access: 1, wire: 2, "br0": 65534])
        try datapath.setFlowTable(bridge: "br0", rules: towardWire ? VSwiftSwitch.tunnelRules(in: 1, out: 2)
                                                                   : VSwiftSwitch.tunnelRules(in: 2, out: 1))
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
