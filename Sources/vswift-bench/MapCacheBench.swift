import ArgumentParser
import CXDP
import Foundation
import Glibc
import VSwiftMapCache
import VSwiftPacket

/// The map-cache's lookup as a worker does it per packet on the encap path (longest-prefix match
/// in an instance, use mark, RLOC choice by flow hash), at 1, 10k and 100k prefixes: ns per
/// lookup, allocations per lookup (must be 0), snapshot build time and size.
struct MapCacheBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mapcache", abstract: "ns per map-cache lookup (LPM + RLOC choice) at 1, 10k, 100k prefixes.")

    @Option(help: "Lookups per measurement.")
    var lookups: Int = 4_000_000

    @Option(help: "Measurements per case (the minimum is printed).")
    var runs: Int = 3

    mutating func run() throws {
        _ = vs_pin_to_cpu(1)
        print("map-cache lookup (resolve: LPM + use mark + RLOC choice), destinations drawn from the installed prefixes:")
        print(row(["prefixes", "mix", "build s", "MB", "ns/lookup", "burst ns", "allocs/op"]))
        for count in [1, 10_000, 100_000] {
            for mix in Mix.allCases { measure(count: count, mix: mix) }
        }
    }

    /// Which prefixes: as a map-cache of sites holds them, or every length (the search's worst
    /// case: every probe of the binary search has lengths to look at).
    enum Mix: String, CaseIterable {
        /// IPv4 /16, /20, /24 (most), /28, /32 and IPv6 /48, /56, /64 (most), /128, in 4 instances.
        case sites
        /// IPv4 /8.../32 and IPv6 /16.../128, uniformly.
        case anyLength = "any-length"
    }

    func measure(count: Int, mix: Mix) {
        var rng = SystemRandomNumberGenerator()
        var prefixes = Set<EIDPrefix>()
        while prefixes.count < count {
            let iid = UInt32.random(in: 0..<4, using: &rng)
            let ipv4 = Int.random(in: 0..<4, using: &rng) != 0
            let length: Int
            switch (mix, ipv4) {
            case (.sites, true): length = [16, 20, 24, 24, 24, 24, 28, 32, 32].randomElement(using: &rng)!
            case (.sites, false): length = [48, 56, 64, 64, 64, 128].randomElement(using: &rng)!
            case (.anyLength, true): length = Int.random(in: 8...32, using: &rng)
            case (.anyLength, false): length = Int.random(in: 16...128, using: &rng)
            }
            let address = ipv4
                ? IPAddress(ipv4: 0x0a00_0000 | UInt32.random(in: 0...0x00ff_ffff, using: &rng))
                : IPAddress(high: 0x2001_0db8_0000_0000 | UInt64.random(in: 0...0xffff_ffff, using: &rng), low: rng.next())
            prefixes.insert(EIDPrefix(instanceID: iid, address: address, length: length)!)
        }
        let list = Array(prefixes)
        let marks = UseMarks(capacity: list.count)
        let entries = list.enumerated().map { i, prefix in
            // Sites: one RLOC or two of equal weight; any-length: four of weights 10, 20, 30, 40.
            let rlocs = mix == .sites ? 1 + i % 2 : 4
            return SnapshotEntry(prefix: prefix, locators: (0..<rlocs).map {
                Locator(address: IPAddress(ipv4: 0xc000_0200 | UInt32(i % 64 * 4 + $0)), priority: 1,
                        weight: mix == .sites ? 50 : UInt8(10 + $0 * 10))
            }, markSlot: i)
        }
        let buildStart = now()
        let snapshot = MapCacheSnapshot(entries, marks: marks)
        let build = now() - buildStart
        let bytes = snapshot.memoryBytes

        // Destinations inside the prefixes (host bits random), with their flow hashes.
        let queries = 1 << 16
        let destinations = UnsafeMutablePointer<IPAddress>.allocate(capacity: queries)
        let instances = UnsafeMutablePointer<UInt32>.allocate(capacity: queries)
        let hashes = UnsafeMutablePointer<UInt64>.allocate(capacity: queries)
        defer {
            destinations.deallocate()
            instances.deallocate()
            hashes.deallocate()
        }
        for q in 0..<queries {
            let prefix = list.randomElement(using: &rng)!
            // Random host bits (`>>` past the width gives 0: a /32 or /128 has none).
            let length = Int(prefix.length)
            let host = prefix.isIPv4
                ? IPAddress(high: 0, low: UInt64(UInt32.random(in: 0...UInt32.max, using: &rng) >> UInt32(length)))
                : IPAddress(high: rng.next() >> UInt64(length), low: length <= 64 ? rng.next() : rng.next() >> UInt64(length - 64))
            destinations[q] = IPAddress(high: prefix.address.high | host.high, low: prefix.address.low | host.low)
            instances[q] = prefix.instanceID
            hashes[q] = rng.next()
        }
        var best = Double.infinity
        var allocations: Int?
        var sink: UInt64 = 0
        for _ in 0..<runs {
            AllocationCounter.begin(tracking: [vs_gettid()])
            let start = now()
            for i in 0..<lookups {
                let q = i & (queries - 1)
                let r = snapshot.resolve(instanceID: instances[q], destination: destinations[q], flowHash: hashes[q])
                sink &+= r.rloc.low &+ UInt64(r.action.rawValue)
            }
            let elapsed = now() - start
            if let counted = AllocationCounter.end() { allocations = max(allocations ?? 0, counted.tracked) }
            best = min(best, elapsed * 1e9 / Double(lookups))
        }
        // The same in bursts of 32 (`lookup(burst:)`, misses overlapped), then per packet the use
        // mark and RLOC choice, as a worker would do for an rx burst.
        let burst = 32
        let scratch = MapCacheBurstScratch()
        let results = UnsafeMutablePointer<Int32>.allocate(capacity: burst)
        defer { results.deallocate() }
        var bestBurst = Double.infinity
        for _ in 0..<runs {
            let start = now()
            var i = 0
            while i + burst <= lookups {
                let q = i & (queries - 1)
                snapshot.lookup(burst: burst, instanceIDs: instances + q, destinations: destinations + q, results: results, scratch: scratch)
                for j in 0..<burst where results[j] >= 0 {
                    snapshot.markUsed(results[j])
                    if snapshot.action(of: results[j]) == .encapsulate {
                        sink &+= snapshot.locator(of: results[j], flowHash: hashes[q + j]).low
                    }
                }
                i += burst
            }
            bestBurst = min(bestBurst, (now() - start) * 1e9 / Double(lookups / burst * burst))
        }
        let perLookup = allocations.map { String(format: "%.3f", Double($0) / Double(lookups)) } ?? "n/a"
        print(row(["\(count)", mix.rawValue, String(format: "%.3f", build), String(format: "%.1f", Double(bytes) / 1e6),
                   String(format: "%.1f", best), String(format: "%.1f", bestBurst), perLookup]), sink == 42 ? "" : "")
    }

    /// The thread's CPU time (as the classifier bench: the host is shared).
    func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
