import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftProtocol

// Requests to handlers, and domain errors to JSON-RPC errors.
extension SwitchService {
    /// Runs one request: the control server's entry point. A change is made durable before it
    /// is acknowledged when the service has a store (`performDurably`).
    public func handle(_ request: RPCRequest) -> Result<JSONValue, RPCError> {
        do throws(RPCError) {
            guard let method = ControlMethod(rawValue: request.method) else { throw .methodNotFound(request.method) }
            let result = try store != nil && method.changesConfiguration ? performDurably(method, request) : dispatch(method, request)
            // A `remote_ip=map` LISP port may have come or gone: the LISP control thread drains misses while one exists.
            if method == .addPort || method == .delPort || method == .delBridge { refreshLISPControl() }
            return .success(result)
        } catch {
            logger.info("\(request.method) failed: \(error.message)")
            return .failure(error)
        }
    }

    /// The method's handler, with the request's parameters decoded for it.
    func dispatch(_ method: ControlMethod, _ request: RPCRequest) throws(RPCError) -> JSONValue {
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
            var report = show()
            report.lisp = showLISPSummary()
            return try JSONValue(encoding: report)
        case .dumpPorts:
            let params: DumpPortsParams = try request.decodeParams()
            return try JSONValue(encoding: dumpPorts(params))
        case .frameAccounting:
            return try JSONValue(encoding: datapath.frameAccounting().map(FrameAccountingReport.init))
        case .dumpWorkers:
            return try JSONValue(encoding: datapath.workerStatistics().map(WorkerReport.init))
        case .dumpXDPCache:
            return try JSONValue(encoding: dumpXDPCache(try request.decodeParams()))
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
        case .trace:
            let params: TraceParams = try request.decodeParams()
            return try JSONValue(encoding: trace(params))
        case .captureStart:
            return try JSONValue(encoding: startCapture(request.decodeParams()))
        case .captureRead:
            return try JSONValue(encoding: readCapture(request.decodeParams()))
        case .captureStop:
            return try JSONValue(encoding: stopCapture(request.decodeParams()))
        case .addMapServer, .delMapServer, .addMapResolver, .delMapResolver, .addEID, .delEID, .addMapCache, .delMapCache,
             .showLISP, .dumpMapCache:
            return try dispatchLISP(method, request)
        }
    }

    /// Runs a datapath call, its error as the client sees it.
    func datapathCall(_ body: () throws(DatapathError) -> Void) throws(RPCError) {
        do {
            try body()
        } catch {
            throw RPCError(error)
        }
    }

    /// Runs a flow table call, its error as the client sees it.
    func tableCall<T>(_ body: () throws(FlowTableError) -> T) throws(RPCError) -> T {
        do {
            return try body()
        } catch {
            throw RPCError(error)
        }
    }
}

// The one place where the control plane's domain errors become JSON-RPC errors (code and message).
extension RPCError {
    init(_ error: DatapathError) {
        switch error {
        case .noSuchBridge(let name): self = .noSuchBridge(name)
        case .noSuchPort(let name): self = .noSuchPort(name)
        case .noSuchDevice(let name): self = .noSuchDevice(name)
        case .bridgeExists, .portExists: self = .alreadyExists(error.description)
        case .deviceInUse, .tooManyPorts: self = .resourceUnavailable(error.description)
        case .unsupported, .system: self = .datapathFailure(error.description)
        }
    }

    init(_ error: FlowTableError) {
        switch error {
        case .noSuchBridge(let name): self = .noSuchBridge(name)
        case .tooManyFlows(let capacity, let available):
            self = .resourceUnavailable("too many flows: the datapath has room for \(capacity) flows in all, \(available) are free")
        case .datapath(let error): self.init(error)
        }
    }

    /// A flow that does not parse; `line` is its line in a file. The data names the token at fault.
    init(_ error: FlowSyntaxError, line: Int?) {
        var data: [String: JSONValue] = ["token": .string(error.token), "position": .int(Int64(error.position))]
        if let line { data["line"] = .int(Int64(line)) }
        let message = error.description
        self = .invalidFlow(line.map { "line \($0): \(message)" } ?? message, data: .object(data))
    }
}
