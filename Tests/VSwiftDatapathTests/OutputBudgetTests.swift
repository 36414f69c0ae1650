import Testing
import VSwiftClassifier
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A flow at the action cap (1024 `output:2`) once turned each ping into 1024 frames and emptied
/// the UMEM the other ports' fill rings draw on. Each frame now executes at most
/// `Worker.maxOutputsPerPacket` outputs; the rest are dropped and counted on the input port.
@Suite("Outputs per packet are bounded")
struct OutputBudgetTests {
    @Test func aFlowAtTheActionCapSendsAtMostTheBudgetPerFrameAndCountsTheRest() throws {
        let text = "in_port=1,actions=" + Array(repeating: "output:2", count: FlowRule.maxActions).joined(separator: ",")
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules([text]), batch: 1)
        let packets = 200
        _ = harness.run(packets: packets)
        let budget = PipelineHarness.maxOutputsPerPacket
        #expect(harness.transmitted == packets * budget)
        #expect(harness.inputDropped == UInt64(packets * (FlowRule.maxActions - budget)))
        // No copy or original is leaked or double-freed by the skipped outputs.
        #expect(harness.accounting().isConsistent, "\(harness.accounting())")
    }

    @Test func outputsWithinTheBudgetAreAllSent() throws {
        let text = "in_port=1,actions=" + Array(repeating: "output:2", count: PipelineHarness.maxOutputsPerPacket).joined(separator: ",")
        let harness = try PipelineHarness(packets: [udpFrame()], rules: try rules([text]), batch: 1)
        _ = harness.run(packets: 100)
        #expect(harness.transmitted == 100 * PipelineHarness.maxOutputsPerPacket)
        #expect(harness.inputDropped == 0)
        #expect(harness.accounting().isConsistent, "\(harness.accounting())")
    }
}
