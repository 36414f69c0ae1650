import ArgumentParser
import CXDP
import Glibc
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket

/// The flow cache's control side (issue 17): the megaflow lookup against the plain one on the same
/// table, and revalidating a full cache (64k entries) after one flow change, in ns per entry.
struct MegaflowBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "megaflow", abstract: "ns per megaflow lookup, and ns per entry to revalidate 64k cache entries after one flow change.")

    @Option(help: "Cache entries to install and revalidate.")
    var entries: Int = 65_536

    @Option(help: "Measurements per case (the minimum is printed).")
    var runs: Int = 3

    mutating func run() throws {
        _ = vs_pin_to_cpu(1)
        print("megaflow lookup vs lookup (ns), and revalidation of \(entries) entries after one mod-flows (ns/entry):")
        print(row(["subtables", "rules", "lookup ns", "megaflow ns", "entries", "ns/entry", "removed"]))
        for (subtables, rules) in [(1, 1_000), (16, 1_000), (16, 100_000), (64, 100_000)] {
            measure(subtables: subtables, ruleCount: rules)
        }
    }

    struct Rule {
        var id: UInt64
        var priority: UInt16
        var match: Match
        var actions: [FlowAction]
    }

    /// Rules as `vswift-bench classifier` builds them (subtable s: nw_dst /(32 - s % 24), past 24
    /// also tp_dst, past 48 also in_port), each outputting to port 2 or 3.
    func table(subtables: Int, ruleCount: Int) -> (rules: [Rule], keys: [FlowKey]) {
        var rules: [Rule] = []
        var keys: [FlowKey] = []
        for i in 0..<ruleCount {
            let s = i % subtables
            var match = Match()
            match.set(.dlType, 0x0800)
            match.set(.nwProto, 17)
            let address = UInt64(0x0a00_0000 | UInt32(truncatingIfNeeded: i &* 2654435761) & 0x00ff_ffff)
            let prefix = 32 - (s % 24)
            match.set(.nwDst, address, mask: (0xffff_ffff << UInt64(32 - prefix)) & 0xffff_ffff)
            if s >= 24 { match.set(.tpDst, UInt64(s)) }
            if s >= 48 { match.set(.inPort, 1) }
            rules.append(Rule(id: UInt64(i), priority: UInt16(100 + s), match: match, actions: [.output(UInt32(2 + i % 2))]))
            var key = FlowKey()
            key.set(.inPort, 1)
            key.set(.dlType, 0x0800)
            key.set(.nwProto, 17)
            key.set(.nwDst, address)
            key.set(.tpDst, UInt64(s))
            keys.append(key)
        }
        return (rules, keys)
    }

    func view(_ rules: [Rule]) -> FlowCacheView {
        let table = ClassifierTable(count: rules.count) { i in
            ClassifierEntry(match: rules[i].match, priority: rules[i].priority, sequence: rules[i].id, rule: RuleIndex(i))
        }
        return FlowCacheView(table: table, rule: { (rules[$0.position!].id, rules[$0.position!].actions) },
                             port: { _ in CachePort(kind: .device) })
    }

    func measure(subtables: Int, ruleCount: Int) {
        var (rules, keys) = table(subtables: subtables, ruleCount: ruleCount)
        let before = view(rules)
        // Lookup against megaflow lookup, same keys.
        let lookups = 1_000_000
        let order = (0..<lookups).map { _ in Int.random(in: 0..<keys.count) }
        var sink: Int64 = 0
        var start = now()
        keys.withUnsafeBufferPointer { k in
            for i in order { sink &+= Int64(before.table.lookup(k.baseAddress! + i).rawValue) }
        }
        let plain = (now() - start) * 1e9 / Double(lookups)
        start = now()
        for i in order { sink &+= Int64(truncatingIfNeeded: before.table.megaflowLookup(keys[i]).mask.w3) }
        let megaflow = (now() - start) * 1e9 / Double(lookups)

        // Fill the cache: keys of the rules, then random addresses (misses) until `entries`.
        var installed = 0
        var best = Double.infinity
        var removedCount = 0
        for _ in 0..<runs {
            var cache = MegaflowTable(capacity: entries, version: before.table.version)
            var next = 0
            var rng = SystemRandomNumberGenerator()
            while cache.count < entries && next < entries * 4 {
                var key = next < keys.count ? keys[next] : keys[next % keys.count]
                if next >= keys.count { key.set(.nwDst, UInt64(UInt32.random(in: 0...UInt32.max, using: &rng))) }
                next += 1
                if case .install(let flow) = before.decide(key) { _ = cache.install(flow, now: 0) }
            }
            installed = cache.count
            // One mod-flows: rule 0's actions change; a new table version is built.
            rules[0].actions = rules[0].actions == [.output(2)] ? [.output(3)] : [.output(2)]
            let after = view(rules)
            start = now()
            let removed = cache.revalidate(after)
            best = min(best, (now() - start) * 1e9 / Double(max(installed, 1)))
            removedCount = removed.count
        }
        print(row(["\(subtables)", "\(ruleCount)", String(format: "%.1f", plain), String(format: "%.1f", megaflow),
                   "\(installed)", String(format: "%.0f", best), "\(removedCount)"]), sink == 42 ? "" : "")
    }

    /// The thread's CPU time (single-threaded; the host is shared).
    func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
