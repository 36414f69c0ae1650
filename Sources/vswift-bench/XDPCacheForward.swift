import Foundation
import Glibc
import VSwiftDatapath

/// `forward --xdp-cache`: what the bench adds to a vswift run with the XDP flow cache on — the
/// first packets of the new flow (forwarded by the workers while the installer puts the entry in
/// the maps), the split of the window's frames between the XDP path and the workers, the ratio
/// rows — and the generator's own ceiling row (issue 17, "Proof").
enum XDPCacheForward {
    static let ceilingLabel = "generator-ceiling"
    /// The targets of issue 17 for p2p and LISP encap: the cache ≥ 3 × the AF_XDP path and ≥ 3 × OVS.
    static let target = 3.0

    /// The window's XDP path counts, from the same report `vswiftctl dump-xdp-cache` prints.
    struct PathSample {
        var totals: XDPFlowCacheReport.PathCounters
        var statistics: XDPFlowCacheReport.Statistics

        static func take(_ datapath: Datapath) -> PathSample {
            let report = datapath.xdpFlowCacheReport(flows: false)
            return PathSample(totals: report.totals, statistics: report.statistics)
        }
    }

    /// From the generator's start to the first frame an XDP entry forwarded.
    struct FirstPackets {
        /// nil: no hit within the warm-up.
        var milliseconds: Double?
        /// Frames the workers transmitted (the AF_XDP path) and the sink counted until then.
        var workerFrames: UInt64
        var sinkFrames: UInt64
    }

    /// Sleeps out the warm-up (`within` seconds), polling the cache's hit count every 0.5 ms until
    /// the first hit: the workers' transmit count then says how many of the flow's first frames
    /// they forwarded while the entry was being installed.
    static func watchFirstPackets(_ datapath: Datapath, sink: Sink, within seconds: Double) throws -> FirstPackets {
        let start = monotonicSeconds(), deadline = start + seconds
        let sinkAtStart = sink.counters().packets
        func workerFrames() -> UInt64 { datapath.workerStatistics().reduce(0) { $0 &+ $1.txPackets } }
        var first: FirstPackets?
        while monotonicSeconds() < deadline {
            if Signals.stopRequested { throw BenchError.interrupted }
            if first != nil {
                try Signals.sleep(min(0.05, max(0, deadline - monotonicSeconds())))
                continue
            }
            let hits = datapath.xdpFlowCacheReport(flows: false).totals.hits
            if hits > 0 {
                first = FirstPackets(milliseconds: (monotonicSeconds() - start) * 1000, workerFrames: workerFrames(),
                                     sinkFrames: sink.counters().packets &- sinkAtStart)
            } else {
                usleep(500)
            }
        }
        return first ?? FirstPackets(milliseconds: nil, workerFrames: workerFrames(), sinkFrames: sink.counters().packets &- sinkAtStart)
    }

    /// Puts the window's path counts and the first-packet check into the run's result and notes.
    static func record(_ result: inout RunResult, first: FirstPackets?, from a: PathSample, to b: PathSample) {
        var path = XDPPathCounts(
            hits: b.totals.hits &- a.totals.hits, misses: b.totals.misses &- a.totals.misses,
            punted: b.totals.punted &- a.totals.punted, failed: b.totals.failed &- a.totals.failed,
            entries: b.statistics.entries, installed: b.statistics.installed, refused: b.statistics.refused)
        if let first {
            path.firstHitMilliseconds = first.milliseconds
            path.workerFramesBeforeFirstHit = first.workerFrames
            path.sinkFramesBeforeFirstHit = first.sinkFrames
        }
        result.xdpPath = path
        let refused = path.refused.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        result.notes.append(String(
            format: "XDP path: %.1f%% of the window's frames hit a cache entry (%llu hits, %llu misses to the workers, %llu punted, %llu failed); %d entries, %llu installed%@",
            path.hitShare * 100, path.hits, path.misses, path.punted, path.failed, path.entries, path.installed,
            refused.isEmpty ? "" : "; refused: " + refused))
        if let first {
            if let ms = first.milliseconds {
                result.notes.append(String(
                    format: "first packets: the workers forwarded %llu frames (the sink counted %llu) in the %.1f ms before the first XDP hit%@",
                    first.workerFrames, first.sinkFrames, ms, first.workerFrames > 0 && first.sinkFrames > 0 ? "" : " — NOT forwarded: check failed"))
            } else {
                result.notes.append("first packets: no XDP hit during the warm-up (the flow stayed on the workers' path, which forwarded \(first.workerFrames) frames)")
            }
        }
    }

    /// The ratio rows of issue 17: the cache against the AF_XDP path, xsk_fwd and OVS, per scenario.
    static func ratioLines(_ summaries: [Summary]) -> [String] {
        guard let cached = summaries.first(where: { $0.switchName == "vswift-xdp" }) else { return [] }
        var lines: [String] = []
        for other in ["vswift", "xsk_fwd", "ovs-afxdp", "ovs-vxlan", ceilingLabel] {
            guard let base = summaries.first(where: { $0.switchName == other }), base.mpps > 0 else { continue }
            let ratio = cached.mpps / base.mpps
            var line = String(format: "ratio %@: vswift-xdp / %@ = %.2f (%.3f / %.3f Mpps)", cached.scenario, other, ratio, cached.mpps, base.mpps)
            if other == ceilingLabel {
                line += ": share of what the generator can push into s0"
            } else if other != "xsk_fwd" {
                line += ratio >= target ? String(format: "; target ≥ %.0f met", target) : String(format: "; target ≥ %.0f not met", target)
            }
            if cached.generatorBound && other != ceilingLabel { line += " (vswift-xdp generator-bound: a lower bound)" }
            lines.append(line)
        }
        return lines
    }
}

/// vswift-xdp runs only: the window's frames by path and the cache's state at its end.
struct XDPPathCounts: Codable {
    var hits: UInt64
    var misses: UInt64
    var punted: UInt64
    var failed: UInt64
    var entries: Int
    var installed: UInt64
    var refused: [String: UInt64]
    var firstHitMilliseconds: Double?
    var workerFramesBeforeFirstHit: UInt64?
    var sinkFramesBeforeFirstHit: UInt64?
    /// Seconds waited after the warm-up for the cache to stop growing (XDPCacheSettle), and
    /// whether it did within `--xdp-cache-settle`.
    var settleSeconds: Double?
    var settled: Bool?

    var hitShare: Double {
        let all = hits &+ misses &+ punted &+ failed
        return all == 0 ? 0 : Double(hits) / Double(all)
    }
}

/// The generator-ceiling row: the sink's XDP drop program on s0 itself, counted there, so the rate
/// is what the generator can push into s0 when its receive path does nothing else (with
/// `--receive-cpu switch`, on the switch CPU, as every switch's would).
final class DropSwitch: SwitchUnderTest {
    let name = XDPCacheForward.ceilingLabel
    let pid: Int32
    let threadIDs: [Int32]
    let counter: Sink

    var measuredThreads: [(pid: Int32, tid: Int32)] { threadIDs.map { ($0, $0) } }

    init(topology: Topology, bpfDirectory: String, receiveThreads: [ReceiveThread]) throws {
        guard let napi = receiveThreads.first(where: { $0.device == "s0" }) else {
            throw BenchError.failed("the generator-ceiling row needs s0's NAPI threaded (--receive-cpu switch)")
        }
        counter = try Sink(namespace: topology.switchNamespace, device: "s0", objectPath: "\(bpfDirectory)/\(Artifacts.sink)")
        pid = napi.pid
        threadIDs = [napi.pid]
    }

    func stop() { counter.close() }
}
