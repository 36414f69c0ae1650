import VSwiftTesting

/// The topology the XDP flow cache's end-to-end suites share (names prefixed by each suite's
/// `prefix`): vswiftd with `--xdp-cache on` in namespace `<prefix>sw`, bridge `<prefix>br` with
/// ports 1 `<prefix>v0` and 2 `<prefix>v1`, veths to the hosts `<prefix>a` and `<prefix>b`, whose
/// eth0s are 02:00:00:<subnet>:00:01 with 10.<subnet>.0.1/24 and 02:00:00:<subnet>:00:02 with
/// 10.<subnet>.0.2/24. Flows: IP from port 1 to 2 and from 2 to 1, and a drop at priority 0. A
/// suite's `Rig` subclasses it with its own checks.
class XDPCacheTwoHosts {
    let topology = Topology()
    let sw: String, a: String, b: String
    let bridge: String
    let daemon: Daemon

    /// `gro`: GRO on the hosts' eth0s. XDP_REDIRECT into a veth is received by its peer only when
    /// the peer runs NAPI (GRO on, or an XDP program): otherwise the port is no redirect target.
    init(prefix: String, subnet: Int, gro: Bool) throws {
        sw = try topology.namespace(prefix + "sw")
        a = try topology.namespace(prefix + "a")
        b = try topology.namespace(prefix + "b")
        try topology.veth("eth0", in: a, prefix + "v0", in: sw)
        try topology.veth("eth0", in: b, prefix + "v1", in: sw)
        let hosts = [(a, 1), (b, 2)]
        for (ns, n) in hosts { try run(["ip", "-n", ns, "link", "set", "eth0", "address", Self.mac(subnet, n)]) }
        for (ns, n) in hosts { try run(["ip", "-n", ns, "addr", "add", Self.address(subnet, n) + "/24", "dev", "eth0"]) }
        for (ns, _) in hosts { try run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "gro", gro ? "on" : "off"]) }
        // No ARP through the switch: the flows carry IP only.
        for (ns, n) in hosts {
            try run(["ip", "-n", ns, "neigh", "replace", Self.address(subnet, 3 - n), "lladdr", Self.mac(subnet, 3 - n),
                     "dev", "eth0", "nud", "permanent"])
        }
        daemon = try Daemon(namespace: sw, extraArguments: ["--xdp-cache", "on"])
        bridge = prefix + "br"
        try daemon.ctl("add-br", bridge)
        try daemon.ctl("add-port", bridge, prefix + "v0")
        try daemon.ctl("add-port", bridge, prefix + "v1")
        try daemon.ctl("add-flow", bridge, "priority=10,in_port=1,ip,actions=output:2")
        try daemon.ctl("add-flow", bridge, "priority=10,in_port=2,ip,actions=output:1")
        // Never an empty table (a bridge without flows is a learning switch).
        try daemon.ctl("add-flow", bridge, "priority=0,actions=drop")
    }

    /// Host `n`'s MAC: the subnet's decimal digits as they read, e.g. 02:00:00:07:00:01.
    static func mac(_ subnet: Int, _ n: Int) -> String {
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "02:00:00:\(two(subnet)):00:\(two(n))"
    }

    static func address(_ subnet: Int, _ n: Int) -> String { "10.\(subnet).0.\(n)" }

    func destroy() {
        daemon.stop()
        topology.destroy()
    }
}
