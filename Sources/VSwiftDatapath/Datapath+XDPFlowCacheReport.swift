// The XDP flow cache's report (XDPFlowCacheReport.swift): what the cache's owner hands over.
extension Datapath {
    /// What vswiftctl dump-xdp-cache, dump-ports and dump-workers show of the XDP flow cache:
    /// `.off` when vswiftd runs without it (`--xdp-cache off`).
    public func xdpFlowCacheReport(bridge: String? = nil, flows: Bool = true) -> XDPFlowCacheReport {
        guard let flowCacheInstaller else { return .off }
        let (entries, ports) = flowCacheState()
        let s = flowCacheInstaller.statistics
        let statistics = XDPFlowCacheReport.Statistics(
            entries: flowCacheInstaller.entryCount, capacity: flowCacheInstaller.cache.capacity,
            masks: flowCacheInstaller.cache.maskCount, installed: s.installed,
            refused: ["stale": s.stale, "duplicate": s.duplicate, "not_cacheable": s.notCacheable,
                      "untranslatable": s.untranslatable, "redirect_unsupported": s.redirectUnsupported, "full": s.refusedFull, "no_mask": s.refusedNoMask,
                      "failed": s.failed, "early_dropped": s.earlyDropped, "early_overflow": s.earlyOverflow].filter { $0.value > 0 },
            removed: ["changed": s.removed, "idle": s.expired].filter { $0.value > 0 },
            handoverRingFull: s.handoverRingFull, forgetOverflow: s.forgetOverflow)
        let input = XDPFlowCacheReport.Input(
            entries: entries.map { bridge, snapshot in
                let e = snapshot.entry
                return .init(bridge: bridge, mask: e.flow.mask, maskedKey: e.flow.maskedKey, actions: e.flow.actions,
                             ruleID: e.flow.ruleID, packets: e.packets, bytes: e.bytes,
                             installedAt: e.installedAt, lastUsed: e.packets > 0 ? e.lastUsed : 0)
            },
            ports: ports.map { .init(bridge: $0.bridge, name: $0.name,
                                     counters: .init(hits: $0.statistics.hits, misses: $0.statistics.misses,
                                                     punted: $0.statistics.punted, failed: $0.statistics.failed),
                                     redirectProblem: flowCacheInstaller.redirectProblem($0.slot)) },
            statistics: statistics, now: XDPFlowCacheInstaller.monotonicNanoseconds())
        return XDPFlowCacheReport(input, bridge: bridge, flows: flows)
    }
}
