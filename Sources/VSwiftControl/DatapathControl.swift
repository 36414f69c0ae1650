import Glibc
import VSwiftClassifier
import VSwiftDatapath
import VSwiftProtocol

/// What the control plane needs from the datapath. `Datapath` is the real one; tests use a fake,
/// so the switch's bookkeeping (bridges, ports, flow tables, persistence) runs without the kernel.
/// Control path only, so an existential is fine. Sendable: the daemon shuts the datapath down from
/// a signal handler while the service holds it.
public protocol DatapathControl: AnyObject, Sendable {
    func addBridge(_ name: String) throws(DatapathError)
    func deleteBridge(_ name: String) throws(DatapathError)
    @discardableResult
    func addPort(_ name: String, bridge: String) throws(DatapathError) -> PortAttachment
    @discardableResult
    func addTunnelPort(_ name: String, bridge: String, options: LISPPortOptions) throws(DatapathError) -> PortAttachment
    @discardableResult
    func addUnderlay(_ name: String) throws(DatapathError) -> PortAttachment
    /// Removes a port of a bridge, or an underlay device.
    func deletePort(_ name: String) throws(DatapathError)
    func attachment(of port: String) -> PortAttachment?
    func statistics(port name: String) -> PortStatistics?
    func frameAccounting() -> [FrameAccounting]
    func workerStatistics() -> [WorkerStatistics]
    /// The XDP flow cache (`XDPFlowCacheReport.off` when there is none; see SwitchService+XDPCache.swift).
    func xdpFlowCacheReport(bridge: String?, flows: Bool) -> XDPFlowCacheReport

    /// OpenFlow port numbers of a bridge's ports, by port name (the internal port is `ofportLocal`).
    func setPortNumbers(bridge: String, _ numbers: [String: OpenFlowPortNumber]) throws(DatapathError)
    /// Replaces the bridge's whole flow table with `count` rules, rule i read from `rule(i)` and its
    /// match alone from `match(i)` (each more than once, always the same).
    func setFlowTable(bridge: String, count: Int, rule: (Int) -> DatapathRule, match: (Int) -> Match) throws(DatapathError)
    /// Adds new flows (higher sequences than all in the table) to the published table; false,
    /// changing nothing, when the table does not hold `expectedCount - rules.count` rules.
    func addToFlowTable(bridge: String, rules: [DatapathRule], expectedCount: Int) throws(DatapathError) -> Bool
    /// Removes a few rules (by match and counter slot; no other rule has one of these matches)
    /// from the published table; false, changing nothing, when it cannot.
    func removeFromFlowTable(bridge: String, matches: [Match], counterSlots: Set<Int>, expectedCount: Int) -> Bool
    func ruleStatistics(counterSlot: Int) -> RuleStatistics
    func resetRuleStatistics(counterSlot: Int)
    /// Runs a frame through the pipeline without sending it (see Worker+Trace.swift).
    func trace(bridge: String, inPort: String, frame: [UInt8],
               tunnel: (id: UInt64, source: UInt32, destination: UInt32)?) throws(DatapathError) -> DatapathTrace
}

extension DatapathControl {
    /// A datapath without a pipeline (the control tests' fake) cannot trace.
    public func trace(bridge: String, inPort: String, frame: [UInt8],
                      tunnel: (id: UInt64, source: UInt32, destination: UInt32)?) throws(DatapathError) -> DatapathTrace {
        throw .unsupported("this datapath cannot trace")
    }
}

extension Datapath: DatapathControl {}

/// Seconds on a monotonic clock, with a fraction. Must be the clock of `RuleStatistics.lastUsed`
/// (`Datapath.monotonicSeconds`, whole seconds of CLOCK_MONOTONIC), so idle times can be compared.
public typealias MonotonicClock = @Sendable () -> Double

/// CLOCK_MONOTONIC in seconds: the datapath's clock (it reads the coarse variant of the same clock).
public let monotonicClock: MonotonicClock = {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
