import Dispatch
import Foundation
import Logging
import VSwiftDatapath

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
    }

    struct Bridge {
        let name: String
        /// In port-number order; the internal port (LOCAL) is kept last.
        var ports: [Port]
        var nextOfport: UInt32 = 1
    }

    public let systemID: String
    private let datapath: Datapath
    private let logger: Logger
    private let queue = DispatchQueue(label: "vswift.control")
    /// In creation order.
    private var bridges: [Bridge] = []

    public init(datapath: Datapath, systemID: String = UUID().uuidString.lowercased(), logger: Logger) {
        self.datapath = datapath
        self.systemID = systemID
        self.logger = logger
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
            let result = try dispatch(method, request)
            return .success(result)
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
        logger.info("added bridge \(name)")
    }

    func deleteBridge(_ name: String) throws(RPCError) {
        guard let index = bridges.firstIndex(where: { $0.name == name }) else { throw .noSuchBridge(name) }
        try datapathCall { () throws(DatapathError) in try datapath.deleteBridge(name) }
        bridges.remove(at: index)
        logger.info("deleted bridge \(name)")
    }

    func addPort(_ params: AddPortParams) throws(RPCError) {
        try validateName(params.port, what: "port")
        guard let index = bridges.firstIndex(where: { $0.name == params.bridge }) else { throw .noSuchBridge(params.bridge) }
        if let (owner, _) = findPort(params.port) {
            throw .alreadyExists("\"\(params.port)\" is already a port of bridge \"\(bridges[owner].name)\"")
        }
        let type = params.type ?? ""
        switch type {
        case "", "system", "afxdp":
            if let options = params.options, let key = options.keys.sorted().first {
                throw .invalidParams("port type \"\(type.isEmpty ? "system" : type)\" takes no option \"\(key)\"")
            }
        case "internal":
            throw .invalidParams("internal ports are created with their bridge (add-br); extra internal ports are not supported")
        default:
            throw .invalidParams("port type \"\(type)\" is not supported (supported: system)")
        }
        try datapathCall { () throws(DatapathError) in try datapath.addPort(params.port, bridge: params.bridge) }
        var bridge = bridges[index]
        let port = Port(name: params.port, ofport: bridge.nextOfport, type: "", options: [:])
        bridge.nextOfport += 1
        bridge.ports.insert(port, at: bridge.ports.count - 1)  // before LOCAL
        bridges[index] = bridge
        logger.info("added port \(params.port) to \(params.bridge) as port \(port.ofport)")
    }

    func deletePort(_ params: DelPortParams) throws(RPCError) {
        guard let (bridgeIndex, portIndex) = findPort(params.port) else { throw .noSuchPort(params.port) }
        let bridge = bridges[bridgeIndex]
        if let wanted = params.bridge, wanted != bridge.name {
            guard bridges.contains(where: { $0.name == wanted }) else { throw .noSuchBridge(wanted) }
            throw .noSuchPort("\(params.port)\" on bridge \"\(wanted)")
        }
        guard bridge.ports[portIndex].ofport != ofportLocal else {
            throw .invalidParams("\"\(params.port)\" is the internal port of bridge \"\(bridge.name)\": use del-br")
        }
        try datapathCall { () throws(DatapathError) in try datapath.deletePort(params.port) }
        bridges[bridgeIndex].ports.remove(at: portIndex)
        logger.info("deleted port \(params.port) from \(bridge.name)")
    }

    func show() -> ShowReport {
        ShowReport(systemID: systemID, bridges: bridges.map { bridge in
            BridgeDescription(name: bridge.name, ports: bridge.ports.map { port in
                PortDescription(
                    name: port.name, ofport: port.ofport, type: port.type, options: port.options,
                    datapathMode: datapath.attachment(of: port.name)?.summary ?? "")
            })
        })
    }

    func dumpPorts(_ params: DumpPortsParams) throws(RPCError) -> DumpPortsReport {
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

    // MARK: Helpers

    private func findPort(_ name: String) -> (Int, Int)? {
        for (b, bridge) in bridges.enumerated() {
            if let p = bridge.ports.firstIndex(where: { $0.name == name }) { return (b, p) }
        }
        return nil
    }

    private func validateName(_ name: String, what: String) throws(RPCError) {
        guard !name.isEmpty, name.utf8.count <= 15, !name.contains("/"), !name.contains(where: { $0.isWhitespace }) else {
            throw .invalidParams("\"\(name)\" is not a valid \(what) name (1–15 bytes, no '/' or spaces)")
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
