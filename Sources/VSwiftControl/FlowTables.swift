import VSwiftClassifier
import VSwiftDatapath
import VSwiftProtocol

/// All bridges' flow tables, their counter slots and sequence numbers.
final class FlowTables {
    enum Pending {
        /// Install this flow (new, replacing, or a modified copy).
        case install(InstalledFlow)
    }

    var tables: [String: FlowTable] = [:]
    var slots: CounterSlotAllocator
    var nextSequence: UInt64 = 0
    let datapath: any DatapathControl
    let clock: MonotonicClock

    init(datapath: any DatapathControl, clock: @escaping MonotonicClock, counterSlots: Int = DatapathLimits.maxRules) {
        self.datapath = datapath
        self.clock = clock
        self.slots = CounterSlotAllocator(capacity: counterSlots)
    }

    func count(bridge: String) -> Int { tables[bridge]?.flows.count ?? 0 }

    func hasTable(bridge: String) -> Bool { tables[bridge] != nil }

    /// Starts the table of a new (or restored) bridge with `rules` and publishes it.
    func createTable(bridge: String, rules: [NewFlow]) throws(FlowTableError) {
        precondition(tables[bridge] == nil, "flow table of \(bridge) created twice")
        tables[bridge] = FlowTable()
        do {
            if rules.isEmpty {
                try publish(bridge: bridge)
            } else {
                try addInBulk(bridge: bridge, rules: rules)
            }
        } catch {
            tables[bridge] = nil
            throw error
        }
    }

    /// Forgets a deleted bridge's table and frees its counter slots.
    func removeTable(bridge: String) {
        guard let table = tables.removeValue(forKey: bridge) else { return }
        slots.release(table.flows.values.map(\.counterSlot))
    }

    /// A bridge's table (nil: none) and the counter slots as they were before a change, so that a
    /// change that could not be saved can be undone (`restore`). Holding it makes the change copy
    /// the table once instead of changing it in place: take one only when the whole configuration
    /// is going to be written anyway, which costs more.
    struct Checkpoint {
        fileprivate let bridge: String
        fileprivate let table: FlowTable?
        fileprivate let slots: CounterSlotAllocator
    }

    func checkpoint(bridge: String) -> Checkpoint {
        Checkpoint(bridge: bridge, table: tables[bridge], slots: slots)
    }

    /// Puts the table and the slots back as they were at `checkpoint` and publishes the table
    /// again. The flows then kept their counter slots all along: their counters are intact.
    func restore(_ checkpoint: Checkpoint) throws(FlowTableError) {
        tables[checkpoint.bridge] = checkpoint.table
        slots = checkpoint.slots
        if checkpoint.table != nil { try publish(bridge: checkpoint.bridge) }
    }

    /// Publishes the table again as it is (after the bridge's port numbers changed).
    func publish(bridge: String) throws(FlowTableError) {
        try apply(bridge: bridge, pending: [:], allocated: [], removing: nil)
    }

    // MARK: Changes

    /// add-flow / add-flows: each rule replaces a flow with an identical match and priority; within
    /// `rules` a later one wins, as if they were added one after the other.
    func add(bridge: String, rules: [NewFlow]) throws(FlowTableError) {
        guard let count = tables[bridge]?.flows.count else { throw .noSuchBridge(bridge) }
        // Too many to extend the published table in place: the whole table is compiled anyway,
        // so the rules go straight into it (see `addInBulk`).
        if rules.count * 4 > count { return try addInBulk(bridge: bridge, rules: rules) }
        let now = clock()
        var pending: [FlowIdentity: Pending] = [:]
        pending.reserveCapacity(rules.count)
        for rule in rules {
            pending[rule.id] = .install(newFlow(rule, now: now))
        }
        let allocated = try allocateSlots(&pending)
        try apply(bridge: bridge, pending: pending, allocated: allocated, removing: nil)
    }

    /// A big add: the rules are written into the table itself (no table of pending changes, no
    /// second lookup per rule), the whole table is published, and on failure the table is put
    /// back as it was from what the insertions returned.
    private func addInBulk(bridge: String, rules: [NewFlow]) throws(FlowTableError) {
        let now = clock()
        // Rule i gets sequence firstSequence + i.
        let firstSequence = nextSequence + 1
        nextSequence += UInt64(rules.count)
        // Taken out of `tables` so that it is not shared (and not copied) while it changes.
        var table = tables.removeValue(forKey: bridge)!
        table.flows.reserveCapacity(table.flows.count + rules.count)
        // And the slot allocator out of `self` while the loop uses it: every use of a class's
        // property is checked for exclusive access at run time, a million times here.
        var slots = self.slots
        self.slots = CounterSlotAllocator(capacity: 0)
        defer { self.slots = slots }
        var replaced: [(id: FlowIdentity, flow: InstalledFlow)] = []
        var allocated: [Int] = []
        allocated.reserveCapacity(rules.count)
        var timedCount = table.timedCount
        // The request's flows are the ones with its sequences (no list of a million identities kept for this).
        func rollBack() {
            table.flows = table.flows.filter { $0.value.sequence < firstSequence }
            for (id, flow) in replaced { table.flows[id] = flow }
            tables[bridge] = table
            slots.release(allocated)
        }
        // Read in place and moved into the table: a copy per step costs a cold reference count
        // (the flow's saved text) for each of a million flows.
        for index in rules.indices {
            let id = rules[index].id
            var flow = InstalledFlow(rules[index], now: now, sequence: firstSequence + UInt64(index))
            guard let (slot, fresh) = slots.allocate() else {
                // Out of slots, unless an earlier rule of this request has this identity: it hands its slot on.
                if let earlier = table.flows[id], earlier.sequence >= firstSequence {
                    flow.counterSlot = earlier.counterSlot
                    table.flows[id] = flow
                    timedCount += (flow.hasTimeout ? 1 : 0) - (earlier.hasTimeout ? 1 : 0)
                    continue
                }
                rollBack()
                throw .tooManyFlows(capacity: slots.capacity, available: slots.available)
            }
            flow.counterSlot = slot
            if flow.hasTimeout { timedCount += 1 }
            if let old = table.flows.updateValue(consume flow, forKey: id) {
                if old.hasTimeout { timedCount -= 1 }
                if old.sequence >= firstSequence {
                    // Installed by an earlier rule of this request (a later line wins): its slot
                    // goes on to this one, and the one just taken goes back.
                    table.flows[id]!.counterSlot = old.counterSlot
                    slots.release(slot)
                    continue
                }
                replaced.append((id, old))
            }
            allocated.append(slot)
            // Resetting costs the datapath a pause of its workers: only for slots used before.
            if !fresh { datapath.resetRuleStatistics(counterSlot: slot) }
        }
        let savedTexts = Self.orderSavedTexts(of: table.flows)
        do {
            try publishWhole(bridge: bridge, flows: table.flows)
        } catch {
            savedTexts.wait()
            rollBack()
            throw .datapath(error)
        }
        // Commit: the replaced flows' slots go back.
        table.timedCount = timedCount
        table.savedTexts = savedTexts.wait()
        tables[bridge] = table
        slots.release(replaced.map(\.flow.counterSlot))
    }

    /// replace-flows: the table becomes exactly `rules`. Returns how many flows were added or
    /// changed and how many deleted.
    /// The next table is built whole, with the unchanged flows moved over (they keep their counter
    /// slots, sequences and saved text), and published; the old one is dropped only then.
    @discardableResult
    func replace(bridge: String, rules: [NewFlow]) throws(FlowTableError) -> (installed: Int, deleted: Int) {
        guard let old = tables[bridge] else { throw .noSuchBridge(bridge) }
        let now = clock()
        let firstSequence = nextSequence + 1
        var next = FlowTable()
        next.flows.reserveCapacity(rules.count)
        var allocated: [Int] = []
        for index in rules.indices {
            let id = rules[index].id
            if let existing = old.flows[id], existing.isSame(as: rules[index]) {
                next.flows[id] = existing
                continue
            }
            var flow = newFlow(rules[index], now: now)
            guard let (slot, fresh) = slots.allocate() else {
                // Out of slots, unless an earlier rule of this file has this identity: it hands its slot on.
                if let earlier = next.flows[id], earlier.sequence >= firstSequence {
                    flow.counterSlot = earlier.counterSlot
                    next.flows[id] = flow
                    continue
                }
                slots.release(allocated)
                throw .tooManyFlows(capacity: slots.capacity, available: slots.available)
            }
            flow.counterSlot = slot
            if let earlier = next.flows.updateValue(consume flow, forKey: id), earlier.sequence >= firstSequence {
                next.flows[id]!.counterSlot = earlier.counterSlot
                slots.release(slot)
                continue
            }
            allocated.append(slot)
            if !fresh { datapath.resetRuleStatistics(counterSlot: slot) }
        }
        let savedTexts = Self.orderSavedTexts(of: next.flows)
        do {
            try publishWhole(bridge: bridge, flows: next.flows)
        } catch {
            savedTexts.wait()
            slots.release(allocated)
            throw .datapath(error)
        }
        next.savedTexts = savedTexts.wait()
        // Commit: the old table's flows not carried over give their slots back. (Fields read in
        // place: copying each flow out costs a cold reference count for its text.)
        var used = SlotSet(capacity: slots.capacity)
        var timedCount = 0
        var index = next.flows.startIndex
        while index != next.flows.endIndex {
            used.insert(next.flows.values[index].counterSlot)
            if next.flows.values[index].hasTimeout { timedCount += 1 }
            next.flows.formIndex(after: &index)
        }
        next.timedCount = timedCount
        var freed: [Int] = []
        var deleted = 0
        var kept = 0
        index = old.flows.startIndex
        while index != old.flows.endIndex {
            let slot = old.flows.values[index].counterSlot
            if used.contains(slot) {
                kept += 1
            } else {
                freed.append(slot)
                if next.flows[old.flows.keys[index]] == nil { deleted += 1 }
            }
            old.flows.formIndex(after: &index)
        }
        // And a new flow of the file overridden by a later unchanged one gives its slot back too.
        for slot in allocated where !used.contains(slot) { freed.append(slot) }
        tables[bridge] = next
        slots.release(freed)
        return (next.flows.count - kept, deleted)
    }

    /// del-flows: deletes the selected flows; returns how many.
    @discardableResult
    func delete(bridge: String, selector: FlowSelector) throws(FlowTableError) -> Int {
        guard tables[bridge] != nil else { throw .noSuchBridge(bridge) }
        var count = 0
        do {
            let flows = tables[bridge]!.flows
            if selector.strict {
                // At most the one flow with this identity: looked up, not searched for.
                let id = FlowIdentity(match: selector.match, priority: selector.priority)
                if let flow = flows[id], selector.selects(id, flow) { count = 1 }
            } else {
                for (id, flow) in flows where selector.selects(id, flow) { count += 1 }
            }
        }
        guard count > 0 else { return 0 }
        let ids = selector.strict ? [FlowIdentity(match: selector.match, priority: selector.priority)] : nil
        try apply(bridge: bridge, pending: [:], allocated: [], removing: selector.selects, removingIDs: ids)
        return count
    }

    /// mod-flows: gives the selected flows `actions`, keeping their counters, duration, timeouts and
    /// cookie (the cookie becomes `cookie` when given). When no flow is selected, `addIfNone` is
    /// added if given (OVS adds unless the request selects by cookie). Returns how many flows were
    /// modified and how many added.
    @discardableResult
    func modify(
        bridge: String, selector: FlowSelector, actions: [FlowAction], cookie: UInt64? = nil, addIfNone: FlowRule? = nil
    ) throws(FlowTableError) -> (modified: Int, added: Int) {
        guard tables[bridge] != nil else { throw .noSuchBridge(bridge) }
        let now = clock()
        var pending: [FlowIdentity: Pending] = [:]
        do {
            let flows = tables[bridge]!.flows
            for (id, flow) in flows where selector.selects(id, flow) {
                var modified = flow
                modified.actions = actions
                modified.modified = now
                if let cookie { modified.cookie = cookie }
                modified.text = nil
                pending[id] = .install(modified)
            }
        }
        if pending.isEmpty {
            guard let addIfNone else { return (0, 0) }
            try add(bridge: bridge, rules: [NewFlow(addIfNone)])
            return (0, 1)
        }
        try apply(bridge: bridge, pending: pending, allocated: [], removing: nil)
        return (pending.count, 0)
    }

    /// Deletes the flows whose idle or hard timeout has passed at `now` (the clock's time when nil).
    /// Returns the bridges whose tables changed.
    @discardableResult
    func expire(now: Double? = nil) throws(FlowTableError) -> [String] {
        let now = now ?? clock()
        var expiredByBridge: [(String, Set<FlowIdentity>)] = []
        for bridge in tables.keys.sorted() {
            guard let table = tables[bridge], table.timedCount > 0 else { continue }
            var expired = Set<FlowIdentity>()
            for (id, flow) in table.flows where flow.hasTimeout && hasExpired(flow, now: now) {
                expired.insert(id)
            }
            if !expired.isEmpty { expiredByBridge.append((bridge, expired)) }
        }
        var changed: [String] = []
        for (bridge, expired) in expiredByBridge {
            try apply(bridge: bridge, pending: [:], allocated: [], removing: { id, _ in expired.contains(id) },
                      removingIDs: Array(expired))
            changed.append(bridge)
        }
        return changed
    }

    private func hasExpired(_ flow: InstalledFlow, now: Double) -> Bool {
        if flow.hardTimeout != 0 && now >= flow.modified + Double(flow.hardTimeout) { return true }
        if flow.idleTimeout != 0 {
            // lastUsed is a whole second: the packet came at most a second later than it says.
            let lastUsed = datapath.ruleStatistics(counterSlot: flow.counterSlot).lastUsed
            let idleSince = max(lastUsed == 0 ? 0 : Double(lastUsed) + 1, flow.modified)
            if now >= idleSince + Double(flow.idleTimeout) { return true }
        }
        return false
    }

}
