import VSwiftClassifier
import VSwiftDatapath
import VSwiftProtocol

/// What the datapath needs of a flow besides its identity, and where the identity is.
private struct RuleReference<Index> {
    let index: Index
    let sequence: UInt64
    let counterSlot: Int
    let actions: [FlowAction]

    init(index: Index, _ flow: InstalledFlow) {
        self.index = index
        sequence = flow.sequence
        counterSlot = flow.counterSlot
        actions = flow.actions
    }

    func rule(_ id: FlowIdentity) -> DatapathRule {
        DatapathRule(match: id.match, priority: id.priority, sequence: sequence, actions: actions, counterSlot: counterSlot)
    }
}

// How a change reaches the datapath: `apply` publishes the table a change results in (in place
// when the datapath can extend or trim its published table, whole otherwise), then commits it.
extension FlowTables {
    func newFlow(_ rule: NewFlow, now: Double) -> InstalledFlow {
        nextSequence += 1
        return InstalledFlow(rule, now: now, sequence: nextSequence)
    }

    /// Gives every new flow in `pending` a counter slot with zeroed counters; all or none.
    func allocateSlots(_ pending: inout [FlowIdentity: Pending]) throws(FlowTableError) -> [Int] {
        var needed = 0
        for entry in pending.values {
            if case .install(let flow) = entry, flow.counterSlot < 0 { needed += 1 }
        }
        guard needed <= slots.available else {
            throw .tooManyFlows(capacity: slots.capacity, available: slots.available)
        }
        var allocated: [Int] = []
        allocated.reserveCapacity(needed)
        var index = pending.values.startIndex
        while index != pending.values.endIndex {
            if case .install(var flow) = pending.values[index], flow.counterSlot < 0 {
                let (slot, fresh) = slots.allocate()!
                // Resetting costs the datapath a pause of its workers: only for slots used before.
                if !fresh { datapath.resetRuleStatistics(counterSlot: slot) }
                flow.counterSlot = slot
                allocated.append(flow.counterSlot)
                pending.values[index] = .install(flow)
            }
            pending.values.formIndex(after: &index)
        }
        return allocated
    }

    /// Publishes the table that results from `pending` (by identity) and `removing` (which flows
    /// not in `pending` go), then commits it here. On failure nothing changes and the slots in
    /// `allocated` are freed again.
    /// `removingIDs`, when given, names exactly the flows `removing` removes, so a few can be
    /// taken out of the published table in place.
    func apply(
        bridge: String, pending: [FlowIdentity: Pending], allocated: [Int],
        removing: ((FlowIdentity, InstalledFlow) -> Bool)?, removingIDs: [FlowIdentity]? = nil
    ) throws(FlowTableError) {
        guard tables[bridge] != nil else {
            slots.release(allocated)
            throw .noSuchBridge(bridge)
        }
        // The table's flows that `pending` names, by counter slot (cheaper to look up than identities).
        var replaced = Set<Int>()
        var installs = 0
        do {
            let flows = tables[bridge]!.flows
            for (id, entry) in pending {
                let existing = flows[id]?.counterSlot
                switch entry {
                case .install:
                    installs += 1
                    if let existing { replaced.insert(existing) }
                }
            }
        }
        let removed: [FlowIdentity]?
        do {
            if pending.isEmpty, let removingIDs, publishRemovals(bridge: bridge, ids: removingIDs) {
                removed = removingIDs
            } else if try publishAdditions(bridge: bridge, pending: pending, installs: installs, replaced: replaced,
                                    removing: removing) {
                removed = nil
            } else {
                removed = try publishTable(
                    bridge: bridge, pending: pending, installs: installs, replaced: replaced, removing: removing)
            }
        } catch {
            slots.release(allocated)
            throw .datapath(error)
        }

        // Commit, on the table taken out of `tables` so that it is not shared (and not copied).
        var table = tables.removeValue(forKey: bridge)!
        var freed: [Int] = []
        var timedCount = table.timedCount
        if let removed {
            // Few: removed one by one (filtering would build the whole table again).
            for id in removed {
                guard let flow = table.flows.removeValue(forKey: id) else { continue }
                freed.append(flow.counterSlot)
                if flow.hasTimeout { timedCount -= 1 }
            }
        } else if let removing {
            table.flows = table.flows.filter { entry in
                let slot = entry.value.counterSlot
                if replaced.contains(slot) || !removing(entry.key, entry.value) { return true }
                freed.append(slot)
                if entry.value.hasTimeout { timedCount -= 1 }
                return false
            }
        }
        table.flows.reserveCapacity(table.flows.count + installs - replaced.count)
        for (id, entry) in pending {
            guard case .install(let flow) = entry else { continue }
            if let old = table.flows.updateValue(flow, forKey: id) {
                if old.counterSlot != flow.counterSlot { freed.append(old.counterSlot) }
                if old.hasTimeout { timedCount -= 1 }
            }
            if flow.hasTimeout { timedCount += 1 }
        }
        table.timedCount = timedCount
        tables[bridge] = table
        slots.release(freed)
    }

    /// Publishes `flows` as the bridge's whole table, read in place (by dictionary index).
    func publishWhole(bridge: String, flows: [FlowIdentity: InstalledFlow]) throws(DatapathError) {
        var references: [RuleReference<Dictionary<FlowIdentity, InstalledFlow>.Index>] = []
        references.reserveCapacity(flows.count)
        var index = flows.startIndex
        while index != flows.endIndex {
            references.append(RuleReference(index: index, flows.values[index]))
            flows.formIndex(after: &index)
        }
        try datapath.setFlowTable(
            bridge: bridge, count: references.count, rule: { i in references[i].rule(flows.keys[references[i].index]) },
            match: { i in flows.keys[references[i].index].match })
    }

    /// When the change only removes a few flows (at most 16, and no other flow has one of their
    /// matches), has the datapath take them out of its published table in place. False when the
    /// change is not such, or the datapath declined.
    private func publishRemovals(bridge: String, ids: [FlowIdentity]) -> Bool {
        let flows = tables[bridge]!.flows
        guard !ids.isEmpty, ids.count <= 16, ids.count * 4 <= flows.count else { return false }
        var slots = Set<Int>()
        for id in ids {
            guard let flow = flows[id] else { return false }
            slots.insert(flow.counterSlot)
        }
        // A flow with the same match and another priority may be hidden behind a removed one in
        // the classifier (it can never win while that one is there): then recompile.
        for key in flows.keys {
            for id in ids where key.priority != id.priority && key.hasSameMatch(as: id) { return false }
        }
        return datapath.removeFromFlowTable(
            bridge: bridge, matches: ids.map(\.match), counterSlots: slots, expectedCount: flows.count - ids.count)
    }

    /// When the change only adds a few new flows (no replacement, no removal; at most a quarter
    /// of the table), hands just those to the datapath, which extends its published table instead
    /// of recompiling it. False when the change is not such, or the datapath declined.
    private func publishAdditions(
        bridge: String, pending: [FlowIdentity: Pending], installs: Int, replaced: Set<Int>,
        removing: ((FlowIdentity, InstalledFlow) -> Bool)?
    ) throws(DatapathError) -> Bool {
        let count = tables[bridge]!.flows.count
        guard removing == nil, replaced.isEmpty, installs == pending.count, installs > 0,
            installs * 4 <= count
        else { return false }
        var rules: [DatapathRule] = []
        rules.reserveCapacity(installs)
        for (id, entry) in pending {
            guard case .install(let flow) = entry else { return false }
            rules.append(RuleReference(index: 0, flow).rule(id))
        }
        return try datapath.addToFlowTable(bridge: bridge, rules: rules, expectedCount: count + installs)
    }

    /// Publishes the table that `apply` is about to commit. The datapath reads the rules from
    /// this table in place (by dictionary index): an array of a million rules would copy every match.
    /// Returns the identities of the flows `removing` removes when they are few (at most a quarter
    /// of the table), nil otherwise.
    private func publishTable(
        bridge: String, pending: [FlowIdentity: Pending], installs: Int, replaced: Set<Int>,
        removing: ((FlowIdentity, InstalledFlow) -> Bool)?
    ) throws(DatapathError) -> [FlowIdentity]? {
        let flows = tables[bridge]!.flows
        // Each flow is copied once here (a copy costs reference counting); the datapath reads the
        // rules several times, taking the match from the dictionary's key in place.
        var staying: [RuleReference<Dictionary<FlowIdentity, InstalledFlow>.Index>] = []
        staying.reserveCapacity(flows.count - replaced.count)
        var index = flows.startIndex
        while index != flows.endIndex {
            defer { flows.formIndex(after: &index) }
            let flow = flows.values[index]
            if !replaced.isEmpty && replaced.contains(flow.counterSlot) { continue }  // a new version is below
            if let removing, removing(flows.keys[index], flow) { continue }
            staying.append(RuleReference(index: index, flow))
        }
        let removedCount = flows.count - replaced.count - staying.count
        var installing: [RuleReference<Dictionary<FlowIdentity, Pending>.Index>] = []
        installing.reserveCapacity(installs)
        var pendingIndex = pending.startIndex
        while pendingIndex != pending.endIndex {
            if case .install(let flow) = pending.values[pendingIndex] { installing.append(RuleReference(index: pendingIndex, flow)) }
            pending.formIndex(after: &pendingIndex)
        }
        try datapath.setFlowTable(
            bridge: bridge, count: staying.count + installing.count,
            rule: { i in
                if i < staying.count { return staying[i].rule(flows.keys[staying[i].index]) }
                let reference = installing[i - staying.count]
                return reference.rule(pending.keys[reference.index])
            },
            match: { i in
                if i < staying.count { return flows.keys[staying[i].index].match }
                return pending.keys[installing[i - staying.count].index].match
            })
        guard removing != nil, removedCount <= flows.count / 4 else { return nil }
        // The flows neither staying nor replaced, found again by walking both in step.
        var removed: [FlowIdentity] = []
        removed.reserveCapacity(removedCount)
        var next = 0
        index = flows.startIndex
        while index != flows.endIndex {
            defer { flows.formIndex(after: &index) }
            if next < staying.count && staying[next].index == index {
                next += 1
            } else if replaced.isEmpty || !replaced.contains(flows.values[index].counterSlot) {
                removed.append(flows.keys[index])
            }
        }
        return removed
    }
}
