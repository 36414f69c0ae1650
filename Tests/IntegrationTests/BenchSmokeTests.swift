import Foundation
import Glibc
import Testing
import VSwiftTesting

/// The bench harness in quick mode: it must measure a non-zero rate from the sink's counters, for
/// vswift and the C baseline (and OVS where installed), and leave no namespace or OVS directory behind. No threshold is asserted.
/// The tests run one after the other (the Integration suite is serialized; each bench wants the switch CPU).
extension Integration {
@Suite("Bench harness")
struct BenchSmokeTests {
    /// The bench's namespaces and OVS directories that exist now (another bench running at the
    /// same time has its own, named after its process).
    func benchLeftovers() throws -> Set<String> {
        let directories = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp"))?.filter { $0.hasPrefix("vsb-ovs-") } ?? []
        let namespaces = try run(["ip", "netns", "list"]).stdout.split(separator: "\n")
            .compactMap { $0.split(separator: " ").first.map(String.init) }.filter { $0.hasPrefix("vsb-") }
        return Set(directories.map { "/tmp/" + $0 } + namespaces.map { "netns " + $0 })
    }

    func expectNothingLeft(since before: Set<String>) throws {
        let left = try benchLeftovers().subtracting(before)
        #expect(left.isEmpty, "bench left behind: \(left.sorted())")
    }

    @Test func quickForwardingRunMeasuresAndCleansUp() throws {
        let before = try benchLeftovers()
        let json = "/tmp/vswift-bench-smoke-\(getpid()).json"
        defer { unlink(json) }
        let result = try run([Paths.binDir + "/vswift-bench", "forward", "--quick", "--warmup", "0.5",
                              "--json", json, "--bpf-dir", Paths.bpfDir])
        #expect(result.stdout.contains("vswift"), "\(result.stdout)")
        let data = try #require(FileManager.default.contents(atPath: json))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let summaries = try #require(report["summary"] as? [[String: Any]])
        let rates = Dictionary(uniqueKeysWithValues: summaries.compactMap { s -> (String, Double)? in
            guard let name = s["switch"] as? String ?? s["switchName"] as? String, let mpps = s["mpps"] as? Double else { return nil }
            return (name, mpps)
        })
        #expect((rates["vswift"] ?? 0) > 0, "\(summaries)")
        #expect((rates["xsk_fwd"] ?? 0) > 0, "\(summaries)")
        // The probe chose a backend, and every row says which and what it offered.
        let options = try #require(report["options"] as? [String: Any])
        let backend = try #require(options["generator"] as? String)
        #expect(["live", "loop"].contains(backend), "\(options)")
        for summary in summaries {
            #expect(summary["generator"] as? String == backend, "\(summary)")
            #expect((summary["offeredMpps"] as? Double ?? 0) > 0, "\(summary)")
            #expect(summary["generatorBound"] is Bool, "\(summary)")
        }
        #expect(result.stdout.contains("generator: \(backend):"), "\(result.stdout)")
        // Open vSwitch is measured only where it is installed (not in CI).
        if access("/usr/sbin/ovs-vswitchd", X_OK) == 0 {
            #expect((rates["ovs-afxdp"] ?? 0) > 0, "\(summaries)")
        }
        try expectNothingLeft(since: before)
    }

    /// The generator a kernel without live frames gets (the probe told to pass over live frames,
    /// as such a kernel makes it): it must offer traffic, and more than the switch forwards.
    @Test func loopGeneratorOffersMoreThanTheSwitchForwards() throws {
        let before = try benchLeftovers()
        let json = "/tmp/vswift-bench-loop-\(getpid()).json"
        defer { unlink(json); unlink(String(json.dropLast(5)) + ".md") }
        let result = try run([Paths.binDir + "/vswift-bench", "forward", "--quick", "--warmup", "0.5", "--skip-baseline",
                              "--json", json, "--bpf-dir", Paths.bpfDir],
                             environment: ["VSWIFT_BENCH_REFUSE": "live"])
        #expect(result.stdout.contains("generator: loop:"), "\(result.stdout)")
        #expect(result.stdout.contains("generator live unavailable"), "\(result.stdout)")
        let data = try #require(FileManager.default.contents(atPath: json))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let options = try #require(report["options"] as? [String: Any])
        #expect(options["generator"] as? String == "loop", "\(options)")
        let runs = try #require(report["runs"] as? [[String: Any]])
        let vswift = try #require(runs.first { $0["switch"] as? String == "vswift" })
        let mpps = try #require(vswift["mpps"] as? Double), offered = try #require(vswift["offeredMpps"] as? Double)
        #expect(mpps > 0, "\(vswift)")
        // The debug build forwards a fraction of what the loop offers; a generator-bound run here
        // would mean the loop lost its rate.
        #expect(offered > mpps * 1.1 && vswift["generatorBound"] as? Bool == false, "\(vswift)")
        try expectNothingLeft(since: before)
    }

    /// Issue 16's veth bench: static LISP encap, p2p, and encap through a map-cache of 1 and
    /// 10,000 static entries (remote_ip=map) in one run, every row delivering, no allocation.
    @Test func quickMapEncapMeasuresEveryRow() throws {
        let before = try benchLeftovers()
        let json = "/tmp/vswift-bench-mapencap-\(getpid()).json"
        defer { unlink(json); unlink(String(json.dropLast(5)) + ".md") }
        let result = try run([Paths.binDir + "/vswift-bench", "forward", "--tunnel", "encap", "--map-prefixes", "1", "10000",
                              "--quick", "--warmup", "0.5", "--skip-baseline", "--json", json, "--bpf-dir", Paths.bpfDir])
        #expect(result.stdout.contains("lisp-encap-64B"), "\(result.stdout)")
        let data = try #require(FileManager.default.contents(atPath: json))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let summaries = try #require(report["summary"] as? [[String: Any]])
        let names = summaries.compactMap { $0["switch"] as? String }
        #expect(names == ["vswift", "vswift-p2p", "vswift-map-1", "vswift-map-10k"], "\(summaries)")
        for summary in summaries {
            #expect((summary["mpps"] as? Double ?? 0) > 0, "\(summary)")
        }
        try expectNothingLeft(since: before)
    }

    /// Issue 17's veth proof: vswift with the XDP flow cache and without it in one run, beside
    /// xsk_fwd and the generator's ceiling (s0's NAPI on the switch CPU): every row delivers, the
    /// cached run forwarded most of its window in XDP, and the flow's first frames went through
    /// the workers before the entry was there.
    @Test func quickXDPCacheBothMeasuresEveryRow() throws {
        let before = try benchLeftovers()
        let json = "/tmp/vswift-bench-xdpcache-\(getpid()).json"
        defer { unlink(json); unlink(String(json.dropLast(5)) + ".md") }
        let result = try run([Paths.binDir + "/vswift-bench", "forward", "--xdp-cache", "both", "--skip-ovs",
                              "--quick", "--warmup", "0.5", "--json", json, "--bpf-dir", Paths.bpfDir])
        #expect(result.stdout.contains("ratio p2p-64B: vswift-xdp / vswift"), "\(result.stdout)")
        let data = try #require(FileManager.default.contents(atPath: json))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let summaries = try #require(report["summary"] as? [[String: Any]])
        #expect(summaries.compactMap { $0["switch"] as? String } == ["vswift-xdp", "vswift", "xsk_fwd", "generator-ceiling"], "\(summaries)")
        for summary in summaries {
            #expect((summary["mpps"] as? Double ?? 0) > 0, "\(summary)")
        }
        let runs = try #require(report["runs"] as? [[String: Any]])
        let cached = try #require(runs.first { $0["switch"] as? String == "vswift-xdp" })
        let path = try #require(cached["xdpPath"] as? [String: Any], "\(cached)")
        #expect((path["hits"] as? Int ?? 0) > (path["misses"] as? Int ?? 0), "\(path)")
        #expect((path["workerFramesBeforeFirstHit"] as? Int ?? 0) > 0, "\(path)")
        #expect((path["sinkFramesBeforeFirstHit"] as? Int ?? 0) > 0, "\(path)")
        try expectNothingLeft(since: before)
    }

    /// LISP encap in XDP with the default generator: the switch's cache rewrites the generator's
    /// frames (outer headers over the Ethernet header), and live mode recycles those pages; the
    /// generator restores the template's head into each frame, so it keeps generating (before, the
    /// window counted nothing: "generated 0"). The warm-up then waits for the cache to settle.
    @Test func quickLISPEncapInXDPKeepsTheGeneratorGoing() throws {
        let before = try benchLeftovers()
        let json = "/tmp/vswift-bench-xdpencap-\(getpid()).json"
        defer { unlink(json); unlink(String(json.dropLast(5)) + ".md") }
        let result = try run([Paths.binDir + "/vswift-bench", "forward", "--xdp-cache", "on", "--tunnel", "encap", "--skip-baseline",
                              "--quick", "--warmup", "0.5", "--json", json, "--bpf-dir", Paths.bpfDir])
        #expect(result.stdout.contains("XDP cache settled"), "\(result.stdout)")
        let data = try #require(FileManager.default.contents(atPath: json))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let runs = try #require(report["runs"] as? [[String: Any]])
        let cached = try #require(runs.first { $0["switch"] as? String == "vswift-xdp" }, "\(runs)")
        #expect((cached["mpps"] as? Double ?? 0) > 0, "\(cached)")
        let path = try #require(cached["xdpPath"] as? [String: Any], "\(cached)")
        #expect((path["hits"] as? Int ?? 0) > (path["misses"] as? Int ?? 0), "\(path)")
        #expect(path["settled"] as? Bool == true, "\(path)")
        try expectNothingLeft(since: before)
    }

    /// Issue 16's first-packet latency: two vswiftd sites and the mapping system fixture, two fresh
    /// destinations; each first probe arrives, after a miss, and nothing is left behind.
    @Test func lispFirstPacketMeasuresAndCleansUp() throws {
        let before = try benchLeftovers()
        let json = "/tmp/vswift-bench-first-packet-\(getpid()).json"
        defer { unlink(json) }
        let result = try run([Paths.binDir + "/vswift-bench", "lisp-first-packet", "--destinations", "2", "--json", json,
                              "--bpf-dir", Paths.bpfDir, "--fixture", MappingSystemFixture.script])
        #expect(result.stdout.contains("first probe sent -> first delivered: median"), "\(result.stdout)")
        let data = try #require(FileManager.default.contents(atPath: json))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let samples = try #require(report["samples"] as? [[String: Any]])
        #expect(samples.count == 2, "\(report)")
        for sample in samples {
            #expect((sample["latency_ms"] as? Double ?? 0) > 0, "\(sample)")
        }
        // Each destination was a miss at site 1 (drop on miss), seen by the map-server.
        #expect((report["map_miss_drops"] as? Int ?? 0) >= 2, "\(report)")
        #expect(samples.allSatisfy { $0["request_at_map_server_ms"] is Double }, "\(samples)")
        try expectNothingLeft(since: before)
    }

    /// The LISP round trip through two vswift switches (and two OVS instances in VXLAN where OVS is
    /// installed): every row delivers, the Markdown report lands next to the JSON, nothing is left.
    @Test func quickRoundTripMeasuresWritesMarkdownAndCleansUp() throws {
        let before = try benchLeftovers()
        let stem = "/tmp/vswift-bench-roundtrip-\(getpid())"
        defer { unlink(stem + ".json"); unlink(stem + ".md") }
        let result = try run([Paths.binDir + "/vswift-bench", "forward", "--tunnel", "roundtrip", "--quick", "--warmup", "0.5",
                              "--json", stem + ".json", "--bpf-dir", Paths.bpfDir])
        #expect(result.stdout.contains("lisp-roundtrip-64B"), "\(result.stdout)")
        let data = try #require(FileManager.default.contents(atPath: stem + ".json"))
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let summaries = try #require(report["summary"] as? [[String: Any]])
        let rates = Dictionary(uniqueKeysWithValues: summaries.compactMap { s -> (String, Double)? in
            guard let name = s["switch"] as? String, let mpps = s["mpps"] as? Double else { return nil }
            return (name, mpps)
        })
        #expect((rates["vswift"] ?? 0) > 0, "\(summaries)")
        #expect((rates["vswift-p2p"] ?? 0) > 0, "\(summaries)")
        if access("/usr/sbin/ovs-vswitchd", X_OK) == 0 {
            #expect((rates["ovs-vxlan"] ?? 0) > 0, "\(summaries)")
        }
        let markdown = try #require(try? String(contentsOfFile: stem + ".md", encoding: .utf8))
        #expect(markdown.contains("- command: `"), "\(markdown)")
        #expect(markdown.contains("| lisp-roundtrip-64B | vswift |"), "\(markdown)")
        try expectNothingLeft(since: before)
    }
}
}
