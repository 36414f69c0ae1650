import Dispatch
import Foundation
import Logging
import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax

/// The switch as the control socket sees it: bridges, ports with their OpenFlow numbers and OVS
/// types/options, mapped onto the datapath. Every method runs on one serial queue, so requests
/// from several clients never interleave half-way; the datapath work itself may block (it parks
/// workers, and a queue can take a second to become bindable), which is why it runs off the
/// socket's event loop.
public final class SwitchService: @unchecked Sendable {
    struct Port {
        let name: String
        let ofport: UInt32
        let type: String
        let options: [String: String]
        /// Set when the port is configured but not in the datapath (its device was missing at restore).
        var error: String? = nil
    }

    struct Bridge {
        let name: String
        /// In port-number order; the internal port (LOCAL) is kept last.
        var ports: [Port]
        var nextOfport: UInt32 = 1
    }

    public let systemID: String
    private let datapath: any DatapathControl
    private let logger: Logger
    private let queue = DispatchQueue(label: "vswift.control")
    /// In creation order.
    private var bridges: [Bridge] = []
    /// Underlay devices (add-underlay), in order of addition; the error is set when the device
    /// could not be attached at restore.
    private var underlays: [(name: String, error: String?)] = []
    private let flowTables: FlowTables
    private let clock: MonotonicClock
    /// Where the configuration is saved after every change; nil keeps it in memory only.
    private let store: ConfigStore?
    /// The configuration changed since it was last saved.
    private var unsaved = false
    /// Generation of the configuration file last written or restored (see `ConfigJournal`).
    private var generation: UInt64 = 0
    /// Size of that file and of its journal.
    private var savedBytes = 0
    private var journalBytes = 0
    /// The file and its journal hold every change made before the current request, so the
    /// request's change may be appended to the journal (false after a failed save).
    private var journalCanContinue = true
    /// Flow changes go to the journal once the configuration file is at least this big (a small
    /// file costs less to rewrite than to replay, and stays easy to read); nil never journals.
    public var journalFromBytes: Int? = 1 << 20
    private var expiryTimer: DispatchSourceTimer?

    /// The flow a new bridge starts with, as in OVS: switch like a learning switch.
    public static let defaultFlow = FlowRule(priority: 0, match: Match(), actions: [.normal])

    public init(
        datapath: any DatapathControl, systemID: String = UUID().uuidString.lowercased(), logger: Logger,
        store: ConfigStore? = nil, clock: @escaping MonotonicClock = monotonicClock,
        counterSlots: Int = DatapathLimits.maxRules
    ) {
        self.datapath = datapath
        self.systemID = systemID
        self.logger = logger
        self.store = store
        self.clock = clock
        self.flowTables = FlowTables(datapath: datapath, clock: clock, counterSlots: counterSlots)
    }

    deinit {
        expiryTimer?.cancel()
    }

    /// Entry point for the control server.
    public func handle(_ request: RPCRequest) async -> Result<JSONValue, RPCError> {
        await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: self.perform(request))
            }
        }
    }

    /// Runs one request synchronously (on the caller's thread; tests use this directly).
    public func perform(_ request: RPCRequest) -> Result<JSONValue, RPCError> {
        do throws(RPCError) {
            guard let method = ControlMethod(rawValue: request.method) else { throw .methodNotFound(request.method) }
            guard store != nil, method.changesConfiguration else { return .success(try dispatch(method, request)) }
            return .success(try performDurably(method, request))
        } catch {
            logger.info("\(request.method) failed: \(error.message)")
            return .failure(error)
        }
    }

    private func dispatch(_ method: ControlMethod, _ request: RPCRequest) throws(RPCError) -> JSONValue {
        switch method {
        case .addBridge:
            let params: BridgeParams = try request.decodeParams()
            try addBridge(params.bridge)
            return .null
        case .delBridge:
            let params: BridgeParams = try request.decodeParams()
            try deleteBridge(params.bridge)
            return .null
        case .addPort:
            let params: AddPortParams = try request.decodeParams()
            try addPort(params)
            return .null
        case .delPort:
            let params: DelPortParams = try request.decodeParams()
            try deletePort(params)
            return .null
        case .show:
            return try JSONValue(encoding: show())
        case .dumpPorts:
            let params: DumpPortsParams = try request.decodeParams()
            return try JSONValue(encoding: dumpPorts(params))
        case .frameAccounting:
            return try JSONValue(encoding: datapath.frameAccounting().map(FrameAccountingReport.init))
        case .dumpWorkers:
            return try JSONValue(encoding: datapath.workerStatistics().map(WorkerReport.init))
        case .addFlow:
            let params: AddFlowParams = try request.decodeParams()
            try addFlows(bridge: params.bridge, lines: [params.flow], numbered: false)
            return .null
        case .addFlows:
            let params = try FlowLinesParams(from: request.params)
            return try JSONValue(encoding: addFlows(bridge: params.bridge, lines: params.flows, numbered: true))
        case .replaceFlows:
            let params = try FlowLinesParams(from: request.params)
            return try JSONValue(encoding: replaceFlows(bridge: params.bridge, lines: params.flows))
        case .delFlows:
            let params: DelFlowsParams = try request.decodeParams()
            return try JSONValue(encoding: deleteFlows(params))
        case .modFlows:
            let params: ModFlowsParams = try request.decodeParams()
            return try JSONValue(encoding: modifyFlows(params))
        case .dumpFlows:
            let params: DumpFlowsParams = try request.decodeParams()
            if params.text == true {
                let lines = try flowStatistics(params, formatFlowLine)
                return .object(["bridge": .string(params.bridge), "lines": .array(lines.map(JSONValue.string))])
            }
            return try dumpFlows(params).jsonValue
        case .addUnderlay:
            let params: UnderlayParams = try request.decodeParams()
            try addUnderlay(params.device)
            return .null
        case .delUnderlay:
            let params: UnderlayParams = try request.decodeParams()
            try deleteUnderlay(params.device)
            return .null
        }
    }

    // MARK: Methods

    func addBridge(_ name: String) throws(RPCError) {
        try validateName(name, what: "bridge")
        guard bridges.firstIndex(where: { $0.name == name }) == nil, findPort(name) == nil else {
            throw .alreadyExists("a bridge or port named \"\(name)\" already exists")
        }
        try datapathCall { () throws(DatapathError) in try datapath.addBridge(name) }
        bridges.append(Bridge(name: name, ports: [Port(name: name, ofport: ofportLocal, type: "internal", options: [:])]))
        do {
            try publishPortNumbers(bridges.count - 1)
            try flowTables.createTable(bridge: name, rules: [NewFlow(Self.defaultFlow)])
        } catch {
            bridges.removeLast()
            try? datapath.deleteBridge(name)
            throw error
        }
        unsaved = true
        logger.info("added bridge \(name)")
    }

    func deleteBridge(_ name: String) throws(RPCError) {
        try validateName(name, what: "bridge")
        guard let index = bridges.firstIndex(where: { $0.name == name }) else { throw .noSuchBridge(name) }
        try datapathCall { () throws(DatapathError) in try datapath.deleteBridge(name) }
        bridges.remove(at: index)
        flowTables.removeTable(bridge: name)
        unsaved = true
        logger.info("deleted bridge \(name)")
    }

    func addPort(_ params: AddPortParams) throws(RPCError) {
        try validateName(params.bridge, what: "bridge")
        try validateName(params.port, what: "port")
        guard let index = bridges.firstIndex(where: { $0.name == params.bridge }) else { throw .noSuchBridge(params.bridge) }
        if let (owner, _) = findPort(params.port) {
            throw .alreadyExists("\"\(params.port)\" is already a port of bridge \"\(bridges[owner].name)\"")
        }
        let type = params.type ?? ""
        let options = params.options ?? [:]
        switch type {
        case "", "system", "afxdp":
            if let key = options.keys.sorted().first {
                throw .invalidParams("port type \"\(type.isEmpty ? "system" : type)\" takes no option \"\(key)\"")
            }
            try datapathCall { () throws(DatapathError) in try datapath.addPort(params.port, bridge: params.bridge) }
        case "lisp":
            let settings: LISPPortOptions
            do throws(DatapathError) {
                settings = try LISPPortOptions(options: options)
            } catch {
                throw .invalidParams("\(params.port): \(error)")
            }
            try datapathCall { () throws(DatapathError) in
                try datapath.addTunnelPort(params.port, bridge: params.bridge, options: settings)
            }
        case "internal":
            throw .invalidParams("internal ports are created with their bridge (add-br); extra internal ports are not supported")
        default:
            throw .invalidParams("port type \"\(type)\" is not supported (supported: system, lisp)")
        }
        let saved = bridges[index]
        var bridge = saved
        let port = Port(name: params.port, ofport: bridge.nextOfport, type: type == "lisp" ? "lisp" : "", options: type == "lisp" ? options : [:])
        bridge.nextOfport += 1
        bridge.ports.insert(port, at: bridge.ports.count - 1)  // before LOCAL
        bridges[index] = bridge
        do {
            try publishPortNumbers(index)
        } catch {
            bridges[index] = saved
            try? datapath.deletePort(params.port)
            try? publishPortNumbers(index)
            throw error
        }
        unsaved = true
        logger.info("added port \(params.port) to \(params.bridge) as port \(port.ofport)")
    }

    func addUnderlay(_ name: String) throws(RPCError) {
        try validateName(name, what: "device")
        guard !underlays.contains(where: { $0.name == name }) else {
            throw .alreadyExists("\"\(name)\" is already an underlay device")
        }
        if let (owner, _) = findPort(name) {
            throw .alreadyExists("\"\(name)\" is a port of bridge \"\(bridges[owner].name)\"")
        }
        try datapathCall { () throws(DatapathError) in try datapath.addUnderlay(name) }
        underlays.append((name, nil))
        unsaved = true
        logger.info("attached underlay device \(name)")
    }

    func deleteUnderlay(_ name: String) throws(RPCError) {
        try validateName(name, what: "device")
        guard let index = underlays.firstIndex(where: { $0.name == name }) else {
            throw .noSuchPort("\(name)\" as an underlay device")
        }
        if underlays[index].error == nil {
            try datapathCall { () throws(DatapathError) in try datapath.deletePort(name) }
        }
        underlays.remove(at: index)
        unsaved = true
        logger.info("detached underlay device \(name)")
    }

    func deletePort(_ params: DelPortParams) throws(RPCError) {
        if let bridge = params.bridge { try validateName(bridge, what: "bridge") }
        try validateName(params.port, what: "port")
        guard let (bridgeIndex, portIndex) = findPort(params.port) else { throw .noSuchPort(params.port) }
        let bridge = bridges[bridgeIndex]
        if let wanted = params.bridge, wanted != bridge.name {
            guard bridges.contains(where: { $0.name == wanted }) else { throw .noSuchBridge(wanted) }
            throw .noSuchPort("\(params.port)\" on bridge \"\(wanted)")
        }
        guard bridge.ports[portIndex].ofport != ofportLocal else {
            throw .invalidParams("\"\(params.port)\" is the internal port of bridge \"\(bridge.name)\": use del-br")
        }
        // A port whose device was missing at restore is not in the datapath.
        if bridge.ports[portIndex].error == nil {
            try datapathCall { () throws(DatapathError) in try datapath.deletePort(params.port) }
        }
        bridges[bridgeIndex].ports.remove(at: portIndex)
        unsaved = true
        do {
            try publishPortNumbers(bridgeIndex)
        } catch {
            // The port is gone either way; the datapath keeps a stale number for it, which no
            // packet can use.
            logger.warning("deleted port \(params.port), but could not renumber \(bridge.name)'s ports: \(error.message)")
        }
        logger.info("deleted port \(params.port) from \(bridge.name)")
    }

    func show() -> ShowReport {
        ShowReport(systemID: systemID, bridges: bridges.map { bridge in
            BridgeDescription(name: bridge.name, ports: bridge.ports.map { port in
                let attachment = port.error == nil ? datapath.attachment(of: port.name) : nil
                // A device removed while attached is reported like OVS's error column.
                let error = port.error ?? (attachment?.deviceGone == true
                    ? "the device \"\(port.name)\" no longer exists; del-port releases it" : nil)
                return PortDescription(
                    name: port.name, ofport: port.ofport, type: port.type, options: port.options,
                    datapathMode: error == nil ? attachment?.summary ?? "" : "", error: error)
            })
        }, underlays: underlays.map { underlay in
            let attachment = underlay.error == nil ? datapath.attachment(of: underlay.name) : nil
            let error = underlay.error ?? (attachment?.deviceGone == true
                ? "the device \"\(underlay.name)\" no longer exists; del-underlay releases it" : nil)
            return UnderlayDescription(
                name: underlay.name, datapathMode: error == nil ? attachment?.summary ?? "" : "", error: error)
        })
    }

    func dumpPorts(_ params: DumpPortsParams) throws(RPCError) -> DumpPortsReport {
        try validateName(params.bridge, what: "bridge")
        guard let bridge = bridges.first(where: { $0.name == params.bridge }) else { throw .noSuchBridge(params.bridge) }
        var selected = bridge.ports
        if let wanted = params.port {
            selected = bridge.ports.filter { port in
                port.name == wanted || String(port.ofport) == wanted || (wanted == "LOCAL" && port.ofport == ofportLocal)
            }
            guard !selected.isEmpty else { throw .noSuchPort("\(wanted)\" on bridge \"\(bridge.name)") }
        }
        return DumpPortsReport(bridge: bridge.name, ports: selected.map { port in
            PortStatisticsEntry(ofport: port.ofport, name: port.name, statistics: datapath.statistics(port: port.name) ?? PortStatistics())
        })
    }

    // MARK: Flows

    /// add-flow and add-flows: every line is parsed before anything changes, then all are added at
    /// once. `numbered`: the lines are a file's, so errors name the line, and blank lines and `#`
    /// comments are allowed.
    @discardableResult
    func addFlows(bridge name: String, lines: [String], numbered: Bool) throws(RPCError) -> FlowChangeReport {
        let index = try bridgeIndex(name)
        let rules = try parseFlows(lines, bridge: index, numbered: numbered)
        try flowTables.add(bridge: name, rules: rules)
        unsaved = true
        logger.info("\(name): added \(rules.count) flow(s)")
        return FlowChangeReport(added: rules.count)
    }

    /// replace-flows: the table becomes exactly the file's flows; unchanged ones keep their counters.
    func replaceFlows(bridge name: String, lines: [String]) throws(RPCError) -> FlowChangeReport {
        let index = try bridgeIndex(name)
        let rules = try parseFlows(lines, bridge: index, numbered: true)
        let (installed, deleted) = try flowTables.replace(bridge: name, rules: rules)
        if installed > 0 || deleted > 0 { unsaved = true }
        logger.info("\(name): replaced flows: \(installed) added or changed, \(deleted) deleted")
        return FlowChangeReport(added: installed, deleted: deleted)
    }

    func deleteFlows(_ params: DelFlowsParams) throws(RPCError) -> FlowChangeReport {
        let index = try bridgeIndex(params.bridge)
        let strict = params.strict ?? false
        let selector: FlowSelector
        if params.match == nil && !strict {
            selector = .all
        } else {
            selector = try parseSelector(params.match ?? "", bridge: index, strict: strict)
        }
        let deleted = try flowTables.delete(bridge: params.bridge, selector: selector)
        if deleted > 0 { unsaved = true }
        logger.info("\(params.bridge): deleted \(deleted) flow(s)")
        return FlowChangeReport(deleted: deleted)
    }

    /// mod-flows, as ovs-ofctl with OVS (`parse_ofp_str__`, `ofputil_decode_flow_mod`, ofproto's
    /// `modify_may_add_flow`): `cookie=V/M` selects flows by cookie, and then the flows keep their
    /// cookie unless `cookie=V` gives a new one and nothing is added; without a mask the selected
    /// flows get cookie V (0 when not given), and when none is selected the flow is added.
    func modifyFlows(_ params: ModFlowsParams) throws(RPCError) -> FlowChangeReport {
        let index = try bridgeIndex(params.bridge)
        let request = try parseModification(params.flow, bridge: index)
        let rule = request.rule
        let selector = FlowSelector(
            match: rule.match, strict: params.strict ?? false, priority: rule.priority, cookie: request.cookieMatch)
        let selectsByCookie = (request.cookieMatch?.mask ?? 0) != 0
        // ovs-ofctl sends a new cookie with every modify that does not select by cookie (the one
        // given, or 0), and the switch gives it to the modified flows.
        let newCookie = selectsByCookie ? request.newCookie : (request.newCookie ?? 0)
        let (modified, added) = try flowTables.modify(
            bridge: params.bridge, selector: selector, actions: rule.actions,
            cookie: newCookie, addIfNone: selectsByCookie ? nil : rule)
        if modified > 0 || added > 0 { unsaved = true }
        logger.info("\(params.bridge): modified \(modified) flow(s), added \(added)")
        return FlowChangeReport(added: added, modified: modified)
    }

    func dumpFlows(_ params: DumpFlowsParams) throws(RPCError) -> DumpFlowsReport {
        DumpFlowsReport(bridge: params.bridge, flows: try flowStatistics(params) { $0 })
    }

    /// The selected flows with their counters, each passed through `transform`: on all cores,
    /// since formatting a million flows takes a while.
    private func flowStatistics<T>(
        _ params: DumpFlowsParams, _ transform: @escaping (FlowStatisticsEntry) -> T
    ) throws(RPCError) -> [T] {
        let index = try bridgeIndex(params.bridge)
        let selector = try params.match.map { text throws(RPCError) in try parseSelector(text, bridge: index, strict: false) }
        let now = clock()
        let wholeNow = UInt64(max(0, now))
        return parallelMap(try flowTables.snapshot(bridge: params.bridge, selector: selector)) { entry in
            let flow = entry.flow
            // lastUsed is a whole second; the install time is exact, so prefer it when no packet
            // came later (a flow installed at 9.9 s is not 1 s idle at 10.0 s).
            let lastUsed = entry.statistics.lastUsed
            let idleAge =
                lastUsed == 0 || Double(lastUsed) < flow.modified.rounded(.down)
                ? UInt64(max(0, now - flow.modified)) : (wholeNow > lastUsed ? wholeNow - lastUsed : 0)
            return transform(FlowStatisticsEntry(
                cookie: flow.cookie,
                duration: (max(0, now - flow.created) * 1000).rounded(.down) / 1000,
                packets: entry.statistics.packets, bytes: entry.statistics.bytes,
                idleTimeout: flow.idleTimeout, hardTimeout: flow.hardTimeout,
                idleAge: idleAge,
                hardAge: flow.modified > flow.created ? UInt64(max(0, now - flow.modified)) : nil,
                priority: entry.id.priority,
                match: FlowFormatter.match(entry.id.match, priority: FlowRule.defaultPriority),
                actions: FlowFormatter.actions(flow.actions)))
        }
    }

    /// Deletes flows whose idle or hard timeout has passed, and saves if any did. Runs every
    /// second once `startExpiryTimer` has been called; tests call it directly.
    public func expireFlows() {
        do {
            let changed = try flowTables.expire(now: clock())
            guard !changed.isEmpty else { return }
            unsaved = true
            logger.debug("expired flows of \(changed.joined(separator: ", "))")
            try save()
        } catch {
            logger.error("flow expiry: \(error)")
        }
    }

    /// Runs `expireFlows` every second on the control queue.
    public func startExpiryTimer() {
        queue.sync {
            guard expiryTimer == nil else { return }
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + 1, repeating: 1, leeway: .milliseconds(100))
            timer.setEventHandler { [weak self] in self?.expireFlows() }
            timer.resume()
            expiryTimer = timer
        }
    }

    // MARK: Persistence

    /// The configuration as it would be saved now.
    public func configuration() -> SwitchConfig {
        SwitchConfig(systemID: systemID, bridges: bridges.map { bridge in
            BridgeConfig(
                name: bridge.name, nextOfport: bridge.nextOfport,
                ports: bridge.ports.filter { $0.ofport != ofportLocal }.map { port in
                    PortConfig(name: port.name, ofport: port.ofport, type: port.type, options: port.options)
                },
                flows: flowTables.savedFlows(bridge: bridge.name))
        }, underlays: underlays.map(\.name), generation: generation)
    }

    /// Writes the configuration to the store (when there is one), as a new generation, which
    /// also empties the journal.
    public func save() throws(ConfigStoreError) {
        guard let store else { return }
        var config = configuration()
        config.generation = generation &+ 1
        do {
            savedBytes = try store.save(config)
        } catch {
            journalCanContinue = false
            throw error
        }
        generation = config.generation
        journalBytes = 0
        journalCanContinue = true
        unsaved = false
    }

    /// Runs a change and makes it durable before it is acknowledged; when it cannot be saved, it
    /// is refused and undone: the datapath, the service and the file stay as they were (a change
    /// reported done is on disk, as OVSDB promises for a committed transaction).
    ///
    /// A small flow change on a big configuration is appended to the journal (one short write)
    /// first, and cut from it again when the change then fails. Anything else rewrites the file
    /// after the change, from a checkpoint of what the change touches (bridges and ports are few;
    /// a flow table is copied only by such a change, whose save costs more): a record bigger than
    /// an eighth of the file (a bulk add-flows or replace-flows) rewrites it, as does a journal
    /// grown as big as the file, so a restart replays at most about one file's worth of requests.
    private func performDurably(_ method: ControlMethod, _ request: RPCRequest) throws(RPCError) -> JSONValue {
        guard let store else { return try dispatch(method, request) }
        if let journalFromBytes, journalCanContinue, !unsaved, method.isFlowChange, savedBytes >= journalFromBytes,
            journalBytes < max(savedBytes, 1 << 20)
        {
            let line = ConfigJournal.Record(method: method.rawValue, params: request.params ?? .object([:])).line
            if line.count <= max(savedBytes / 8, 64 << 10) {
                let before = journalBytes
                do throws(ConfigStoreError) {
                    journalBytes += try store.journal.append(line: line, generation: generation)
                } catch {
                    journalCanContinue = false
                    throw refusal(method, error)
                }
                do throws(RPCError) {
                    let result = try dispatch(method, request)
                    unsaved = false
                    return result
                } catch {
                    do throws(ConfigStoreError) {
                        try store.journal.cut(to: before)
                        journalBytes = before
                    } catch {
                        // The record of a change not made must not be replayed: a new file
                        // (a new generation) leaves the journal behind.
                        logger.error("cannot cut a failed change from the journal: \(error)")
                        journalCanContinue = false
                        try? save()
                    }
                    throw error
                }
            }
        }
        let checkpoint = Checkpoint(self, method, request)
        let result = try dispatch(method, request)
        guard unsaved else { return result }
        do throws(ConfigStoreError) {
            try save()
        } catch {
            undo(method, to: checkpoint)
            throw refusal(method, error)
        }
        return result
    }

    private func refusal(_ method: ControlMethod, _ error: ConfigStoreError) -> RPCError {
        logger.error("cannot save the configuration: \(error)")
        return .internalError("\(method.rawValue) was refused and nothing changed: the configuration could not be saved: \(error)")
    }

    /// What a change may touch, as it was before the change.
    private struct Checkpoint {
        let bridges: [Bridge]
        let underlays: [(name: String, error: String?)]
        /// The flow table of the request's bridge, for changes that replace or delete one.
        let flows: FlowTables.Checkpoint?

        init(_ service: SwitchService, _ method: ControlMethod, _ request: RPCRequest) {
            bridges = service.bridges
            underlays = service.underlays
            var bridge: String?
            if case .object(let params)? = request.params, case .string(let name)? = params["bridge"] { bridge = name }
            switch method {
            case .addFlow, .addFlows, .replaceFlows, .delFlows, .modFlows, .delBridge:
                flows = bridge.map { service.flowTables.checkpoint(bridge: $0) }
            default:
                flows = nil
            }
        }
    }

    /// Undoes the change `method` made since `checkpoint`, in the datapath too. What cannot be
    /// undone (a device that vanished meanwhile) is logged and shown like a port missing at restore.
    private func undo(_ method: ControlMethod, to checkpoint: Checkpoint) {
        let current = bridges
        bridges = checkpoint.bridges
        func republish(_ name: String) {
            guard let index = bridges.firstIndex(where: { $0.name == name }) else { return }
            do throws(RPCError) { try publishPortNumbers(index) } catch {
                logger.error("undoing \(method.rawValue): cannot republish \(name): \(error.message)")
            }
        }
        switch method {
        case .addBridge:
            for bridge in current where !checkpoint.bridges.contains(where: { $0.name == bridge.name }) {
                try? datapath.deleteBridge(bridge.name)
                flowTables.removeTable(bridge: bridge.name)
            }
        case .delBridge:
            for (index, bridge) in checkpoint.bridges.enumerated() where !current.contains(where: { $0.name == bridge.name }) {
                do throws(DatapathError) { try datapath.addBridge(bridge.name) } catch {
                    logger.error("undoing del-br: cannot re-create \(bridge.name): \(error)")
                }
                for port in bridge.ports.indices where bridge.ports[port].ofport != ofportLocal && bridge.ports[port].error == nil {
                    bridges[index].ports[port].error = reattach(bridge.ports[port], bridge: bridge.name)
                }
                // Port numbers first (no table yet: only they are published), then the table.
                republish(bridge.name)
                if let flows = checkpoint.flows {
                    do throws(RPCError) { try flowTables.restore(flows) } catch {
                        logger.error("undoing del-br: cannot republish the flows of \(bridge.name): \(error.message)")
                    }
                }
            }
        case .addPort, .delPort:
            for (index, bridge) in checkpoint.bridges.enumerated() {
                guard let now = current.first(where: { $0.name == bridge.name }) else { continue }
                for port in now.ports where !bridge.ports.contains(where: { $0.name == port.name }) {
                    try? datapath.deletePort(port.name)
                }
                for (p, port) in bridge.ports.enumerated()
                where port.error == nil && !now.ports.contains(where: { $0.name == port.name }) {
                    bridges[index].ports[p].error = reattach(port, bridge: bridge.name)
                }
                if now.ports.map(\.name) != bridge.ports.map(\.name) { republish(bridge.name) }
            }
        case .addUnderlay, .delUnderlay:
            for underlay in underlays where !checkpoint.underlays.contains(where: { $0.name == underlay.name }) {
                if underlay.error == nil { try? datapath.deletePort(underlay.name) }
            }
            var restored = checkpoint.underlays
            for (index, underlay) in restored.enumerated()
            where underlay.error == nil && !underlays.contains(where: { $0.name == underlay.name }) {
                do throws(DatapathError) { try datapath.addUnderlay(underlay.name) } catch {
                    restored[index].error = "could not attach \(underlay.name) again: \(error)"
                }
            }
            underlays = restored
        case .addFlow, .addFlows, .replaceFlows, .delFlows, .modFlows:
            if let flows = checkpoint.flows {
                do throws(RPCError) { try flowTables.restore(flows) } catch {
                    logger.error("undoing \(method.rawValue): cannot republish the flows: \(error.message)")
                }
            }
        case .show, .dumpPorts, .frameAccounting, .dumpWorkers, .dumpFlows:
            break
        }
        // The file may hold the refused change if it failed after the rename: the next change
        // rewrites the whole file.
        unsaved = true
        journalCanContinue = false
    }

    /// Attaches `port` to the datapath again (undoing its deletion); the error when it cannot be.
    private func reattach(_ port: Port, bridge: String) -> String? {
        do throws(DatapathError) {
            switch port.type {
            case "lisp": try datapath.addTunnelPort(port.name, bridge: bridge, options: try LISPPortOptions(options: port.options))
            default: try datapath.addPort(port.name, bridge: bridge)
            }
            return nil
        } catch {
            logger.error("undoing a change: cannot attach \(port.name) again: \(error)")
            return "could not attach \(port.name) again: \(error)"
        }
    }

    /// Replays the journal of the restored configuration file: the flow changes made after it was
    /// written. Call after `restore` (then `save`, which folds them into a new file).
    public func replayJournal() throws(RestoreError) {
        guard let store else { return }
        let records: [ConfigJournal.Record]
        do {
            records = try store.journal.load(generation: generation)
        } catch {
            throw RestoreError(message: error.description)
        }
        for (index, record) in records.enumerated() {
            do throws(RPCError) {
                guard let method = ControlMethod(rawValue: record.method), method.isFlowChange else {
                    throw .methodNotFound(record.method)
                }
                _ = try dispatch(method, RPCRequest(id: nil, method: record.method, params: record.params))
            } catch {
                // A change is journaled before it is made and cut again when it fails: a last
                // record that fails is one whose request failed as the daemon died, before it was
                // cut (never acknowledged). Any other is damage.
                if index == records.count - 1 {
                    logger.warning("\(store.journal.path): ignoring the last record (\(record.method)), whose change failed and was never acknowledged: \(error.message)")
                    break
                }
                throw RestoreError(message: "\(store.journal.path): record \(index + 1) (\(record.method)) cannot be replayed: \(error.message)")
            }
        }
        if !records.isEmpty {
            unsaved = true
            logger.info("replayed \(records.count) change(s) from \(store.journal.path)")
        }
    }

    /// Brings back a saved configuration into a service that has no bridges yet: re-creates the
    /// bridges, re-attaches the ports with their numbers, reinstalls the flows. A port whose device
    /// no longer exists stays configured, with the error shown by `show`, and can be deleted with
    /// del-port (as OVS keeps an interface whose device is missing). Anything else that cannot be
    /// restored is an error: the caller should refuse to start rather than lose configuration.
    public func restore(_ config: SwitchConfig) throws(RestoreError) {
        precondition(bridges.isEmpty, "restore into a service that already has bridges")
        generation = config.generation
        for saved in config.bridges {
            do throws(RPCError) {
                try validateName(saved.name, what: "bridge")
                guard !bridges.contains(where: { $0.name == saved.name }), findPort(saved.name) == nil else {
                    throw .alreadyExists("bridge \"\(saved.name)\" is there twice")
                }
                try datapathCall { () throws(DatapathError) in try datapath.addBridge(saved.name) }
            } catch {
                throw RestoreError(message: "cannot re-create bridge \"\(saved.name)\": \(error.message)")
            }
            var bridge = Bridge(name: saved.name, ports: [], nextOfport: saved.nextOfport)
            for port in saved.ports {
                if let problem = InterfaceName.problem(port.name) {
                    throw RestoreError(message: "bridge \"\(saved.name)\": port name \(InterfaceName.quoted(port.name)) is not valid: \(problem)")
                }
                guard (1..<ofportLocal).contains(port.ofport), port.ofport < saved.nextOfport,
                    !bridge.ports.contains(where: { $0.ofport == port.ofport || $0.name == port.name }),
                    findPort(port.name) == nil, port.name != saved.name
                else {
                    throw RestoreError(message: "bridge \"\(saved.name)\": port \"\(port.name)\" (number \(port.ofport)) conflicts with another port or the bridge's numbering")
                }
                var restored = Port(name: port.name, ofport: port.ofport, type: port.type, options: port.options)
                do throws(DatapathError) {
                    switch port.type {
                    case "", "system", "afxdp":
                        try datapath.addPort(port.name, bridge: saved.name)
                    case "lisp":
                        try datapath.addTunnelPort(port.name, bridge: saved.name, options: try LISPPortOptions(options: port.options))
                    default:
                        throw .unsupported("port type \"\(port.type)\" is not supported by this vswiftd")
                    }
                } catch {
                    restored.error = "could not attach \(port.name): \(error)"
                    logger.warning("restoring \(saved.name): port \(port.name) (\(port.ofport)) is configured but not attached: \(error)")
                }
                bridge.ports.append(restored)
            }
            bridge.ports.sort { $0.ofport < $1.ofport }
            bridge.ports.append(Port(name: saved.name, ofport: ofportLocal, type: "internal", options: [:]))
            bridges.append(bridge)
            do throws(RPCError) {
                try publishPortNumbers(bridges.count - 1)
                // The saved lines are the flows' saved text already: the save after the restore
                // need not format them again.
                let rules = try parseFlows(saved.flows, bridge: bridges.count - 1, numbered: false, saved: true)
                try flowTables.createTable(bridge: saved.name, rules: rules)
            } catch {
                throw RestoreError(message: "cannot restore the flows of bridge \"\(saved.name)\": \(error.message)")
            }
            logger.info("restored bridge \(saved.name): \(bridge.ports.count - 1) port(s), \(saved.flows.count) flow(s)")
        }
        for name in config.underlays {
            if let problem = InterfaceName.problem(name) {
                throw RestoreError(message: "underlay device name \(InterfaceName.quoted(name)) is not valid: \(problem)")
            }
            guard !underlays.contains(where: { $0.name == name }), findPort(name) == nil else {
                throw RestoreError(message: "underlay device \"\(name)\" conflicts with another port")
            }
            do throws(DatapathError) {
                try datapath.addUnderlay(name)
                underlays.append((name, nil))
            } catch {
                underlays.append((name, "could not attach \(name): \(error)"))
                logger.warning("underlay device \(name) is configured but not attached: \(error)")
            }
        }
    }

    // MARK: Helpers

    private func bridgeIndex(_ name: String) throws(RPCError) -> Int {
        try validateName(name, what: "bridge")
        guard let index = bridges.firstIndex(where: { $0.name == name }) else { throw .noSuchBridge(name) }
        return index
    }

    /// Tells the datapath the bridge's port numbers, then republishes its flow table (whose output
    /// and in_port numbers refer to them). Ports not in the datapath are left out.
    private func publishPortNumbers(_ index: Int) throws(RPCError) {
        let bridge = bridges[index]
        var numbers: [String: UInt32] = [:]
        for port in bridge.ports where port.error == nil { numbers[port.name] = port.ofport }
        try datapathCall { () throws(DatapathError) in try datapath.setPortNumbers(bridge: bridge.name, numbers) }
        // A new bridge has no table yet: creating it publishes it.
        if flowTables.hasTable(bridge: bridge.name) {
            try flowTables.publish(bridge: bridge.name)
        }
    }

    /// Port names in flows (`in_port=vnet0`, `output:vnet0`) are the bridge's ports; the bridge's
    /// own name and LOCAL are its internal port.
    private func parser(forBridge index: Int) -> FlowParser {
        let numbers = portNumbers(forBridge: index)
        return FlowParser(portNumber: { numbers[$0] })
    }

    private func portNumbers(forBridge index: Int) -> [String: UInt32] {
        var numbers: [String: UInt32] = ["LOCAL": ofportLocal]
        for port in bridges[index].ports { numbers[port.name] = port.ofport }
        return numbers
    }

    private func parseModification(_ text: String, bridge index: Int) throws(RPCError) -> FlowModification {
        do throws(FlowSyntaxError) {
            return try parser(forBridge: index).parseModification(text)
        } catch {
            throw Self.flowError(error, line: nil)
        }
    }

    private func parseFlow(_ text: String, parser: FlowParser, line: Int?) throws(RPCError) -> FlowRule {
        let rule: FlowRule
        do throws(FlowSyntaxError) {
            rule = try parser.parseFlow(text)
        } catch {
            throw Self.flowError(error, line: line)
        }
        guard rule.table == 0 else {
            let message = "table \(rule.table): vswift has a single flow table, table 0"
            throw .invalidFlow(line.map { "line \($0): \(message)" } ?? message)
        }
        return rule
    }

    /// Parses every line first (nothing changes when one is bad). With `numbered`, blank lines and
    /// comments (from `#` to the end of the line, as ovs-ofctl reads files) are skipped. Big files
    /// are parsed in chunks on all cores; the error reported is still that of the first bad line.
    /// `saved`: the lines are a saved configuration's flows, and an error names the flow by number and text.
    /// A flow from a file or a saved configuration keeps its line (comment and surrounding blanks
    /// cut) as its saved text, so saving it formats nothing — unless the line names a port: a
    /// name stands for the port's number only while that port exists, so such a flow is saved
    /// as `FlowFormatter` writes it (with numbers).
    private func parseFlows(_ lines: [String], bridge index: Int, numbered: Bool, saved: Bool = false) throws(RPCError) -> [NewFlow] {
        let numbers = portNumbers(forBridge: index)
        let keepsText = numbered || saved
        func parse(_ range: Range<Int>, into rules: inout [NewFlow]) -> RPCError? {
            // Counts the names this chunk's lines looked up.
            let names = PortNameLookups()
            var actionLists = ActionListSharing()
            let parser = FlowParser(portNumber: { name in
                names.count += 1
                return numbers[name]
            })
            for number in range {
                var line = lines[number]
                if numbered && !Self.isPlainFlowLine(line) {
                    var text = Substring(line)
                    if let hash = text.firstIndex(of: "#") { text = text[..<hash] }
                    text = text.trimmingWhitespace()
                    if text.isEmpty { continue }
                    line = String(text)
                }
                let asked = names.count
                let rule: FlowRule
                do throws(RPCError) {
                    rule = try parseFlow(line, parser: parser, line: numbered ? number + 1 : nil)
                } catch {
                    return saved ? .invalidFlow("flow \(number + 1) (\(line)): \(error.message)") : error
                }
                rules.append(NewFlow(
                    rule, text: keepsText && names.count == asked ? line : nil, actions: actionLists.shared(rule.actions)))
            }
            return nil
        }
        let chunkSize = 8192
        if lines.count <= chunkSize {
            var rules: [NewFlow] = []
            rules.reserveCapacity(lines.count)
            if let error = parse(0..<lines.count, into: &rules) { throw error }
            return rules
        }
        let chunks = (lines.count + chunkSize - 1) / chunkSize
        var results = [(rules: [NewFlow], error: RPCError?)](repeating: ([], nil), count: chunks)
        results.withUnsafeMutableBufferPointer { results in
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let range = chunk * chunkSize..<min(lines.count, (chunk + 1) * chunkSize)
                var rules: [NewFlow] = []
                rules.reserveCapacity(range.count)
                let error = parse(range, into: &rules)
                results[chunk] = (rules, error)
            }
        }
        // Chunks before the first one with an error parsed completely, so its error is the first.
        if let error = results.lazy.compactMap(\.error).first { throw error }
        var rules: [NewFlow] = []
        rules.reserveCapacity(lines.count)
        for chunk in results.indices {
            rules.append(contentsOf: results[chunk].rules)
            results[chunk].rules = []
        }
        return rules
    }

    /// A file's line that is a flow as it stands: not empty, no comment, no surrounding
    /// whitespace (checked on its bytes: cutting and trimming by characters costs more than
    /// parsing the flow).
    private static func isPlainFlowLine(_ line: String) -> Bool {
        var line = line
        return line.withUTF8 { bytes in
            // Visible ASCII at both ends: no whitespace there, not even Unicode's.
            guard let first = bytes.first, let last = bytes.last, (0x21...0x7e).contains(first),
                (0x21...0x7e).contains(last)
            else { return false }
            return !bytes.contains(UInt8(ascii: "#"))
        }
    }

    private func parseSelector(_ text: String, bridge index: Int, strict: Bool) throws(RPCError) -> FlowSelector {
        do throws(FlowSyntaxError) {
            let parsed = try parser(forBridge: index).parseMatch(text)
            return FlowSelector(
                match: parsed.match, strict: strict, priority: parsed.priority ?? FlowRule.defaultPriority,
                cookie: parsed.cookie, outPort: parsed.outPort)
        } catch {
            throw Self.flowError(error, line: nil)
        }
    }

    static func flowError(_ error: FlowSyntaxError, line: Int?) -> RPCError {
        var data: [String: JSONValue] = ["token": .string(error.token), "position": .int(Int64(error.position))]
        if let line { data["line"] = .int(Int64(line)) }
        let message = error.description
        return .invalidFlow(line.map { "line \($0): \(message)" } ?? message, data: .object(data))
    }

    private func findPort(_ name: String) -> (Int, Int)? {
        for (b, bridge) in bridges.enumerated() {
            if let p = bridge.ports.firstIndex(where: { $0.name == name }) { return (b, p) }
        }
        return nil
    }

    private func validateName(_ name: String, what: String) throws(RPCError) {
        if let problem = InterfaceName.problem(name) {
            throw .invalidParams("\(InterfaceName.quoted(name)) is not a valid \(what) name: \(problem) (names follow the kernel's rule: 1–15 bytes, no NUL, '/', ':', '%', white space or control characters, not \".\" or \"..\")")
        }
    }

    private func datapathCall(_ body: () throws(DatapathError) -> Void) throws(RPCError) {
        do {
            try body()
        } catch {
            throw Self.rpcError(for: error)
        }
    }

    static func rpcError(for error: DatapathError) -> RPCError {
        switch error {
        case .noSuchBridge(let name): return .noSuchBridge(name)
        case .noSuchPort(let name): return .noSuchPort(name)
        case .noSuchDevice(let name): return .noSuchDevice(name)
        case .bridgeExists, .portExists: return .alreadyExists(error.description)
        case .deviceInUse, .tooManyPorts: return .resourceUnavailable(error.description)
        case .unsupported, .system: return .datapathFailure(error.description)
        }
    }
}

/// How many port names a parser has looked up (one counter per thread that parses).
private final class PortNameLookups {
    var count = 0
}

/// Why a saved configuration could not be brought back.
public struct RestoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        guard let first = firstIndex(where: { !$0.isWhitespace }) else { return self[endIndex...] }
        let last = lastIndex(where: { !$0.isWhitespace })!
        return self[first...last]
    }
}
