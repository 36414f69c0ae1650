import Foundation
import Testing
import VSwiftProtocol
import VSwiftTesting

/// Issue 17's operator surface against a real vswiftd, run in both passes of scripts/test.sh
/// (VSWIFT_TEST_XDP_CACHE off and on): the verb, its JSON, its errors, and the path counts of
/// dump-ports and dump-workers.
extension Integration {
@Suite("XDP flow cache: dump-xdp-cache and the path counts through vswiftctl")
struct XDPCacheSurfaceIntegrationTests {
    @Test("dump-xdp-cache answers in text and JSON as vswiftd runs the cache; dump-ports and dump-workers show the paths")
    func dumpXDPCache() throws {
        let hosts = SwitchIntegrationTests()
        let (topology, _, h1, _, daemon) = try hosts.twoHosts(subnet: "10.77.17")
        defer { daemon.stop(); topology.destroy() }
        try hosts.ping(from: h1, "10.77.17.2", count: 2)

        let report: XDPCacheReport = try daemon.call("dump-xdp-cache").get().decode()
        if Paths.xdpCacheArguments == ["--xdp-cache", "off"] { #expect(!report.enabled) }
        // vswiftd's default (auto) turns the cache on where it loads: on CI's machine it must.
        if Paths.xdpCacheArguments.isEmpty && Capability.isCI { #expect(report.enabled, "--xdp-cache auto left the cache off") }
        let text = try daemon.ctl("dump-xdp-cache").stdout
        if report.enabled {
            #expect(text.hasPrefix("xdp cache: on, entries="), "\(text)")
            #expect(report.flows.count <= report.capacity && report.entries <= report.capacity)
            #expect(Set(report.ports.map(\.name)) == ["vp1", "vp2"])
        } else {
            #expect(text == "xdp cache: off (vswiftd --xdp-cache on enables it)\n")
        }
        // --json and --format json give the report as data; one bridge's only.
        for arguments in [["dump-xdp-cache", "br0", "--json"], ["--format", "json", "dump-xdp-cache", "br0"]] {
            let json = try run([Paths.vswiftctl, "--socket", daemon.socketPath] + arguments).stdout
            let decoded = try JSONValue.parse(Array(json.utf8))?.decode(XDPCacheReport.self)
            #expect(decoded?.enabled == report.enabled, "\(json)")
            #expect(decoded?.flows.allSatisfy { $0.bridge == "br0" } == true)
        }
        // A bridge that does not exist, or a name no bridge can have: vswiftctl's error, exit 1.
        for bridge in ["br9", "a/b"] {
            let bad = try daemon.ctl("dump-xdp-cache", bridge, check: false)
            #expect(bad.status == 1 && bad.stderr.hasPrefix("vswiftctl: ") && bad.stderr.contains(bridge), "\(bad)")
        }
        // dump-ports: one xdp_cache line per device port exactly while the cache is on.
        let ports = try daemon.ctl("dump-ports", "br0").stdout
        #expect(ports.components(separatedBy: "xdp_cache hit=").count - 1 == (report.enabled ? 2 : 0), "\(ports)")
        // dump-workers: the workers first (the AF_XDP path), then the XDP totals.
        let workers = try daemon.ctl("dump-workers").stdout
        #expect(workers.hasPrefix("worker 0") && workers.contains(report.enabled ? "packets forwarded in XDP: " : "xdp cache: off\n"), "\(workers)")
        let workersJSON = try daemon.ctl("--format", "json", "dump-workers").stdout
        #expect(try JSONValue.parse(Array(workersJSON.utf8))?.decode([WorkerReport].self).count == 1)
    }
}
}
