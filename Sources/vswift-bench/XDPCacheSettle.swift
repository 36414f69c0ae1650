import Foundation
import Glibc
import VSwiftDatapath

/// `forward --xdp-cache`: after the warm-up, wait until the cache stops growing, so the window
/// measures the steady state. With many flows (1M rules, 60k flows) the installer puts entries in
/// at a few thousand a second, and a fixed warm-up measured a cache still filling (26,668 entries
/// after 5 s, 44.6 % of the window's frames hits). Bounded by `--xdp-cache-settle` seconds.
enum XDPCacheSettle {
    /// How often the entry count is sampled.
    static let interval = 0.5

    /// The cache's state when the wait ended.
    struct Outcome {
        var seconds: Double
        var entries: Int
        var capacity: Int
        /// Hits among the frames of the last interval (nil: no frames then).
        var hitShare: Double?
        /// false: still growing when the bound ran out.
        var settled: Bool
    }

    /// Grown by at most this many entries in one interval: settled (a trickle of late flows or
    /// replacements does not keep the bench waiting).
    static func tolerance(entries: Int) -> Int { max(1, entries / 200) }

    /// Samples the entry count every `interval` until one interval adds no more than `tolerance`,
    /// or until `bound` seconds have passed (0: one interval only, to report the state).
    static func wait(_ datapath: Datapath, bound: Double) throws -> Outcome {
        let start = monotonicSeconds()
        var previous = datapath.xdpFlowCacheReport(flows: false)
        while true {
            try Signals.sleep(interval)
            let current = datapath.xdpFlowCacheReport(flows: false)
            let grown = current.statistics.entries - previous.statistics.entries
            let elapsed = monotonicSeconds() - start
            let settled = grown <= tolerance(entries: current.statistics.entries)
            if settled || elapsed >= bound {
                return Outcome(seconds: elapsed, entries: current.statistics.entries, capacity: current.statistics.capacity,
                               hitShare: hitShare(from: previous.totals, to: current.totals), settled: settled)
            }
            previous = current
        }
    }

    static func hitShare(from a: XDPFlowCacheReport.PathCounters, to b: XDPFlowCacheReport.PathCounters) -> Double? {
        let hits = b.hits &- a.hits
        let all = hits &+ (b.misses &- a.misses) &+ (b.punted &- a.punted) &+ (b.failed &- a.failed)
        return all == 0 ? nil : Double(hits) / Double(all)
    }

    /// Puts the wait into the run's XDP path counts (JSON) and notes.
    static func record(_ result: inout RunResult, _ outcome: Outcome, warmup: Double) {
        result.xdpPath?.settleSeconds = outcome.seconds
        result.xdpPath?.settled = outcome.settled
        result.notes.append(describe(outcome, warmup: warmup))
    }

    /// One line for the log and the run's notes.
    static func describe(_ outcome: Outcome, warmup: Double) -> String {
        let share = outcome.hitShare.map { String(format: "hits %.1f%% of the frames", $0 * 100) } ?? "no frames through the cache"
        let state = outcome.settled
            ? String(format: "settled %.1f s after the %.1f s warm-up", outcome.seconds, warmup)
            : String(format: "STILL GROWING when --xdp-cache-settle ran out (%.1f s after the %.1f s warm-up): the window is not the steady state", outcome.seconds, warmup)
        return "XDP cache \(state): \(outcome.entries) entries (capacity \(outcome.capacity)); "
            + "\(share) in its last \(interval) s"
    }
}
