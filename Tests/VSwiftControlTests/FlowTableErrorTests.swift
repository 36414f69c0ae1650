import Testing
import VSwiftProtocol
import VSwiftClassifier
import VSwiftDatapath
@testable import VSwiftControl

/// FlowTables says what is at fault in its own terms; the dispatch layer alone turns that into
/// the JSON-RPC code and message the client sees (which must not change).
@Suite struct FlowTableErrorTests {
    private func tables(counterSlots: Int = 8) -> (FlowTables, FakeDatapath) {
        let datapath = FakeDatapath()
        return (FlowTables(datapath: datapath, clock: { 1000 }, counterSlots: counterSlots), datapath)
    }

    private func flow(_ priority: UInt16) -> NewFlow {
        NewFlow(FlowRule(priority: priority, match: Match(), actions: []))
    }

    @Test func aMissingBridgeIsNamed() {
        let (tables, _) = tables()
        #expect(throws: FlowTableError.noSuchBridge("br9")) { try tables.add(bridge: "br9", rules: [flow(1)]) }
        #expect(throws: FlowTableError.noSuchBridge("br9")) { try tables.delete(bridge: "br9", selector: .all) }
        #expect(throws: FlowTableError.noSuchBridge("br9")) { try tables.snapshot(bridge: "br9") }
    }

    @Test func runningOutOfCounterSlotsSaysHowMany() throws {
        let (tables, datapath) = tables(counterSlots: 2)
        try datapath.addBridge("br0")
        try tables.createTable(bridge: "br0", rules: [flow(0)])
        #expect(throws: FlowTableError.tooManyFlows(capacity: 2, available: 1)) {
            try tables.add(bridge: "br0", rules: [flow(1), flow(2)])
        }
        #expect(tables.count(bridge: "br0") == 1)
    }

    @Test func aDatapathRefusalIsCarried() throws {
        let (tables, datapath) = tables()
        try datapath.addBridge("br0")
        try tables.createTable(bridge: "br0", rules: [flow(0)])
        datapath.failNextFlowTable = .tooManyPorts(64)
        #expect(throws: FlowTableError.datapath(.tooManyPorts(64))) { try tables.replace(bridge: "br0", rules: [flow(1)]) }
        #expect(tables.count(bridge: "br0") == 1)
    }

    @Test func theClientSeesTheSameCodesAndMessages() {
        #expect(RPCError(FlowTableError.noSuchBridge("br9")) == RPCError.noSuchBridge("br9"))
        #expect(RPCError(FlowTableError.tooManyFlows(capacity: 3, available: 1)) == RPCError.resourceUnavailable(
            "too many flows: the datapath has room for 3 flows in all, 1 are free"))
        let refusal = DatapathError.unsupported("no flow tables here")
        #expect(RPCError(FlowTableError.datapath(refusal)) == RPCError(refusal))
        #expect(RPCError(refusal) == RPCError.datapathFailure(refusal.description))
    }
}
