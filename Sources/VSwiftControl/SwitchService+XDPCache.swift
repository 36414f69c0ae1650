import VSwiftDatapath
import VSwiftFlowSyntax
import VSwiftProtocol

// The XDP flow cache's operator surface: dump-xdp-cache, and the path counts dump-ports shows
// (dump-workers' totals are vswiftctl's, from dump-xdp-cache). All from one datapath report
// (`XDPFlowCacheReport`), read while the service runs nothing else.
extension SwitchService {
    func dumpXDPCache(_ params: DumpXDPCacheParams) throws(RPCError) -> XDPCacheReport {
        if let bridge = params.bridge { _ = try bridgeIndex(bridge) }
        return XDPCacheReport(datapath.xdpFlowCacheReport(bridge: params.bridge, flows: params.flows ?? true))
    }

    /// Each device port's path counts, by port name; empty while the cache is off (dump-ports then
    /// prints no xdp_cache line).
    func xdpPathCounts(bridge: String) -> [String: XDPPathReport] {
        let report = datapath.xdpFlowCacheReport(bridge: bridge, flows: false)
        guard report.enabled else { return [:] }
        return Dictionary(report.ports.map { ($0.name, XDPPathReport($0.counters, redirectProblem: $0.redirectProblem)) },
                          uniquingKeysWith: { first, _ in first })
    }
}

extension DatapathControl {
    /// A datapath without an XDP flow cache (the control tests' fake, unless it sets one).
    public func xdpFlowCacheReport(bridge: String?, flows: Bool) -> XDPFlowCacheReport { .off }
}

extension XDPPathReport {
    public init(_ c: XDPFlowCacheReport.PathCounters, redirectProblem: String? = nil) {
        self.init(hits: c.hits, misses: c.misses, punted: c.punted, failed: c.failed, redirectProblem: redirectProblem)
    }
}

extension XDPCacheReport {
    /// Field for field; the actions written in ovs-ofctl flow syntax.
    public init(_ r: XDPFlowCacheReport) {
        guard r.enabled else {
            self.init(enabled: false)
            return
        }
        let s = r.statistics
        self.init(
            enabled: true, entries: s.entries, capacity: s.capacity, masks: s.masks, maxMasks: s.maxMasks, installed: s.installed,
            refused: s.refused, removed: s.removed, handoverRingFull: s.handoverRingFull,
            forgetOverflow: s.forgetOverflow, totals: XDPPathReport(r.totals),
            ports: r.ports.map { XDPCachePortEntry(bridge: $0.bridge, name: $0.name,
                                                  path: XDPPathReport($0.counters, redirectProblem: $0.redirectProblem)) },
            flows: r.flows.map { flow in
                XDPCacheFlowEntry(
                    bridge: flow.bridge, match: flow.match,
                    key: Dictionary(flow.fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first }),
                    actions: FlowFormatter.actions(flow.actions), ruleID: flow.ruleID, packets: flow.packets, bytes: flow.bytes,
                    used: flow.used, age: flow.age)
            },
            truncated: r.truncated)
    }
}
