import Dispatch
import Synchronization
import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftProtocol

// Reading the tables: dump-flows snapshots and the flows as they are saved.
extension FlowTables {
    /// The selected flows (all when nil) in dump order: priority descending, then installation order.
    func snapshot(bridge: String, selector: FlowSelector? = nil) throws(FlowTableError) -> [FlowSnapshot] {
        guard let table = tables[bridge] else { throw .noSuchBridge(bridge) }
        // Sorted as small (key, index) pairs; the big snapshots are made once, in order.
        var order: [(key: UInt64, index: Dictionary<FlowIdentity, InstalledFlow>.Index)] = []
        order.reserveCapacity(selector == nil ? table.flows.count : 0)
        var index = table.flows.startIndex
        while index != table.flows.endIndex {
            if selector?.selects(table.flows.keys[index], table.flows.values[index]) ?? true {
                order.append((Self.dumpOrder(table.flows.keys[index].priority, table.flows.values[index].sequence), index))
            }
            table.flows.formIndex(after: &index)
        }
        order.sort { $0.key < $1.key }
        var result: [FlowSnapshot] = []
        result.reserveCapacity(order.count)
        for entry in order {
            let (id, flow) = table.flows[entry.index]
            result.append(FlowSnapshot(id: id, flow: flow, statistics: datapath.ruleStatistics(counterSlot: flow.counterSlot)))
        }
        return result
    }

    /// The table's flows in ovs-ofctl syntax (`FlowFormatter.flow`), in dump order (which keeps
    /// installation order among equal priorities, so re-adding them in this order keeps the
    /// tie-breaking). Formats only the flows that have not been formatted before.
    func savedFlows(bridge: String) -> [String] {
        guard var table = tables.removeValue(forKey: bridge) else { return [] }
        defer { tables[bridge] = table }
        if let texts = table.savedTexts { return texts }
        var missing: [Dictionary<FlowIdentity, InstalledFlow>.Index] = []
        var index = table.flows.startIndex
        while index != table.flows.endIndex {
            if table.flows.values[index].text == nil { missing.append(index) }
            table.flows.formIndex(after: &index)
        }
        if !missing.isEmpty {
            let flows = table.flows
            let texts = parallelMap(missing) { index in
                let (id, flow) = flows[index]
                return FlowFormatter.flow(flow.rule(id))
            }
            for (index, text) in zip(missing, texts) { table.flows.values[index].text = text }
        }
        return Self.savedTextsInDumpOrder(table.flows)!
    }

    /// The saved texts of `flows` in dump order; nil when one has none yet.
    static func savedTextsInDumpOrder(_ flows: [FlowIdentity: InstalledFlow]) -> [String]? {
        // Sorted as small (key, index) pairs, then the texts read in that order.
        var ordered: [(key: UInt64, index: Dictionary<FlowIdentity, InstalledFlow>.Index)] = []
        ordered.reserveCapacity(flows.count)
        var index = flows.startIndex
        while index != flows.endIndex {
            if flows.values[index].text == nil { return nil }
            ordered.append((dumpOrder(flows.keys[index].priority, flows.values[index].sequence), index))
            flows.formIndex(after: &index)
        }
        ordered.sort { $0.key < $1.key }
        return ordered.map { flows.values[$0.index].text! }
    }

    /// Starts putting the saved texts of `flows` in dump order on another core, while this one
    /// publishes them: the save that follows a bulk change then has them ready (sorting and
    /// gathering a million texts was a tenth of a million-flow add-flows). `wait()` gives them.
    static func orderSavedTexts(of flows: [FlowIdentity: InstalledFlow]) -> PendingSavedTexts {
        let pending = PendingSavedTexts()
        DispatchQueue.global().async(group: pending.group) { pending.deliver(savedTextsInDumpOrder(flows)) }
        return pending
    }

    /// A flow's place in dump order (priority descending, then sequence) as one word to sort by:
    /// the priority inverted above the sequence, which stays below 2^48 (a million flows a
    /// second would take nine years to get there).
    private static func dumpOrder(_ priority: UInt16, _ sequence: UInt64) -> UInt64 {
        precondition(sequence < 1 << 48, "flow sequence number above 2^48")
        return UInt64(~priority) << 48 | sequence
    }

}

/// Saved texts being put in order on another thread (`FlowTables.orderSavedTexts`).
final class PendingSavedTexts: Sendable {
    let group = DispatchGroup()
    /// Set by the other thread before `group` is left; read after `wait`. The group already
    /// orders the two; the Mutex (taken twice per save) lets the compiler see it.
    private let texts = Mutex<[String]?>(nil)

    func deliver(_ texts: sending [String]?) { self.texts.withLock { $0 = texts } }

    @discardableResult
    func wait() -> [String]? {
        group.wait()
        return texts.withLock { $0 }
    }
}

/// `transform` applied to every element, in chunks on all cores; the order is kept. For the
/// control plane's big jobs (formatting a million flows); `transform` must be safe to run
/// concurrently.
func parallelMap<T: Sendable, R: Sendable>(_ items: [T], chunkSize: Int = 4096, _ transform: @Sendable (T) -> R) -> [R] {
    guard items.count > chunkSize else { return items.map(transform) }
    let chunks = (items.count + chunkSize - 1) / chunkSize
    return [R](unsafeUninitializedCapacity: items.count) { buffer, initialized in
        // Each chunk initializes its own elements, and all are done when concurrentPerform returns.
        nonisolated(unsafe) let base = buffer.baseAddress!
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            for i in chunk * chunkSize..<min(items.count, (chunk + 1) * chunkSize) {
                (base + i).initialize(to: transform(items[i]))
            }
        }
        initialized = items.count
    }
}
