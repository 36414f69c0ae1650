import Dispatch
import VSwiftClassifier
import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftProtocol

// Flow commands (add, replace, delete, modify, dump, expire) and the parsing of their flow text.
extension SwitchService {
    /// add-flow and add-flows: every line is parsed before anything changes, then all are added at
    /// once. `numbered`: the lines are a file's, so errors name the line, and blank lines and `#`
    /// comments are allowed.
    @discardableResult
    func addFlows(bridge name: String, lines: [String], numbered: Bool) throws(RPCError) -> FlowChangeReport {
        let index = try bridgeIndex(name)
        let rules = try parseFlows(lines, bridge: index, numbered: numbered)
        try tableCall { () throws(FlowTableError) in try flowTables.add(bridge: name, rules: rules) }
        unsaved = true
        logger.info("\(name): added \(rules.count) flow(s)")
        return FlowChangeReport(added: rules.count)
    }

    /// replace-flows: the table becomes exactly the file's flows; unchanged ones keep their counters.
    func replaceFlows(bridge name: String, lines: [String]) throws(RPCError) -> FlowChangeReport {
        let index = try bridgeIndex(name)
        let rules = try parseFlows(lines, bridge: index, numbered: true)
        let (installed, deleted) = try tableCall { () throws(FlowTableError) in try flowTables.replace(bridge: name, rules: rules) }
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
        let deleted = try tableCall { () throws(FlowTableError) in try flowTables.delete(bridge: params.bridge, selector: selector) }
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
        let (modified, added) = try tableCall { () throws(FlowTableError) in
            try flowTables.modify(
                bridge: params.bridge, selector: selector, actions: rule.actions,
                cookie: newCookie, addIfNone: selectsByCookie ? nil : rule)
        }
        if modified > 0 || added > 0 { unsaved = true }
        logger.info("\(params.bridge): modified \(modified) flow(s), added \(added)")
        return FlowChangeReport(added: added, modified: modified)
    }

    func dumpFlows(_ params: DumpFlowsParams) throws(RPCError) -> DumpFlowsReport {
        DumpFlowsReport(bridge: params.bridge, flows: try flowStatistics(params) { $0 })
    }

    /// The selected flows with their counters, each passed through `transform`: on all cores,
    /// since formatting a million flows takes a while.
    func flowStatistics<T: Sendable>(
        _ params: DumpFlowsParams, _ transform: @escaping @Sendable (FlowStatisticsEntry) -> T
    ) throws(RPCError) -> [T] {
        let index = try bridgeIndex(params.bridge)
        let selector = try params.match.map { text throws(RPCError) in try parseSelector(text, bridge: index, strict: false) }
        let now = clock()
        let wholeNow = UInt64(max(0, now))
        let snapshot = try tableCall { () throws(FlowTableError) in try flowTables.snapshot(bridge: params.bridge, selector: selector) }
        return parallelMap(snapshot) { entry in
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
        let changed: [String]
        do throws(FlowTableError) {
            changed = try flowTables.expire(now: clock())
        } catch {
            logger.error("flow expiry: \(RPCError(error))")
            return
        }
        guard !changed.isEmpty else { return }
        unsaved = true
        logger.debug("expired flows of \(changed.joined(separator: ", "))")
        do throws(ConfigStoreError) {
            try save()
        } catch {
            logger.error("flow expiry: \(error)")
        }
    }

    /// Runs `expireFlows` every second (until the service is gone).
    public func startExpiryTimer() {
        guard expiryTask == nil else { return }
        expiryTask = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                guard let self else { return }
                await self.expireFlows()
            }
        }
    }

    /// Port names in flows (`in_port=vnet0`, `output:vnet0`) are the bridge's ports; the bridge's
    /// own name and LOCAL are its internal port.
    func parser(forBridge index: Int) -> FlowParser {
        let numbers = portNumbers(forBridge: index)
        return FlowParser(portNumber: { numbers[$0] })
    }

    func parseModification(_ text: String, bridge index: Int) throws(RPCError) -> FlowModification {
        do throws(FlowSyntaxError) {
            return try parser(forBridge: index).parseModification(text)
        } catch {
            throw RPCError(error, line: nil)
        }
    }

    static func parseFlow(_ text: String, parser: FlowParser, line: Int?) throws(RPCError) -> FlowRule {
        let rule: FlowRule
        do throws(FlowSyntaxError) {
            rule = try parser.parseFlow(text)
        } catch {
            throw RPCError(error, line: line)
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
    func parseFlows(_ lines: [String], bridge index: Int, numbered: Bool, saved: Bool = false) throws(RPCError) -> [NewFlow] {
        let numbers = portNumbers(forBridge: index)
        let keepsText = numbered || saved
        @Sendable func parse(_ range: Range<Int>, into rules: inout [NewFlow]) -> RPCError? {
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
                    rule = try Self.parseFlow(line, parser: parser, line: numbered ? number + 1 : nil)
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
        results.withUnsafeMutableBufferPointer { buffer in
            // Each chunk writes its own element, and all are done when concurrentPerform returns.
            nonisolated(unsafe) let results = buffer
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
    static func isPlainFlowLine(_ line: String) -> Bool {
        var line = line
        return line.withUTF8 { bytes in
            // Visible ASCII at both ends: no whitespace there, not even Unicode's.
            guard let first = bytes.first, let last = bytes.last, (0x21...0x7e).contains(first),
                (0x21...0x7e).contains(last)
            else { return false }
            return !bytes.contains(UInt8(ascii: "#"))
        }
    }

    func parseSelector(_ text: String, bridge index: Int, strict: Bool) throws(RPCError) -> FlowSelector {
        do throws(FlowSyntaxError) {
            let parsed = try parser(forBridge: index).parseMatch(text)
            return FlowSelector(
                match: parsed.match, strict: strict, priority: parsed.priority ?? FlowRule.defaultPriority,
                cookie: parsed.cookie, outPort: parsed.outPort)
        } catch {
            throw RPCError(error, line: nil)
        }
    }
}

/// How many port names a parser has looked up (one counter per thread that parses).
private final class PortNameLookups {
    var count = 0
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        guard let first = firstIndex(where: { !$0.isWhitespace }) else { return self[endIndex...] }
        let last = lastIndex(where: { !$0.isWhitespace })!
        return self[first...last]
    }
}
