import VSwiftLISPAgent
import VSwiftMapCache
import VSwiftPacket
import VSwiftProtocol

// The LISP mapping system's configuration (issue 16): map-servers with their keys, map-resolvers,
// local EID prefixes, static map-cache entries. Kept as saved (`lisp`) and checked
// (`lispValidated`), changed one request at a time, handed to the LISP control thread
// (`LISPControlService`) after every change, and saved with the rest (a whole-file rewrite:
// these changes are never journaled). Duplicate adds are refused as add-br's are; deleting what
// is not there is an error, as del-br's is.
extension SwitchService {
    func dispatchLISP(_ method: ControlMethod, _ request: RPCRequest) throws(RPCError) -> JSONValue {
        typealias V = LISPConfigValidation
        var next = lisp
        var validated = lispValidated
        var configuration: LISPControlConfiguration {
            get { validated.configuration }
            set { validated.configuration = newValue }
        }
        switch method {
        case .addMapServer:
            let params: AddMapServerParams = try request.decodeParams()
            let server = try V.mapServer(params)
            guard !configuration.mapServers.contains(where: { $0.address == server.address }) else {
                throw .alreadyExists("map-server \(server.address) is already configured (del-map-server first to change its key)")
            }
            guard configuration.mapServers.count < V.maxMapServers else {
                throw .resourceUnavailable("at most \(V.maxMapServers) map-servers may be configured")
            }
            configuration.mapServers.append(server)
            next.mapServers.append(LISPConfigValidation.saved(server, key: params.key))
            try changeLISP(to: next, validated, "added map-server \(server.address) (\(server.key))")
        case .delMapServer:
            let params: LISPAddressParams = try request.decodeParams()
            let address = try V.address(params.address, what: "map-server")
            guard let index = configuration.mapServers.firstIndex(where: { $0.address == address }) else {
                throw .invalidParams("map-server \(address) is not configured")
            }
            configuration.mapServers.remove(at: index)
            next.mapServers.remove(at: index)
            try changeLISP(to: next, validated, "deleted map-server \(address)")
        case .addMapResolver:
            let params: LISPAddressParams = try request.decodeParams()
            let address = try V.address(params.address, what: "map-resolver")
            guard !configuration.mapResolvers.contains(address) else {
                throw .alreadyExists("map-resolver \(address) is already configured")
            }
            guard configuration.mapResolvers.count < V.maxMapResolvers else {
                throw .resourceUnavailable("at most \(V.maxMapResolvers) map-resolvers may be configured")
            }
            configuration.mapResolvers.append(address)
            next.mapResolvers.append("\(address)")
            try changeLISP(to: next, validated, "added map-resolver \(address)")
        case .delMapResolver:
            let params: LISPAddressParams = try request.decodeParams()
            let address = try V.address(params.address, what: "map-resolver")
            guard let index = configuration.mapResolvers.firstIndex(of: address) else {
                throw .invalidParams("map-resolver \(address) is not configured")
            }
            configuration.mapResolvers.remove(at: index)
            next.mapResolvers.remove(at: index)
            try changeLISP(to: next, validated, "deleted map-resolver \(address)")
        case .addEID:
            let params: EIDParams = try request.decodeParams()
            let prefix = try V.prefix(params)
            let rlocs = try V.rlocs(params.rlocs ?? [], max: V.maxLocalRLOCs, of: prefix)
            guard !configuration.localEIDs.contains(where: { $0.prefix == prefix }) else {
                throw .alreadyExists("\(V.text(prefix)) is already a local EID")
            }
            guard configuration.localEIDs.count < V.maxLocalEIDs else {
                throw .resourceUnavailable("at most \(V.maxLocalEIDs) local EID prefixes may be configured")
            }
            configuration.localEIDs.append(LocalEIDConfiguration(prefix: prefix, rlocs: rlocs))
            next.localEIDs.append(V.saved(prefix, rlocs.isEmpty ? nil : rlocs))
            try changeLISP(to: next, validated, "added local \(V.text(prefix))")
        case .delEID:
            let params: EIDParams = try request.decodeParams()
            let prefix = try V.prefix(params)
            guard let index = configuration.localEIDs.firstIndex(where: { $0.prefix == prefix }) else {
                throw .invalidParams("\(V.text(prefix)) is not a local EID")
            }
            configuration.localEIDs.remove(at: index)
            next.localEIDs.remove(at: index)
            try changeLISP(to: next, validated, "deleted local \(V.text(prefix))")
        case .addMapCache:
            let params: EIDParams = try request.decodeParams()
            let prefix = try V.prefix(params)
            let rlocs = try V.rlocs(params.rlocs ?? [], max: V.maxStaticRLOCs, of: prefix)
            guard !rlocs.isEmpty else { throw .invalidParams("a static map-cache entry needs at least one RLOC") }
            guard !validated.staticEntries.contains(where: { $0.prefix == prefix }) else {
                throw .alreadyExists("\(V.text(prefix)) is already in the static map-cache (del-map-cache first)")
            }
            guard validated.staticEntries.count < V.maxStaticEntries else {
                throw .resourceUnavailable("at most \(V.maxStaticEntries) static map-cache entries may be configured")
            }
            validated.staticEntries.append(StaticMapping(
                prefix: prefix, locators: rlocs.map { Locator(address: $0.address, priority: $0.priority, weight: $0.weight) }))
            next.mapCache.append(V.saved(prefix, rlocs))
            try changeLISP(to: next, validated, "added static map-cache entry \(V.text(prefix))")
        case .delMapCache:
            let params: EIDParams = try request.decodeParams()
            let prefix = try V.prefix(params)
            guard let index = validated.staticEntries.firstIndex(where: { $0.prefix == prefix }) else {
                throw .invalidParams("\(V.text(prefix)) is not in the static map-cache")
            }
            validated.staticEntries.remove(at: index)
            next.mapCache.remove(at: index)
            try changeLISP(to: next, validated, "deleted static map-cache entry \(V.text(prefix))")
        case .showLISP:
            return try JSONValue(encoding: showLISP())
        case .dumpMapCache:
            let entries = try lispStatus()?.report.mapCache.sorted() ?? []
            return .object(["entries": try JSONValue(encoding: entries)])
        default:
            throw .methodNotFound(method.rawValue)
        }
        return .null
    }

    /// Makes `next` the configuration and hands it to the control thread; when the thread cannot
    /// take it (the control socket cannot be opened), nothing changes and the request fails.
    private func changeLISP(to next: LISPSavedConfig, _ validated: ValidatedLISPConfig, _ done: String) throws(RPCError) {
        let settings = LISPControlSettings(config: validated, hasMapPorts: hasMapPorts)
        if settings != lispSettings, let lispControl {
            do throws(LISPControlSocket.OpenError) {
                try lispControl.configure(settings)
            } catch {
                throw .resourceUnavailable("the LISP control socket cannot be opened: \(error)")
            }
        }
        lispSettings = settings
        lispError = nil
        lisp = next
        lispValidated = validated
        unsaved = true
        logger.info("LISP control: \(done)")
    }

    /// A LISP port that takes its remote RLOC from the mapping system exists.
    var hasMapPorts: Bool {
        bridges.contains { bridge in bridge.ports.contains { $0.type == "lisp" && $0.options["remote_ip"] == "map" } }
    }

    /// Hands the control thread the current configuration when it changed (a `remote_ip=map`
    /// port came or went, a change was undone, a restore). A socket that cannot be opened is
    /// logged and shown by show-lisp, and tried again at the next change.
    func refreshLISPControl() {
        let settings = LISPControlSettings(config: lispValidated, hasMapPorts: hasMapPorts)
        guard settings != lispSettings || lispError != nil else { return }
        lispSettings = settings
        guard let lispControl else { return }
        do throws(LISPControlSocket.OpenError) {
            try lispControl.configure(settings)
            lispError = nil
        } catch {
            lispError = error.description
            logger.error("LISP control: \(error)")
        }
    }

    /// Brings back the saved `lisp` section (nil: files from before it existed, or nothing
    /// configured), checked as the requests were.
    func restoreLISP(_ saved: LISPSavedConfig?) throws(RestoreError) {
        guard let saved else { return }
        do throws(RPCError) {
            lispValidated = try ValidatedLISPConfig(saved)
        } catch {
            throw RestoreError(message: "cannot restore the LISP control configuration: \(error.message)")
        }
        lisp = saved
        refreshLISPControl()
        logger.info("restored LISP control: \(saved.mapServers.count) map-server(s), \(saved.mapResolvers.count) map-resolver(s), \(saved.localEIDs.count) local EID(s), \(saved.mapCache.count) static map-cache entries")
    }

    /// The control thread's state; nil when it does not run. An error when it does not answer.
    func lispStatus() throws(RPCError) -> LISPControlStatus? {
        guard let lispControl, lispControl.port != nil else { return nil }
        guard let status = lispControl.status() else {
            throw .resourceUnavailable("the LISP control thread did not answer within 2 s")
        }
        return status
    }

    func showLISP() throws(RPCError) -> ShowLISPReport {
        lispReport(status: try lispStatus())
    }

    /// `show`'s LISP section: the configuration and registration state without the counters,
    /// static map-cache entries only counted (there may be 100k); nil when nothing is configured.
    /// A control thread that does not answer leaves the state out rather than failing `show`.
    func showLISPSummary() -> ShowLISPReport? {
        guard !lisp.isEmpty else { return nil }
        var report = lispReport(status: (try? lispStatus()) ?? nil)
        report.staticMapCacheCount = report.staticMapCache.count
        report.staticMapCache = []
        report.sent = [:]
        report.received = [:]
        report.refused = [:]
        report.socket = [:]
        return report
    }

    private func lispReport(status: LISPControlStatus?) -> ShowLISPReport {
        func rlocs(_ list: [RLOCParams]?) -> [RLOCReport] {
            (list ?? []).map {
                RLOCReport(address: $0.address, priority: $0.priority ?? RLOCParams.defaultPriority, weight: $0.weight ?? RLOCParams.defaultWeight)
            }
        }
        var report = ShowLISPReport(controlPort: status?.port, controlError: lispError)
        report.mapServers = zip(lisp.mapServers, lispValidated.configuration.mapServers).map { server, checked in
            let key = checked.key
            var entry = MapServerReport(
                address: server.address, keyID: Int(key.keyID), algorithmID: Int(key.algorithm.rawValue), algorithm: key.algorithm.name)
            if let registration = status?.report.registrations.first(where: { "\($0.mapServer)" == server.address }) {
                entry.state = registration.state.rawValue
                entry.lastNotifyAge = registration.lastNotifyAge
                entry.registersSent = registration.registersSent
                entry.notifiesAccepted = registration.notifiesAccepted
            }
            return entry
        }
        report.mapResolvers = lisp.mapResolvers
        report.localEIDs = lisp.localEIDs.map { eid in
            guard let configured = eid.rlocs, !configured.isEmpty else {
                let defaults = (status?.defaultRLOCs ?? []).map {
                    RLOCReport(address: "\($0)", priority: RLOCParams.defaultPriority, weight: RLOCParams.defaultWeight)
                }
                return LocalEIDReport(instanceID: eid.instanceID, prefix: eid.prefix, rlocs: defaults, defaultRLOCs: true)
            }
            return LocalEIDReport(instanceID: eid.instanceID, prefix: eid.prefix, rlocs: rlocs(configured))
        }
        report.staticMapCache = lisp.mapCache.map { LocalEIDReport(instanceID: $0.instanceID, prefix: $0.prefix, rlocs: rlocs($0.rlocs)) }
        if let status {
            report.sent = status.report.sent
            report.received = status.report.received
            report.refused = status.report.refused
            report.socket = status.socket
        }
        return report
    }
}
