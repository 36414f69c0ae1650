import Foundation
import Glibc

/// The bench's three hosts, as network namespaces named after this process:
///
///     vsb-gen-PID          vsb-sw-PID               vsb-sink-PID
///       g0  <--- veth --->  s0   [switch]   s1  <--- veth --->  k0
///
/// Every veth end has one rx and one tx queue (a frame reaches XDP only on an rx queue that exists on
/// the receiving end, and vswift opens one socket per rx queue). IPv6 is off in all three, so no
/// router solicitations or MLD reports mix with the measured traffic; no end has an IP address.
/// Deleting a namespace deletes the veth ends in it, and with them their peers.
///
/// With two switches (the LISP round trip) switch A keeps s0 and switch B gets s1, joined by an
/// underlay veth:
///
///     vsb-gen-PID      vsb-sw-PID                  vsb-sw2-PID                vsb-sink-PID
///       g0 <-> s0 [switch A] u0  <--- veth --->  u1 [switch B] s1  <--- veth --->  k0
final class Topology {
    static let prefix = "vsb-"
    let generator: String
    /// Switch A's namespace (the only switch's with one switch).
    let switchNamespace: String
    /// Switch B's namespace with two switches; nil with one.
    let secondSwitchNamespace: String?
    let sink: String
    private var created: [String] = []
    private let ip = systemTool("ip")

    init(pid: Int32 = getpid(), switches: Int = 1) {
        generator = "\(Self.prefix)gen-\(pid)"
        switchNamespace = "\(Self.prefix)sw-\(pid)"
        secondSwitchNamespace = switches > 1 ? "\(Self.prefix)sw2-\(pid)" : nil
        sink = "\(Self.prefix)sink-\(pid)"
    }

    var namespaces: [String] { [generator, switchNamespace] + (secondSwitchNamespace.map { [$0] } ?? []) + [sink] }

    /// The namespace holding s1, the port toward the sink.
    var sinkSideSwitchNamespace: String { secondSwitchNamespace ?? switchNamespace }

    func create() throws {
        for name in namespaces {
            try runCommand([ip, "netns", "add", name])
            created.append(name)
            try runCommand([ip, "netns", "exec", name, systemTool("sysctl"), "-q", "-w",
                            "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
        }
        try addVethPair("g0", in: generator, peer: "s0", in: switchNamespace)
        var devices = [("g0", generator), ("s0", switchNamespace), ("s1", sinkSideSwitchNamespace), ("k0", sink)]
        if let secondSwitchNamespace {
            try addVethPair("u0", in: switchNamespace, peer: "u1", in: secondSwitchNamespace)
            devices += [("u0", switchNamespace), ("u1", secondSwitchNamespace)]
        }
        try addVethPair("s1", in: sinkSideSwitchNamespace, peer: "k0", in: sink)
        for (device, namespace) in devices {
            try runCommand([ip, "-n", namespace, "link", "set", device, "up"])
        }
    }

    private func addVethPair(_ a: String, in nsA: String, peer b: String, in nsB: String) throws {
        try runCommand([ip, "link", "add", a, "numtxqueues", "1", "numrxqueues", "1", "netns", nsA,
                        "type", "veth", "peer", "name", b, "numtxqueues", "1", "numrxqueues", "1", "netns", nsB])
    }

    /// Deletes the namespaces this object created (and so their veths). Safe to call twice.
    /// Explicit, not a `deinit`: the namespaces are system state, not memory, and must go at a known
    /// point of the run (before the report, and from the signal path), whoever still holds the object.
    func destroy() {
        for name in created.reversed() {
            _ = try? runCommand([ip, "netns", "del", name])
        }
        created = []
    }

    /// Deletes namespaces left behind by bench processes that no longer exist (killed with SIGKILL).
    static func removeStale() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/run/netns") else { return }
        for name in entries where name.hasPrefix(prefix) {
            guard let dash = name.lastIndex(of: "-"), let pid = Int32(name[name.index(after: dash)...]) else { continue }
            if pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
                _ = try? runCommand([systemTool("ip"), "netns", "del", name])
            }
        }
    }
}
