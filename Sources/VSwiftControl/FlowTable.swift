import Dispatch
import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftPacket

// The OpenFlow flow tables as the control plane keeps them: per bridge, the installed flows with
// their install time, counter slot and sequence number. Every change is published to the datapath
// as a whole new table (`setFlowTable`) before it is committed here, so a datapath failure leaves
// both sides as they were.
//
// Semantics follow Open vSwitch (ovs-ofctl(8), ofproto):
// - add: a flow with an identical match and priority is replaced, as a new flow (counters and
//   duration start again: OpenFlow 1.0's add, which ovs-ofctl speaks by default).
// - modify: replaces the actions of the selected flows, keeping counters, duration and timeouts
//   (the cookie as the request says, see `SwitchService.modifyFlows`); the hard timeout counts
//   again from the modification (OVS's `modified` time).
// - delete / modify selection: strict = identical match and priority; non-strict = every flow whose
//   match is at least as specific as the given one, whatever its priority. Either may also select
//   by cookie (`cookie=V/M`) and, for delete and dump, by output port (`out_port`).
// - replace: the table becomes exactly the given flows; flows already there with the same match,
//   priority, actions, cookie and timeouts are left alone (and keep their counters).

/// A flow to install, as a request or a saved configuration gives it: the rule with its identity
/// made compact (parsing a million flows keeps these, not a million 256-byte matches), and the
/// text to save it as, when it is known already.
struct NewFlow {
    let id: FlowIdentity
    let actions: [FlowAction]
    let cookie: UInt64
    let idleTimeout: UInt16
    let hardTimeout: UInt16
    /// The flow as it is saved (`InstalledFlow.text`); nil: formatted when saved.
    let text: String?

    init(_ rule: FlowRule, text: String? = nil, actions: [FlowAction]? = nil) {
        id = FlowIdentity(rule)
        self.actions = actions ?? rule.actions
        cookie = rule.cookie
        idleTimeout = rule.idleTimeout
        hardTimeout = rule.hardTimeout
        self.text = text
    }
}

/// Hands out one shared array for equal action lists seen close together: big tables repeat a
/// few lists (output:2, drop, NORMAL) over and over, and a million copies cost 50 MB and, when
/// compiled, a cold reference count each.
struct ActionListSharing {
    private var recent: [[FlowAction]] = []
    private var next = 0

    mutating func shared(_ actions: [FlowAction]) -> [FlowAction] {
        for list in recent where list == actions { return list }
        if recent.count < 4 {
            recent.append(actions)
        } else {
            recent[next] = actions
            next = (next + 1) % recent.count
        }
        return actions
    }
}

/// What the table keeps of a flow besides its identity.
struct InstalledFlow {
    var actions: [FlowAction]
    var cookie: UInt64
    var idleTimeout: UInt16
    var hardTimeout: UInt16
    /// Monotonic seconds of installation (duration counts from here).
    var created: Double
    /// Monotonic seconds of installation or last modification (the hard timeout counts from here).
    var modified: Double
    var counterSlot: Int
    var sequence: UInt64
    /// The flow in ovs-ofctl syntax as it is saved, kept once made: saving a big table after every
    /// change would otherwise spend most of its time formatting flows that did not change.
    var text: String?

    var hasTimeout: Bool { idleTimeout != 0 || hardTimeout != 0 }

    /// Same flow as `rule` says, apart from its identity: replace-flows leaves such a flow alone.
    func isSame(as rule: NewFlow) -> Bool {
        actions == rule.actions && cookie == rule.cookie && idleTimeout == rule.idleTimeout
            && hardTimeout == rule.hardTimeout
    }

    func rule(_ id: FlowIdentity) -> FlowRule {
        var rule = FlowRule(priority: id.priority, match: id.match, actions: actions)
        rule.cookie = cookie
        rule.idleTimeout = idleTimeout
        rule.hardTimeout = hardTimeout
        return rule
    }
}

extension InstalledFlow {
    /// `rule` installed at `now`, with no counter slot yet.
    init(_ rule: NewFlow, now: Double, sequence: UInt64) {
        self.init(
            actions: rule.actions, cookie: rule.cookie, idleTimeout: rule.idleTimeout, hardTimeout: rule.hardTimeout,
            created: now, modified: now, counterSlot: -1, sequence: sequence, text: rule.text)
    }
}

/// Which flows a del-flows, mod-flows or dump-flows acts on.
public struct FlowSelector: Sendable {
    public var match: Match
    /// Strict: only the flow with exactly this match and `priority`. Non-strict: every flow whose
    /// match is at least as specific as `match` (all its constraints, same or narrower), any priority.
    public var strict: Bool
    public var priority: UInt16
    /// Only flows whose cookie equals `value` in the bits of `mask` (ovs-ofctl's `cookie=V/M`).
    public var cookie: (value: UInt64, mask: UInt64)?
    /// Only flows with an action that outputs to this OpenFlow port (ovs-ofctl's `out_port`): as OVS,
    /// an `output` to it, or NORMAL/FLOOD/ALL/LOCAL/IN_PORT when it is that reserved port number.
    public var outPort: UInt32?

    public init(match: Match = Match(), strict: Bool = false, priority: UInt16 = FlowRule.defaultPriority,
                cookie: (value: UInt64, mask: UInt64)? = nil, outPort: UInt32? = nil) {
        self.match = match
        self.strict = strict
        self.priority = priority
        self.cookie = cookie
        self.outPort = outPort
    }

    /// Every flow (non-strict, empty match).
    public static let all = FlowSelector()

    func selects(_ id: FlowIdentity, _ flow: InstalledFlow) -> Bool {
        guard selects(cookie: flow.cookie, actions: flow.actions) else { return false }
        if strict { return id.priority == priority && id.match == match }
        return Self.isAtLeastAsSpecific(id.match, as: match)
    }

    /// The conditions on what a flow does rather than what it matches: its cookie and out_port.
    func selects(cookie flowCookie: UInt64, actions: [FlowAction]) -> Bool {
        if let cookie, flowCookie & cookie.mask != cookie.value & cookie.mask { return false }
        if let outPort, !actions.contains(where: { $0.outputPort == outPort }) { return false }
        return true
    }

    /// Does `flow` constrain every bit `selector` constrains, to the same value?
    static func isAtLeastAsSpecific(_ flow: Match, as selector: Match) -> Bool {
        for i in 0..<FlowKey.wordCount {
            let mask = selector.mask[word: i]
            if mask & ~flow.mask[word: i] != 0 || flow.key[word: i] & mask != selector.key[word: i] { return false }
        }
        return true
    }
}

/// Counter slots 0..<capacity: a high-water mark plus a stack of returned slots, so no array of
/// `capacity` entries is ever built.
struct CounterSlotAllocator {
    let capacity: Int
    private var nextUnused = 0
    private var returned: [Int] = []

    init(capacity: Int) {
        self.capacity = capacity
    }

    var available: Int { capacity - nextUnused + returned.count }

    /// A free slot; `fresh` when no rule has ever had it, so its counters are still zero (the
    /// datapath's counter memory starts zeroed) and need no reset.
    mutating func allocate() -> (slot: Int, fresh: Bool)? {
        if let slot = returned.popLast() { return (slot, false) }
        guard nextUnused < capacity else { return nil }
        defer { nextUnused += 1 }
        return (nextUnused, true)
    }

    mutating func release(_ slot: Int) {
        returned.append(slot)
    }

    mutating func release(_ slots: [Int]) {
        returned.append(contentsOf: slots)
    }
}

/// Counter slots (0..<capacity) as bits: a million insertions into a `Set` and lookups cost
/// replace-flows more than these 256 KB.
struct SlotSet {
    private var words: [UInt64]

    init(capacity: Int) {
        words = [UInt64](repeating: 0, count: (capacity + 63) / 64)
    }

    mutating func insert(_ slot: Int) {
        words[slot >> 6] |= 1 << UInt64(slot & 63)
    }

    func contains(_ slot: Int) -> Bool {
        words[slot >> 6] & (1 << UInt64(slot & 63)) != 0
    }
}

/// One bridge's flow table.
struct FlowTable {
    var flows: [FlowIdentity: InstalledFlow] = [:] {
        didSet { savedTexts = nil }
    }
    /// Flows with an idle or hard timeout, so expiry can skip tables without any.
    var timedCount = 0
    /// The flows' saved texts in dump order, when they were made (on another core) while the
    /// table was being published; any change of `flows` drops them.
    var savedTexts: [String]?
}

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

/// A flow of a table with its counters, as dump-flows reports it.
struct FlowSnapshot {
    let id: FlowIdentity
    let flow: InstalledFlow
    let statistics: RuleStatistics
}

/// All bridges' flow tables, their counter slots and sequence numbers.
final class FlowTables {
    private enum Pending {
        /// Install this flow (new, replacing, or a modified copy).
        case install(InstalledFlow)
    }

    private var tables: [String: FlowTable] = [:]
    private var slots: CounterSlotAllocator
    private var nextSequence: UInt64 = 0
    private let datapath: any DatapathControl
    private let clock: MonotonicClock

    init(datapath: any DatapathControl, clock: @escaping MonotonicClock, counterSlots: Int = DatapathLimits.maxRules) {
        self.datapath = datapath
        self.clock = clock
        self.slots = CounterSlotAllocator(capacity: counterSlots)
    }

    func count(bridge: String) -> Int { tables[bridge]?.flows.count ?? 0 }

    func hasTable(bridge: String) -> Bool { tables[bridge] != nil }

    /// Starts the table of a new (or restored) bridge with `rules` and publishes it.
    func createTable(bridge: String, rules: [NewFlow]) throws(RPCError) {
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
    func restore(_ checkpoint: Checkpoint) throws(RPCError) {
        tables[checkpoint.bridge] = checkpoint.table
        slots = checkpoint.slots
        if checkpoint.table != nil { try publish(bridge: checkpoint.bridge) }
    }

    /// Publishes the table again as it is (after the bridge's port numbers changed).
    func publish(bridge: String) throws(RPCError) {
        try apply(bridge: bridge, pending: [:], allocated: [], removing: nil)
    }

    // MARK: Changes

    /// add-flow / add-flows: each rule replaces a flow with an identical match and priority; within
    /// `rules` a later one wins, as if they were added one after the other.
    func add(bridge: String, rules: [NewFlow]) throws(RPCError) {
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
    private func addInBulk(bridge: String, rules: [NewFlow]) throws(RPCError) {
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
                throw .resourceUnavailable(
                    "too many flows: the datapath has room for \(slots.capacity) flows in all, \(slots.available) are free")
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
            throw SwitchService.rpcError(for: error)
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
    func replace(bridge: String, rules: [NewFlow]) throws(RPCError) -> (installed: Int, deleted: Int) {
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
                throw .resourceUnavailable(
                    "too many flows: the datapath has room for \(slots.capacity) flows in all, \(slots.available) are free")
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
            throw SwitchService.rpcError(for: error)
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
    func delete(bridge: String, selector: FlowSelector) throws(RPCError) -> Int {
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
    ) throws(RPCError) -> (modified: Int, added: Int) {
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
    func expire(now: Double? = nil) throws(RPCError) -> [String] {
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

    // MARK: Reading

    /// The selected flows (all when nil) in dump order: priority descending, then installation order.
    func snapshot(bridge: String, selector: FlowSelector? = nil) throws(RPCError) -> [FlowSnapshot] {
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
    private static func savedTextsInDumpOrder(_ flows: [FlowIdentity: InstalledFlow]) -> [String]? {
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
    private static func orderSavedTexts(of flows: [FlowIdentity: InstalledFlow]) -> PendingSavedTexts {
        let pending = PendingSavedTexts()
        DispatchQueue.global().async(group: pending.group) { pending.texts = savedTextsInDumpOrder(flows) }
        return pending
    }

    // MARK: Internals

    /// A flow's place in dump order (priority descending, then sequence) as one word to sort by:
    /// the priority inverted above the sequence, which stays below 2^48 (a million flows a
    /// second would take nine years to get there).
    private static func dumpOrder(_ priority: UInt16, _ sequence: UInt64) -> UInt64 {
        precondition(sequence < 1 << 48, "flow sequence number above 2^48")
        return UInt64(~priority) << 48 | sequence
    }

    private func newFlow(_ rule: NewFlow, now: Double) -> InstalledFlow {
        nextSequence += 1
        return InstalledFlow(rule, now: now, sequence: nextSequence)
    }

    /// Gives every new flow in `pending` a counter slot with zeroed counters; all or none.
    private func allocateSlots(_ pending: inout [FlowIdentity: Pending]) throws(RPCError) -> [Int] {
        var needed = 0
        for entry in pending.values {
            if case .install(let flow) = entry, flow.counterSlot < 0 { needed += 1 }
        }
        guard needed <= slots.available else {
            throw .resourceUnavailable(
                "too many flows: the datapath has room for \(slots.capacity) flows in all, \(slots.available) are free")
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
    private func apply(
        bridge: String, pending: [FlowIdentity: Pending], allocated: [Int],
        removing: ((FlowIdentity, InstalledFlow) -> Bool)?, removingIDs: [FlowIdentity]? = nil
    ) throws(RPCError) {
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
            throw SwitchService.rpcError(for: error)
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
    private func publishWhole(bridge: String, flows: [FlowIdentity: InstalledFlow]) throws(DatapathError) {
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

/// Saved texts being put in order on another thread (`FlowTables.orderSavedTexts`).
private final class PendingSavedTexts: @unchecked Sendable {
    let group = DispatchGroup()
    /// Written by the other thread before `group` is left; read only after `wait`.
    var texts: [String]?

    @discardableResult
    func wait() -> [String]? {
        group.wait()
        return texts
    }
}

/// `transform` applied to every element, in chunks on all cores; the order is kept. For the
/// control plane's big jobs (formatting a million flows); `transform` must be safe to run
/// concurrently.
func parallelMap<T, R>(_ items: [T], chunkSize: Int = 4096, _ transform: (T) -> R) -> [R] {
    guard items.count > chunkSize else { return items.map(transform) }
    let chunks = (items.count + chunkSize - 1) / chunkSize
    return [R](unsafeUninitializedCapacity: items.count) { buffer, initialized in
        let base = buffer.baseAddress!
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            for i in chunk * chunkSize..<min(items.count, (chunk + 1) * chunkSize) {
                (base + i).initialize(to: transform(items[i]))
            }
        }
        initialized = items.count
    }
}
