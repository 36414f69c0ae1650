import Testing
import VSwiftTesting
@testable import VSwiftDatapath

/// OpenFlow: a table without flows matches nothing, so every frame is a table miss and dropped
/// (as OVS after `del-flows`); only a bridge with no table at all switches as NORMAL.
@Suite("An empty flow table")
struct EmptyTableTests {
    @Test func emptyTableDropsEveryFrame() throws {
        let harness = try PipelineHarness(packets: [udpFrame()], rules: [])
        _ = harness.run(packets: 5_000)
        #expect(harness.transmitted == 0)
        #expect(harness.accounting().isConsistent)
    }
}
