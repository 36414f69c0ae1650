import Testing
import VSwiftDatapath
@testable import vswift_bench

/// The warm-up's wait for the XDP cache to stop growing: when it counts as settled, and what it prints.
@Suite struct XDPCacheSettleTests {
    @Test func toleranceIsHalfAPercentAndAtLeastOne() {
        #expect(XDPCacheSettle.tolerance(entries: 0) == 1)
        #expect(XDPCacheSettle.tolerance(entries: 1) == 1)
        #expect(XDPCacheSettle.tolerance(entries: 24_630) == 123)
    }

    @Test func hitShareOfAnIntervalWithAndWithoutFrames() {
        let a = XDPFlowCacheReport.PathCounters(hits: 100, misses: 50, punted: 0, failed: 0)
        let b = XDPFlowCacheReport.PathCounters(hits: 400, misses: 150, punted: 0, failed: 0)
        #expect(XDPCacheSettle.hitShare(from: a, to: b) == 0.75)
        #expect(XDPCacheSettle.hitShare(from: a, to: a) == nil)
    }

    @Test func descriptionSaysSettledOrStillGrowing() {
        var outcome = XDPCacheSettle.Outcome(seconds: 4.6, entries: 24_630, capacity: 65_536, hitShare: 0.407, settled: true)
        #expect(XDPCacheSettle.describe(outcome, warmup: 3)
            == "XDP cache settled 4.6 s after the 3.0 s warm-up: 24630 entries (capacity 65536); hits 40.7% of the frames in its last 0.5 s")
        outcome.settled = false
        outcome.hitShare = nil
        let text = XDPCacheSettle.describe(outcome, warmup: 3)
        #expect(text.contains("STILL GROWING") && text.contains("no frames through the cache"), "\(text)")
    }
}
