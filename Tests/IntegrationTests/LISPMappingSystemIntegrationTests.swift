import Foundation
import Glibc
import Testing
import VSwiftDatapath
import VSwiftTesting

/// Issue 16's proof: three vswift sites and a mapping system (the RFC 9301 test fixture), no static
/// `remote_ip` anywhere. Each site is a host namespace (`s3hN`) running vswiftd, with its underlay
/// device `ul0` (`add-underlay`: the host keeps it and its addresses 192.168.30.N and fd30::N) on
/// a bridge in `s3ul`, and a VM namespace (`s3vN`: 10.3.N.1/24 and fd00:3:N::1/64, instance id
/// 1000) on br2, whose LISP port takes its RLOCs from the mapping system (`remote_ip=map`). The
/// mapping system (`s3ms`, 192.168.30.100) is the site's map-server and map-resolver, configured
/// by its IPv4 address only. IPv4 EIDs register the host's address toward the map-server (no
/// `--rloc`), IPv6 EIDs an IPv6 RLOC. The mapping system also has fd30::100, for its own leg only:
/// it forwards a Map-Request to the ETR at the RLOC registered (RFC 9301 §8.3), the
/// IPv6 one for an IPv6 EID; the sites never address it over IPv6.
struct ThreeSites {
    static let iid = "1000"
    static let mapServer = "192.168.30.100"
    static let sites = 1...3
    /// Key id 1 (HMAC-SHA-1-96) for site 1, 2 (HMAC-SHA-256-128) for the others.
    static func keyID(_ n: Int) -> Int { n == 1 ? 1 : 2 }
    static func secret(_ n: Int) -> String { "site-\(n)-secret" }
    static func vmMAC(_ n: Int) -> String { "52:54:00:00:03:0\(n)" }
    /// The VMs' gateway MAC: frames to it enter br2 on vnet0 and meet the flows that send them to lisp0.
    static let gatewayMAC = "02:00:00:00:00:01"

    let topology = Topology()
    let underlay: String, mapping: String
    private(set) var hosts: [String] = [], vms: [String] = [], daemons: [Daemon] = []
    let fixture: MappingSystemFixture

    init() throws {
        underlay = try topology.namespace("s3ul")
        mapping = try topology.namespace("s3ms")
        for ns in [underlay, mapping] { try LISPHosts.enableIPv6(ns) }
        try run(["ip", "-n", underlay, "link", "add", "br0", "type", "bridge"])
        try run(["ip", "-n", underlay, "link", "set", "br0", "up"])
        try topology.veth("u0", in: underlay, "ms0", in: mapping)
        try run(["ip", "-n", underlay, "link", "set", "u0", "master", "br0"])
        try run(["ip", "-n", mapping, "addr", "add", Self.mapServer + "/24", "dev", "ms0"])
        try run(["ip", "-n", mapping, "addr", "add", "fd30::100/64", "dev", "ms0", "nodad"])
        fixture = try MappingSystemFixture(namespace: mapping, sites: Self.sites.map { n in
            "s\(n),\(Self.keyID(n)),\(Self.secret(n)),\(Self.iid):10.3.\(n).0/24,\(Self.iid):fd00:3:\(n)::/64"
        })
        for n in Self.sites {
            let host = try topology.namespace("s3h\(n)")
            let vm = try topology.namespace("s3v\(n)")
            hosts.append(host)
            vms.append(vm)
            try topology.veth("u\(n)", in: underlay, "ul0", in: host)
            try run(["ip", "-n", underlay, "link", "set", "u\(n)", "master", "br0"])
            try topology.veth("eth0", in: vm, "vnet0", in: host)
            for ns in [host, vm] { try LISPHosts.enableIPv6(ns) }
            try run(["ip", "-n", host, "addr", "add", "192.168.30.\(n)/24", "dev", "ul0"])
            try run(["ip", "-n", host, "addr", "add", "fd30::\(n)/64", "dev", "ul0", "nodad"])
            try run(["ip", "-n", vm, "link", "set", "eth0", "address", Self.vmMAC(n)])
            try run(["ip", "-n", vm, "addr", "add", "10.3.\(n).1/24", "dev", "eth0"])
            try run(["ip", "-n", vm, "addr", "add", "fd00:3:\(n)::1/64", "dev", "eth0", "nodad"])
            try run(["ip", "-n", vm, "neigh", "replace", "10.3.\(n).254", "lladdr", Self.gatewayMAC, "dev", "eth0", "nud", "permanent"])
            try run(["ip", "-n", vm, "neigh", "replace", "fd00:3:\(n)::254", "lladdr", Self.gatewayMAC, "dev", "eth0", "nud", "permanent"])
            try run(["ip", "-n", vm, "route", "add", "10.3.0.0/16", "via", "10.3.\(n).254"])
            // fd00:3::/32 holds every site's fd00:3:N::/64 (a /48 would hold only fd00:3:0::/48).
            try run(["ip", "-n", vm, "-6", "route", "add", "fd00:3::/32", "via", "fd00:3:\(n)::254"])

            let daemon = try Daemon(namespace: host)
            daemons.append(daemon)
            try daemon.ctl("add-underlay", "ul0")
            try daemon.ctl("add-br", "br2")
            try daemon.ctl("add-port", "br2", "vnet0")
            try daemon.ctl("add-port", "br2", "lisp0", "--", "set", "Interface", "lisp0", "type=lisp",
                           "options:remote_ip=map", "options:key=\(Self.iid)")
            let file = "/tmp/\(host).flows"
            try Self.flows(vmMAC: Self.vmMAC(n)).write(toFile: file, atomically: true, encoding: .utf8)
            defer { unlink(file) }
            try daemon.ctl("add-flows", "br2", file)
            try daemon.ctl("add-map-server", Self.mapServer, "--key", Self.secret(n), "--key-id", "\(Self.keyID(n))")
            // The sites know the mapping system over IPv4 only. Where a site's IPv6 underlay is
            // before it has talked to anyone comes from the IPv6 RLOC it registers (an underlay
            // endpoint on ul0, which holds it): first contact over IPv6 needs nothing more.
            try daemon.ctl("add-map-resolver", Self.mapServer)
            try daemon.ctl("add-eid", Self.iid, "10.3.\(n).0/24")
            try daemon.ctl("add-eid", Self.iid, "fd00:3:\(n)::/64", "--rloc", "fd30::\(n)")
        }
    }

    /// br2's flows (vnet0 = 1, lisp0 = 2), modelled on the seed's: the VM's traffic to other sites'
    /// EIDs goes to the LISP port; decapsulated frames (dl_dst 02:00:00:00:00:00) go to the VM;
    /// nothing else leaves the site (no multicast noise asking the map-resolver about ff02::).
    static func flows(vmMAC: String) -> String {
        """
        priority=0,action=drop
        priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:\(vmMAC),output:1
        priority=1,in_port=1,dl_type=0x0800,nw_dst=10.3.0.0/16,action=output:2
        priority=1,in_port=1,dl_type=0x86dd,ipv6_dst=fd00:3::/32,action=output:2
        """
    }

    /// `ping -c COUNT` from site `from`'s VM; the number of replies.
    func ping(from: Int, to address: String, count: Int = 5) -> Int {
        let result = try? run(["ip", "netns", "exec", vms[from - 1], "ping", "-c", "\(count)", "-i", "0.3", "-W", "1", address], check: false)
        guard let text = result?.stdout, let range = text.range(of: " received") else { return 0 }
        let before = text[..<range.lowerBound].split(separator: " ").last ?? "0"
        return Int(before) ?? 0
    }

    /// Pings once a second until one reply comes back or `seconds` pass.
    func reachable(from: Int, to address: String, seconds: Int) -> Bool {
        for _ in 0..<seconds {
            if ping(from: from, to: address, count: 1) > 0 { return true }
        }
        return false
    }

    /// RFC 9301 §8.2: each site registers with its own key (the fixture's log says so).
    func waitForRegistrations() throws {
        for n in Self.sites {
            #expect(fixture.waitFor(timeout: 20) { $0["verdict"] as? String == "registered" && $0["site"] as? String == "s\(n)" } != nil,
                    "site \(n) did not register\n\(diagnostics())")
        }
    }

    func diagnostics() -> String {
        var text = "mapping system:\n\(fixture.logText.suffix(4000))\n"
        for (n, daemon) in zip(Self.sites, daemons) {
            text += "site \(n) show-lisp:\n\((try? daemon.ctl("show-lisp", check: false))?.stdout ?? "")\n"
            text += "site \(n) dump-map-cache:\n\((try? daemon.ctl("dump-map-cache", check: false))?.stdout ?? "")\n"
            text += "site \(n) dump-flows br2:\n\((try? daemon.ctl("dump-flows", "br2", check: false))?.stdout ?? "")\n"
            text += "site \(n) dump-ports br2:\n\((try? daemon.ctl("dump-ports", "br2", check: false))?.stdout ?? "")\n"
            text += "site \(n) log:\n\(daemon.log.suffix(2000))\n"
        }
        return text
    }

    func destroy() {
        for daemon in daemons { daemon.stop() }
        fixture.stop()
        topology.destroy()
    }
}

extension Integration {
@Suite("LISPMappingSystemIntegrationTests: three sites and a mapping system")
struct LISPMappingSystemIntegrationTests {
    @Test("issue 16: every site pings every other over IPv4 and IPv6 EIDs with no static remote_ip")
    func everySiteReachesEveryOther() throws {
        let sites = try ThreeSites()
        defer { sites.destroy() }
        try sites.waitForRegistrations()
        // The first packets may be lost while the map-caches fill (a miss asks the map-resolver;
        // the far ETR, not knowing the sender's RLOC yet, refuses it and asks about its EID).
        for from in ThreeSites.sites {
            for to in ThreeSites.sites where to != from {
                for address in ["10.3.\(to).1", "fd00:3:\(to)::1"] {
                    let replies = sites.ping(from: from, to: address)
                    #expect(replies > 0, "site \(from) → \(address): no reply\n\(sites.diagnostics())")
                }
            }
        }
        let cache = try sites.daemons[0].ctl("dump-map-cache").stdout
        #expect(cache.contains("10.3.3.0/24") && cache.contains("192.168.30.3"), "\(cache)")
        #expect(cache.contains("fd00:3:2::/64") && cache.contains("fd30::2"), "\(cache)")
    }

    @Test("issue 16: a site that moves its RLOC (address change) is reachable again after re-registration")
    func movedSiteIsReachableAgain() throws {
        let sites = try ThreeSites()
        defer { sites.destroy() }
        try sites.waitForRegistrations()
        for (from, address) in [(3, "10.3.1.1"), (1, "10.3.3.1"), (2, "fd00:3:3::1")] {
            #expect(sites.ping(from: from, to: address) > 0, "before the move, site \(from) → \(address)\n\(sites.diagnostics())")
        }
        // Site 3 moves: new underlay addresses; its IPv4 EID follows the host's address by itself
        // (vswiftd looks again every 30 s), its IPv6 EID names its RLOC, so the operator says the new one.
        let host3 = sites.hosts[2]
        try run(["ip", "-n", host3, "addr", "del", "192.168.30.3/24", "dev", "ul0"])
        try run(["ip", "-n", host3, "addr", "add", "192.168.30.13/24", "dev", "ul0"])
        try run(["ip", "-n", host3, "addr", "del", "fd30::3/64", "dev", "ul0"])
        try run(["ip", "-n", host3, "addr", "add", "fd30::13/64", "dev", "ul0", "nodad"])
        try sites.daemons[2].ctl("del-eid", ThreeSites.iid, "fd00:3:3::/64")
        try sites.daemons[2].ctl("add-eid", ThreeSites.iid, "fd00:3:3::/64", "--rloc", "fd30::13")
        let moved = sites.fixture.waitFor(timeout: 75) { entry in
            guard entry["verdict"] as? String == "registered", entry["site"] as? String == "s3",
                  let records = entry["records"] as? [[String: Any]] else { return false }
            let rlocs = records.flatMap { $0["rlocs"] as? [String] ?? [] }
            return rlocs.contains { $0.hasPrefix("192.168.30.13,") } && rlocs.contains { $0.hasPrefix("fd30::13,") }
        }
        #expect(moved != nil, "site 3 did not re-register its new RLOCs\n\(sites.diagnostics())")
        // Sites 1 and 2 had site 3's old RLOCs in their map-caches: they must learn the new ones.
        // Site 3's re-registration solicits the sites in its map-cache (SMR, RFC 9301 §6.1), which ask
        // the mapping system again instead of keeping the old RLOC for the records' 1440 minutes.
        for (from, address) in [(1, "10.3.3.1"), (3, "10.3.1.1"), (2, "fd00:3:3::1"), (3, "fd00:3:2::1")] {
            #expect(sites.reachable(from: from, to: address, seconds: 20),
                    "after the move, site \(from) → \(address): no reply\n\(sites.diagnostics())")
        }
    }
}
}
