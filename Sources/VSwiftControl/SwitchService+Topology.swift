import VSwiftClassifier
import VSwiftDatapath
import VSwiftProtocol

// Bridges, ports and underlay devices: the switch's shape, mirrored into the datapath.
extension SwitchService {
    func addBridge(_ name: String) throws(RPCError) {
        try validateName(name, what: "bridge")
        guard bridges.firstIndex(where: { $0.name == name }) == nil, findPort(name) == nil else {
            throw .alreadyExists("a bridge or port named \"\(name)\" already exists")
        }
        try datapathCall { () throws(DatapathError) in try datapath.addBridge(name) }
        bridges.append(Bridge(name: name, ports: [Port(name: name, ofport: ofportLocal, type: "internal", options: [:])]))
        do {
            try publishPortNumbers(bridges.count - 1)
            try tableCall { () throws(FlowTableError) in try flowTables.createTable(bridge: name, rules: [NewFlow(Self.defaultFlow)]) }
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
        let xdp = xdpPathCounts(bridge: bridge.name)
        return DumpPortsReport(bridge: bridge.name, ports: selected.map { port in
            var statistics = PortStatisticsReport(datapath.statistics(port: port.name) ?? PortStatistics())
            statistics.xdp = xdp[port.name]
            return PortStatisticsEntry(ofport: port.ofport, name: port.name, statistics: statistics)
        })
    }

    // MARK: Helpers

    func bridgeIndex(_ name: String) throws(RPCError) -> Int {
        try validateName(name, what: "bridge")
        guard let index = bridges.firstIndex(where: { $0.name == name }) else { throw .noSuchBridge(name) }
        return index
    }

    /// Tells the datapath the bridge's port numbers, then republishes its flow table (whose output
    /// and in_port numbers refer to them). Ports not in the datapath are left out.
    func publishPortNumbers(_ index: Int) throws(RPCError) {
        let bridge = bridges[index]
        var numbers: [String: OpenFlowPortNumber] = [:]
        for port in bridge.ports where port.error == nil { numbers[port.name] = OpenFlowPortNumber(rawValue: port.ofport) }
        try datapathCall { () throws(DatapathError) in try datapath.setPortNumbers(bridge: bridge.name, numbers) }
        // A new bridge has no table yet: creating it publishes it.
        if flowTables.hasTable(bridge: bridge.name) {
            try tableCall { () throws(FlowTableError) in try flowTables.publish(bridge: bridge.name) }
        }
    }

    /// The bridge's port numbers by port name, LOCAL included.
    func portNumbers(forBridge index: Int) -> [String: UInt32] {
        var numbers: [String: UInt32] = ["LOCAL": ofportLocal]
        for port in bridges[index].ports { numbers[port.name] = port.ofport }
        return numbers
    }

    /// The bridge index and port index of the port called `name`, on any bridge.
    func findPort(_ name: String) -> (Int, Int)? {
        for (b, bridge) in bridges.enumerated() {
            if let p = bridge.ports.firstIndex(where: { $0.name == name }) { return (b, p) }
        }
        return nil
    }

    func validateName(_ name: String, what: String) throws(RPCError) {
        if let problem = InterfaceName.problem(name) {
            throw .invalidParams("\(InterfaceName.quoted(name)) is not a valid \(what) name: \(problem) (names follow the kernel's rule: 1–15 bytes, no NUL, '/', ':', '%', white space or control characters, not \".\" or \"..\")")
        }
    }
}
