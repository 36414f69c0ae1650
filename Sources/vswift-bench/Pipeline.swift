import ArgumentParser
import CXDP
import Foundation
import Glibc
import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftPacket
import VSwiftTesting

/// The worker's receive → parse → classify → act → transmit loop on in-memory rings (no kernel):
/// what vswift would do per packet on a zero-copy NIC, and proof that it allocates nothing.
struct Pipeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "ns per packet through a real worker on in-memory rings, per scenario, with allocations per packet.")

    @Option(help: "Packets per measurement.")
    var packets: Int = 5_000_000

    @Option(help: "Repetitions per scenario (median shown).")
    var runs: Int = 3

    @Option(help: "Only these scenarios (comma-separated): a term that is a scenario's whole name selects that one, any other every scenario whose name contains it (lisp-map-1: that one; lisp-map: all three).")
    var only: String?

    @Option(help: "Pin the benchmark thread to this CPU.")
    var cpu: Int = 1

    @Option(help: "Instead of one scenario after another, alternate the selected ones for this many rounds of --packets each and compare each with the first, round by round (PipelineInterleaved.swift).")
    var interleave: Int = 0

    mutating func run() throws {
        _ = vs_pin_to_cpu(Int32(cpu))
        if interleave > 0 { return try runInterleaved() }
        print(row(["scenario", "rules", "Mpps", "ns/pkt", "cpu ns/pkt", "allocs/pkt", "cache hit %", "TSC cyc/pkt"]))
        for scenario in selectedScenarios {
            let harness = try warmHarness(scenario)
            var results: [PipelineHarness.Result] = []
            var allocations = 0
            // TSC cyc/pkt: the worker's own cycles (its rounds, as `dump-workers` accounts them), without the
            // harness playing the kernel around it.
            let cyclesBefore = harness.cycles
            for _ in 0..<runs {
                AllocationCounter.begin(tracking: [vs_gettid()])
                results.append(harness.run(packets: packets))
                allocations += AllocationCounter.end()?.tracked ?? -1
            }
            results.sort { $0.nanosecondsPerPacket < $1.nanosecondsPerPacket }
            let median = results[results.count / 2]
            let cpu = results.map(\.cpuNanosecondsPerPacket).sorted()
            let perPacket = AllocationCounter.isAvailable ? String(format: "%.3f", Double(allocations) / Double(packets * runs)) : "n/a"
            let census = harness.accounting()
            precondition(census.isConsistent, "frame accounting broken: \(census)")
            let workerCycles = Double((harness.cycles - cyclesBefore).busy) / Double(packets * runs)
            let lookups = harness.cacheHits + harness.cacheMisses
            let hitRate = lookups == 0 ? "-" : String(format: "%.1f", 100 * Double(harness.cacheHits) / Double(lookups))
            print(row([scenario.name, "\(scenario.ruleCount)", String(format: "%.2f", median.mpps),
                       String(format: "%.1f", median.nanosecondsPerPacket),
                       String(format: "%.1f", cpu[cpu.count / 2]), perPacket, hitRate, String(format: "%.1f", workerCycles)]))
        }
    }

    /// The scenarios `--only` selects, in table order.
    var selectedScenarios: [Scenario] {
        guard let only else { return Self.scenarios }
        return Self.scenarios(matching: only.split(separator: ",").map(String.init))
    }

    /// The scenarios `terms` name, in table order: a term equal to a scenario's name selects only
    /// that one (`lisp-map-1` is not also `lisp-map-10k` and `lisp-map-100k`, which once made a
    /// callgrind count three scenarios as one); any other term, each name containing it.
    static func scenarios(matching terms: [String]) -> [Scenario] {
        let names = Set(scenarios.map(\.name))
        return scenarios.filter { scenario in
            terms.contains { names.contains($0) ? scenario.name == $0 : scenario.name.contains($0) }
        }
    }

    /// A harness set up for `scenario` and run once (caches, MAC table, page faults).
    func warmHarness(_ scenario: Scenario) throws -> PipelineHarness {
        let harness = try PipelineHarness(packets: scenario.packets(), rules: scenario.rules(), tunnel: scenario.tunnel)
        if let prefixes = scenario.mapPrefixes {
            // remote_ip=map (PipelineMapCache.swift): the LISP port looks each destination up.
            let (snapshot, rlocs) = Self.mapCache(prefixes: prefixes)
            harness.useMapCache(instanceID: Self.mapInstance, rlocs: rlocs)
            harness.publishMapCache(snapshot)
        }
        _ = harness.run(packets: min(packets, 1_000_000))
        return harness
    }

    struct Scenario: Sendable {
        let name: String
        let ruleCount: Int
        let packets: @Sendable () -> [[UInt8]]
        let rules: @Sendable () -> [DatapathRule]?
        var tunnel: PipelineHarness.Tunnel = .none
        /// remote_ip=map with a map-cache of this many prefixes (PipelineMapCache.swift).
        var mapPrefixes: Int? = nil
    }

    /// `frame` as LISP from the harness's remote RLOC to its local one (decapsulation input).
    static func lispFrame(flow: Int, size: Int = 64) -> [UInt8] {
        let inner = frame(flow: flow, size: size)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512 + inner.count, alignment: 64)
        defer { buffer.deallocate() }
        var start = buffer + 256
        inner.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var length = inner.count
        let result = LISP.encapsulate(&start, length: &length, headroom: 256, instanceID: 0,
                                      parameters: PipelineHarness.encapsulationToHarness, ipIdentification: 1)
        precondition(result == .done)
        return Array(UnsafeRawBufferPointer(start: start, count: length))
    }

    /// The outer IPv4 datagram of `frame` (Ethernet, no tags) as fragments of `size` payload bytes
    /// (a multiple of 8), DF clear, header checksums fixed.
    static func outerFragments(_ frame: [UInt8], size: Int) -> [[UInt8]] {
        let payload = Array(frame[34...])
        var out: [[UInt8]] = []
        var offset = 0
        while offset < payload.count {
            let end = min(offset + size, payload.count)
            var f = Array(frame[0..<34]) + payload[offset..<end]
            let length = 20 + end - offset
            let field = (end < payload.count ? 0x2000 : 0) | offset / 8
            f[16] = UInt8(length >> 8); f[17] = UInt8(length & 0xff)
            f[20] = UInt8(field >> 8); f[21] = UInt8(field & 0xff)
            f[24] = 0; f[25] = 0
            let sum = f.withUnsafeBytes { Checksum.ipv4Header($0.baseAddress! + 14, headerLength: 20) }
            f[24] = UInt8(sum >> 8); f[25] = UInt8(sum & 0xff)
            out.append(f)
            offset = end
        }
        return out
    }

    static func frame(flow: Int, size: Int = 64) -> [UInt8] {
        var f: [UInt8] = [0x52, 0x54, 0x00, 0x1b, 0xea, 0xd5, 0x52, 0x54, 0x00, 0xb8, 0x27, 0x75, 0x08, 0x00]
        let ipLength = size - 14
        let dst = 0x0a02_0000 | UInt32(flow & 0xffff)
        var ip: [UInt8] = [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xff), 0, 1, 0x40, 0, 64, 17, 0, 0,
                           10, 1, 1, 20, UInt8(dst >> 24), UInt8((dst >> 16) & 0xff), UInt8((dst >> 8) & 0xff), UInt8(dst & 0xff)]
        let sum = ip.withUnsafeBytes { Checksum.ipv4Header($0.baseAddress!, headerLength: 20) }
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xff)
        f += ip
        let sport = UInt16(1024 + (flow >> 16))
        f += [UInt8(sport >> 8), UInt8(sport & 0xff), 0x10, 0xe1, UInt8((ipLength - 20) >> 8), UInt8((ipLength - 20) & 0xff), 0, 0]
        f += [UInt8](repeating: 0, count: size - f.count)
        return f
    }

    /// The scenarios' own flow texts: a syntax error is a bug here, not an input error.
    static func rules(_ texts: [String]) -> [DatapathRule] { try! PipelineHarness.rules(texts) }

    /// `count` flows, one exact rule each (nw_dst + udp source port), spread over a few subtables
    /// (some rules also match in_port, some the destination port) above a NORMAL default.
    static func manyFlowRules(_ count: Int) -> [DatapathRule] {
        var out: [DatapathRule] = []
        out.reserveCapacity(count + 1)
        var match = Match()
        let parser = FlowParser()
        let base = try! parser.parseFlow("priority=0,actions=NORMAL")
        out.append(DatapathRule(match: base.match, priority: 0, sequence: 0, actions: base.actions, counterSlot: 0))
        for flow in 0..<count {
            match = Match()
            match.set(.dlType, 0x0800)
            match.set(.nwProto, 17)
            match.set(.nwDst, UInt64(0x0a02_0000 | UInt32(flow & 0xffff)))
            match.set(.tpSrc, UInt64(1024 + (flow >> 16)))
            switch flow % 4 {
            case 1: match.set(.inPort, 1)
            case 2: match.set(.tpDst, 4321)
            case 3: match.set(.nwSrc, 0x0a01_0100, mask: 0xffff_ff00)
            default: break
            }
            out.append(DatapathRule(match: match, priority: 10, sequence: UInt64(flow + 1), actions: [.output(2)], counterSlot: flow + 1))
        }
        return out
    }

    static let seedFlows = [
        "priority=0,action=NORMAL",
        "priority=2,in_port=1,dl_type=0x0806,action=NORMAL",
        "priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1",
        "priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2",
    ]

    static let scenarios: [Scenario] = [
        Scenario(name: "normal", ruleCount: 0, packets: { [frame(flow: 0)] }, rules: { nil }),
        // A new bridge's table in vswiftd: one catch-all rule to NORMAL.
        Scenario(name: "default-normal", ruleCount: 1, packets: { [frame(flow: 0)] }, rules: { rules(["priority=0,actions=NORMAL"]) }),
        Scenario(name: "p2p", ruleCount: 1, packets: { [frame(flow: 0)] }, rules: { rules(["in_port=1,actions=output:2"]) }),
        Scenario(name: "seed", ruleCount: 4, packets: { [frame(flow: 0)] }, rules: { rules(seedFlows) }),
        Scenario(name: "mod-nw-dst", ruleCount: 1, packets: { [frame(flow: 0)] },
                 rules: { rules(["in_port=1,ip,actions=mod_nw_dst:10.9.9.9,mod_tp_dst:99,dec_ttl,output:2"]) }),
        Scenario(name: "lisp-encap", ruleCount: 1, packets: { [frame(flow: 0)] },
                 rules: { rules(["in_port=1,actions=output:2"]) }, tunnel: .encapsulate),
        Scenario(name: "lisp-decap", ruleCount: 1, packets: { [lispFrame(flow: 0)] },
                 rules: { rules(["in_port=2,actions=output:1"]) }, tunnel: .decapsulate),
        // Outer reassembly (DESIGN.md, "LISP path MTU and outer reassembly"): a 1,478-byte LISP
        // packet whole, and cut into 3 outer fragments (ns per fragment; a datagram is 3 of them).
        Scenario(name: "lisp-decap-1400", ruleCount: 1, packets: { [lispFrame(flow: 0, size: 1442)] },
                 rules: { rules(["in_port=2,actions=output:1"]) }, tunnel: .decapsulate),
        Scenario(name: "lisp-decap-frag", ruleCount: 1, packets: { outerFragments(lispFrame(flow: 0, size: 1442), size: 504) },
                 rules: { rules(["in_port=2,actions=output:1"]) }, tunnel: .decapsulate),
        // Encapsulation through the map-cache (remote_ip=map) against static encapsulation, over
        // the same 1,000 flows (PipelineMapCache.swift).
        Scenario(name: "lisp-encap-1k", ruleCount: 1, packets: { (0..<mapFlows).map { frame(flow: $0) } },
                 rules: { rules(["in_port=1,actions=output:2"]) }, tunnel: .encapsulate),
        Scenario(name: "lisp-map-1", ruleCount: 1, packets: { (0..<mapFlows).map { frame(flow: $0) } },
                 rules: { rules(["in_port=1,actions=output:2"]) }, tunnel: .encapsulate, mapPrefixes: 1),
        Scenario(name: "lisp-map-10k", ruleCount: 1, packets: { (0..<mapFlows).map { frame(flow: $0) } },
                 rules: { rules(["in_port=1,actions=output:2"]) }, tunnel: .encapsulate, mapPrefixes: 10_000),
        Scenario(name: "lisp-map-100k", ruleCount: 1, packets: { (0..<mapFlows).map { frame(flow: $0) } },
                 rules: { rules(["in_port=1,actions=output:2"]) }, tunnel: .encapsulate, mapPrefixes: 100_000),
        Scenario(name: "seed-encap", ruleCount: 4, packets: { [frame(flow: 0)] }, rules: { rules(seedFlows) }, tunnel: .encapsulate),
        Scenario(name: "seed-decap", ruleCount: 4, packets: { [lispFrame(flow: 0)] }, rules: { rules(seedFlows) }, tunnel: .decapsulate),
        Scenario(name: "flows-1k", ruleCount: 1_001, packets: { (0..<1_000).map { frame(flow: $0) } }, rules: { manyFlowRules(1_000) }),
        Scenario(name: "flows-100k", ruleCount: 100_001, packets: { (0..<100_000).map { frame(flow: $0) } }, rules: { manyFlowRules(100_000) }),
        Scenario(name: "flows-1M", ruleCount: 1_000_001, packets: { (0..<1_000_000).map { frame(flow: $0) } }, rules: { manyFlowRules(1_000_000) }),
        // The veth bench's many-flows case: 60,000 active flows (spread over the rules) among 1M rules.
        Scenario(name: "flows-1M-60k", ruleCount: 1_000_001, packets: { (0..<60_000).map { frame(flow: $0 &* 16 &+ $0 % 16) } },
                 rules: { manyFlowRules(1_000_000) }),
    ]
}

/// Classifier microbenchmarks: lookup cost by number of subtables and rules, with and without the
/// exact-match cache; table build rate; memory per rule; parsing + building a million flows.
struct ClassifierBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classifier", abstract: "ns per lookup (cache hit, tuple space search) and build rates.")

    @Option(help: "Lookups per measurement.")
    var lookups: Int = 2_000_000

    mutating func run() throws {
        _ = vs_pin_to_cpu(1)
        print("lookup cost (ns), random packets drawn from the installed rules:")
        print(row(["subtables", "rules", "build s", "tss ns", "burst ns", "cache-hit ns", "bytes/rule"]))
        for (subtables, rules) in [(1, 1_000), (4, 1_000), (16, 1_000), (64, 1_000), (16, 100_000), (16, 1_000_000)] {
            measure(subtables: subtables, rules: rules)
        }
        // Parse + build a million flows as add-flows would.
        let texts = (0..<1_000_000).map { i in "priority=10,udp,nw_dst=10.\(i >> 16).\((i >> 8) & 0xff).\(i & 0xff),tp_dst=\(1000 + i % 5000),actions=output:2" }
        let parser = FlowParser()
        let start = now()
        var entries: [ClassifierEntry] = []
        entries.reserveCapacity(texts.count)
        for (i, text) in texts.enumerated() {
            let rule = try parser.parseFlow(text)
            entries.append(ClassifierEntry(match: rule.match, priority: rule.priority, sequence: UInt64(i), rule: RuleIndex(i)))
        }
        let parsed = now()
        let table = ClassifierTable(entries)
        let built = now()
        print(String(format: "\n1M flow strings: parse %.2f s, build %.2f s, total %.2f s; %d subtables, %.0f bytes/rule in the table",
                     parsed - start, built - parsed, built - start, table.subtableCount, Double(table.memoryBytes) / 1e6))
    }

    func measure(subtables: Int, rules count: Int) {
        // Each subtable: a different prefix length on nw_dst plus udp; rules spread evenly.
        var entries: [ClassifierEntry] = []
        entries.reserveCapacity(count)
        var keys: [FlowKey] = []
        keys.reserveCapacity(count)
        for i in 0..<count {
            let s = i % subtables
            var match = Match()
            match.set(.dlType, 0x0800)
            match.set(.nwProto, 17)
            let address = UInt64(0x0a00_0000 | UInt32(truncatingIfNeeded: i &* 2654435761) & 0x00ff_ffff)
            // Subtable s: nw_dst /(32 - s % 24) and, past 24, also tp_dst.
            let prefix = 32 - (s % 24)
            match.set(.nwDst, address, mask: (0xffff_ffff << UInt64(32 - prefix)) & 0xffff_ffff)
            if s >= 24 { match.set(.tpDst, UInt64(s)) }
            if s >= 48 { match.set(.inPort, 1) }
            entries.append(ClassifierEntry(match: match, priority: UInt16(100 + s), sequence: UInt64(i), rule: RuleIndex(i)))
            var key = FlowKey()
            key.set(.inPort, 1)
            key.set(.dlType, 0x0800)
            key.set(.nwProto, 17)
            key.set(.nwDst, address)
            key.set(.tpDst, UInt64(s))
            keys.append(key)
        }
        let start = now()
        let table = ClassifierTable(entries)
        let build = now() - start
        let order = (0..<lookups).map { _ in Int.random(in: 0..<keys.count) }
        var sink: Int32 = 0
        let tssStart = now()
        keys.withUnsafeBufferPointer { k in
            for i in order { sink &+= table.lookup(k.baseAddress! + i).rawValue }
        }
        let tss = (now() - tssStart) * 1e9 / Double(lookups)
        // The same keys in bursts of 64, as a worker classifies its cache's misses.
        let burst = ClassifierBurstScratch.capacity
        let burstKeys = UnsafeMutablePointer<FlowKey>.allocate(capacity: burst)
        let which = UnsafeMutablePointer<UInt8>.allocate(capacity: burst)
        let results = UnsafeMutablePointer<RuleIndex>.allocate(capacity: burst)
        let scratch = ClassifierBurstScratch()
        defer {
            burstKeys.deallocate()
            which.deallocate()
            results.deallocate()
        }
        for i in 0..<burst { which[i] = UInt8(i) }
        let burstStart = now()
        keys.withUnsafeBufferPointer { k in
            var next = 0
            while next + burst <= order.count {
                for i in 0..<burst { burstKeys[i] = k[order[next + i]] }
                table.lookup(burst: burstKeys, which: which, count: burst, results: results, scratch: scratch)
                sink &+= results[0].rawValue
                next += burst
            }
        }
        let tssBurst = (now() - burstStart) * 1e9 / Double(lookups / burst * burst)
        var cache = ExactMatchCache()
        let one = 0..<min(keys.count, 4096)
        let hitStart = now()
        keys.withUnsafeBufferPointer { k in
            for i in 0..<lookups { sink &+= cache.lookup(k.baseAddress! + (i % one.count), in: table).rawValue }
        }
        let hit = (now() - hitStart) * 1e9 / Double(lookups)
        print(row(["\(subtables)", "\(count)", String(format: "%.3f", build), String(format: "%.1f", tss), String(format: "%.1f", tssBurst),
                   String(format: "%.1f", hit), String(format: "%.0f", Double(table.memoryBytes) / Double(count))]),
              sink == 42 ? "" : "")
    }

    /// The thread's CPU time: the benchmark is single-threaded, and on a shared machine its wall
    /// time also counts the time other processes hold the CPU.
    func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// A table row: the first column left-aligned in 14, the rest right-aligned in 12.
func row(_ cells: [String]) -> String {
    cells.enumerated().map { i, cell in
        let width = i == 0 ? 14 : 12
        let pad = String(repeating: " ", count: max(0, width - cell.count))
        return i == 0 ? cell + pad : pad + cell
    }.joined()
}
