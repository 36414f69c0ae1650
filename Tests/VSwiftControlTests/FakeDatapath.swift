import Foundation
import Logging
import VSwiftClassifier
import VSwiftControl
import VSwiftDatapath
import VSwiftProtocol

/// A datapath without a kernel: remembers what the control plane told it and serves counters that
/// tests set.
// Unchecked: a test reads and changes it only between its awaited calls into the service (which
// uses it during them), so the awaits order every access.
final class FakeDatapath: DatapathControl, @unchecked Sendable {
    /// Devices that exist on the fake host (add-port of any other name fails like a missing device).
    var devices: Set<String>
    var bridges: Set<String> = []
    /// Port name → bridge.
    var ports: [String: String] = [:]
    /// LISP ports' settings, by port name.
    var tunnelOptions: [String: LISPPortOptions] = [:]
    var portNumbers: [String: [String: UInt32]] = [:]
    /// The last table published per bridge.
    var flowTables: [String: [DatapathRule]] = [:]
    var publishCount = 0
    /// How many of those were in-place additions (addToFlowTable) and removals (removeFromFlowTable).
    var additionsInPlace = 0
    var removalsInPlace = 0
    var counters: [Int: RuleStatistics] = [:]
    var resets: [Int] = []
    /// The next setFlowTable fails with this.
    var failNextFlowTable: DatapathError?
    /// What the XDP flow cache holds; nil: the cache is off.
    var xdpCache: XDPFlowCacheReport.Input?

    init(devices: Set<String> = ["vnet0", "eth1", "eth2"]) {
        self.devices = devices
    }

    func addBridge(_ name: String) throws(DatapathError) {
        guard !bridges.contains(name), ports[name] == nil else { throw .bridgeExists(name) }
        bridges.insert(name)
        ports[name] = name
    }

    func deleteBridge(_ name: String) throws(DatapathError) {
        guard bridges.remove(name) != nil else { throw .noSuchBridge(name) }
        ports = ports.filter { $0.value != name }
        flowTables[name] = nil
        portNumbers[name] = nil
    }

    func addPort(_ name: String, bridge: String) throws(DatapathError) -> PortAttachment {
        guard bridges.contains(bridge) else { throw .noSuchBridge(bridge) }
        guard ports[name] == nil else { throw .portExists(name) }
        guard devices.contains(name) else { throw .noSuchDevice(name) }
        ports[name] = bridge
        // PortAttachment has no public initializer; it is Codable.
        return try! JSONDecoder().decode(PortAttachment.self, from: Data(#"{"kind":"afxdp","queues":1}"#.utf8))
    }

    func addTunnelPort(_ name: String, bridge: String, options: LISPPortOptions) throws(DatapathError) -> PortAttachment {
        guard bridges.contains(bridge) else { throw .noSuchBridge(bridge) }
        guard ports[name] == nil else { throw .portExists(name) }
        ports[name] = bridge
        tunnelOptions[name] = options
        return try! JSONDecoder().decode(PortAttachment.self, from: Data(#"{"kind":"lisp","queues":0}"#.utf8))
    }

    func addUnderlay(_ name: String) throws(DatapathError) -> PortAttachment {
        guard ports[name] == nil else { throw .portExists(name) }
        guard devices.contains(name) else { throw .noSuchDevice(name) }
        ports[name] = ""
        return try! JSONDecoder().decode(PortAttachment.self, from: Data(#"{"kind":"underlay","queues":1}"#.utf8))
    }

    func deletePort(_ name: String) throws(DatapathError) {
        guard ports.removeValue(forKey: name) != nil else { throw .noSuchPort(name) }
        tunnelOptions[name] = nil
    }

    func attachment(of port: String) -> PortAttachment? { nil }
    func statistics(port name: String) -> PortStatistics? { ports[name] == nil ? nil : PortStatistics() }
    func frameAccounting() -> [FrameAccounting] { [] }
    func workerStatistics() -> [WorkerStatistics] {
        [WorkerStatistics(worker: 0, cpu: 1, rxPackets: 100, txPackets: 99,
                          cycles: WorkerCycles(busy: 5_740, idle: 1_000, systemCalls: 3_260, rounds: 7))]
    }

    func setPortNumbers(bridge: String, _ numbers: [String: OpenFlowPortNumber]) throws(DatapathError) {
        guard bridges.contains(bridge) else { throw .noSuchBridge(bridge) }
        portNumbers[bridge] = numbers.mapValues(\.rawValue)
    }

    func setFlowTable(bridge: String, count: Int, rule: (Int) -> DatapathRule, match: (Int) -> Match) throws(DatapathError) {
        let rules = (0..<count).map(rule)
        precondition((0..<count).allSatisfy { match($0) == rules[$0].match }, "match(i) is rule(i)'s match")
        if let failure = failNextFlowTable {
            failNextFlowTable = nil
            throw failure
        }
        guard bridges.contains(bridge) else { throw .noSuchBridge(bridge) }
        flowTables[bridge] = rules
        publishCount += 1
    }

    func addToFlowTable(bridge: String, rules: [DatapathRule], expectedCount: Int) throws(DatapathError) -> Bool {
        if let failure = failNextFlowTable {
            failNextFlowTable = nil
            throw failure
        }
        guard bridges.contains(bridge) else { throw .noSuchBridge(bridge) }
        guard let old = flowTables[bridge], old.count + rules.count == expectedCount else { return false }
        flowTables[bridge] = old + rules
        publishCount += 1
        additionsInPlace += 1
        return true
    }

    func removeFromFlowTable(bridge: String, matches: [Match], counterSlots: Set<Int>, expectedCount: Int) -> Bool {
        guard let old = flowTables[bridge], old.count - matches.count == expectedCount else { return false }
        let remaining = old.filter { !counterSlots.contains($0.counterSlot) }
        guard remaining.count == expectedCount else { return false }
        flowTables[bridge] = remaining
        publishCount += 1
        removalsInPlace += 1
        return true
    }

    func ruleStatistics(counterSlot: Int) -> RuleStatistics { counters[counterSlot] ?? RuleStatistics() }

    func xdpFlowCacheReport(bridge: String?, flows: Bool) -> XDPFlowCacheReport {
        xdpCache.map { XDPFlowCacheReport($0, bridge: bridge, flows: flows) } ?? .off
    }

    func resetRuleStatistics(counterSlot: Int) {
        counters[counterSlot] = nil
        resets.append(counterSlot)
    }

    /// The published rule of `bridge` with this priority and actions, e.g. to find its counter slot.
    func rule(_ bridge: String, priority: UInt16, where predicate: (DatapathRule) -> Bool = { _ in true }) -> DatapathRule? {
        let matching = (flowTables[bridge] ?? []).filter { $0.priority == priority && predicate($0) }
        return matching.count == 1 ? matching[0] : nil
    }
}

/// A clock the test moves by hand.
// Unchecked: a test moves it only between its awaited calls into the service, which reads it.
final class TestClock: @unchecked Sendable {
    var now: Double

    init(_ now: Double = 1000) {
        self.now = now
    }

    var function: MonotonicClock { { self.now } }
}

/// A SwitchService on a fake datapath and a test clock, with helpers to call its methods.
struct Harness {
    let datapath: FakeDatapath
    let clock: TestClock
    let service: SwitchService

    init(
        devices: Set<String> = ["vnet0", "eth1", "eth2"], store: ConfigStore? = nil, counterSlots: Int = 1 << 16,
        journalFromBytes: Int? = 1 << 20
    ) {
        datapath = FakeDatapath(devices: devices)
        clock = TestClock()
        service = SwitchService(
            datapath: datapath, systemID: "390982aa-7bf6-4dfd-84eb-76fe7654e73d",
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            store: store, clock: clock.function, counterSlots: counterSlots, journalFromBytes: journalFromBytes)
    }

    @discardableResult
    func call(_ method: String, _ params: [String: JSONValue] = [:]) async -> Result<JSONValue, RPCError> {
        await service.handle(RPCRequest(id: 1, method: method, params: .object(params)))
    }

    /// Calls and expects success.
    @discardableResult
    func ok(_ method: String, _ params: [String: JSONValue] = [:]) async throws -> JSONValue {
        try await call(method, params).get()
    }

    func addFlow(_ bridge: String, _ flow: String) async throws {
        try await ok("add-flow", ["bridge": .string(bridge), "flow": .string(flow)])
    }

    func addFlows(_ bridge: String, _ lines: [String]) async -> Result<JSONValue, RPCError> {
        await call("add-flows", ["bridge": .string(bridge), "flows": .array(lines.map(JSONValue.string))])
    }

    func dump(_ bridge: String, _ match: String? = nil) async throws -> DumpFlowsReport {
        var params: [String: JSONValue] = ["bridge": .string(bridge)]
        if let match { params["match"] = .string(match) }
        return try await ok("dump-flows", params).decode(DumpFlowsReport.self)
    }

    /// "priority=…,match actions=…" of each flow, in dump order.
    func flows(_ bridge: String, _ match: String? = nil) async throws -> [String] {
        try await dump(bridge, match).flows.map { flow in
            var text = flow.priority == FlowRule.defaultPriority ? "" : "priority=\(flow.priority)"
            if !flow.match.isEmpty { text += (text.isEmpty ? "" : ",") + flow.match }
            return text + " actions=" + flow.actions
        }
    }

    func show() async throws -> ShowReport {
        try await ok("show").decode(ShowReport.self)
    }
}

extension Result {
    var error: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

extension JSONValue {
    subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }
}
