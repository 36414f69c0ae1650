// The XDP flow cache's report (XDPFlowCacheReport.swift): what the cache's owner hands over.
extension Datapath {
    /// What vswiftctl dump-xdp-cache, dump-ports and dump-workers show of the XDP flow cache.
    /// Until the installer is wired in (issue 17), there is no cache to report: off.
    public func xdpFlowCacheReport(bridge: String? = nil, flows: Bool = true) -> XDPFlowCacheReport {
        // The installer fills XDPFlowCacheReport.Input (entries, per-device counters, statistics,
        // now) and returns XDPFlowCacheReport(input, bridge: bridge, flows: flows).
        .off
    }
}
