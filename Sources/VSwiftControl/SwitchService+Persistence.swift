import Logging
import VSwiftClassifier
import VSwiftDatapath
import VSwiftProtocol

// The saved configuration: what is saved, durable changes (journal or rewrite, undone when they
// cannot be saved), and bringing a saved configuration back at start.
extension SwitchService {
    /// The configuration as it would be saved now.
    public func configuration() -> SwitchConfig {
        SwitchConfig(systemID: systemID, bridges: bridges.map { bridge in
            BridgeConfig(
                name: bridge.name, nextOfport: bridge.nextOfport,
                ports: bridge.ports.filter { $0.ofport != ofportLocal }.map { port in
                    PortConfig(name: port.name, ofport: port.ofport, type: port.type, options: port.options)
                },
                flows: flowTables.savedFlows(bridge: bridge.name))
        }, underlays: underlays.map(\.name), generation: generation, lisp: lisp.isEmpty ? nil : lisp)
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
    func performDurably(_ method: ControlMethod, _ request: RPCRequest) throws(RPCError) -> JSONValue {
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

    func refusal(_ method: ControlMethod, _ error: ConfigStoreError) -> RPCError {
        logger.error("cannot save the configuration: \(error)")
        return .internalError("\(method.rawValue) was refused and nothing changed: the configuration could not be saved: \(error)")
    }

    /// What a change may touch, as it was before the change.
    struct Checkpoint {
        let bridges: [Bridge]
        let underlays: [(name: String, error: String?)]
        let lisp: LISPSavedConfig
        let lispValidated: ValidatedLISPConfig
        /// The flow table of the request's bridge, for changes that replace or delete one.
        let flows: FlowTables.Checkpoint?

        init(_ service: isolated SwitchService, _ method: ControlMethod, _ request: RPCRequest) {
            bridges = service.bridges
            underlays = service.underlays
            lisp = service.lisp
            lispValidated = service.lispValidated
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
    func undo(_ method: ControlMethod, to checkpoint: Checkpoint) {
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
                    do throws(FlowTableError) { try flowTables.restore(flows) } catch {
                        logger.error("undoing del-br: cannot republish the flows of \(bridge.name): \(RPCError(error).message)")
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
                do throws(FlowTableError) { try flowTables.restore(flows) } catch {
                    logger.error("undoing \(method.rawValue): cannot republish the flows: \(RPCError(error).message)")
                }
            }
        case .show, .dumpPorts, .frameAccounting, .dumpWorkers, .dumpFlows, .trace:
            break
        case .captureStart, .captureRead, .captureStop, .showLISP, .dumpMapCache, .dumpXDPCache:
            break
        case .addMapServer, .delMapServer, .addMapResolver, .delMapResolver, .addEID, .delEID, .addMapCache, .delMapCache:
            lisp = checkpoint.lisp
            lispValidated = checkpoint.lispValidated
            refreshLISPControl()
        }
        // The file may hold the refused change if it failed after the rename: the next change
        // rewrites the whole file.
        unsaved = true
        journalCanContinue = false
    }

    /// Attaches `port` to the datapath again (undoing its deletion); the error when it cannot be.
    func reattach(_ port: Port, bridge: String) -> String? {
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
                try tableCall { () throws(FlowTableError) in try flowTables.createTable(bridge: saved.name, rules: rules) }
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
        try restoreLISP(config.lisp)
    }

}
