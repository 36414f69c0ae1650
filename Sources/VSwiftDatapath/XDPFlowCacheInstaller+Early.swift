/// The installer's side of early hand-overs (`XDPFlowCacheEarlyKeys`): a miss classified with a
/// table version newer than the bridge's here waits for `refresh` to bring that version, and is
/// then installed like any miss of it — computed afresh from the then current table. Under the lock.
extension XDPFlowCacheInstaller {
    /// Keeps `request` of `worker` (its version is newer than the bridge's here) until `refresh`
    /// brings it. A key the bound pushes out goes back to its worker to forget: nothing would
    /// install it, and the worker's exact-match cache holds the flow under a live version.
    func holdEarly(_ request: FlowCacheKeyRing.Request, worker: Int) {
        switch earlyKeys.hold(request.key, version: request.version, bridge: request.bridge, worker: worker) {
        case .held: stats.early &+= 1
        case .duplicate: stats.duplicate &+= 1
        case .heldDroppingOldest(let oldest):
            stats.early &+= 1
            stats.earlyOverflow &+= 1
            forget(oldest, bridge: request.bridge)
        }
    }

    /// The bridge's table changed (`refresh`): the keys that waited for its version are installed,
    /// those of an older version dropped (the workers' exact-match entries of it died with it; each
    /// goes back to its worker to forget all the same, a no-op unless that worker still has the
    /// version), as does a key whose install failed in a way that may not recur.
    func installEarly(bridge slot: Int32) {
        guard let version = bridges[slot]?.table.classifier.version else { return }
        let (ready, dropped) = earlyKeys.arrived(version: version, bridge: slot)
        stats.earlyDropped &+= UInt64(dropped.count)
        for held in dropped { forget(held, bridge: slot) }
        for held in ready where installEntry(for: held.key, bridge: slot) == .askAgain { forget(held, bridge: slot) }
    }

    /// The bridge has no table any more (or the installer stops): its waiting keys are dropped.
    func dropEarly(bridge slot: Int32) {
        stats.earlyDropped &+= UInt64(earlyKeys.removeBridge(slot))
    }

    /// Early misses waiting for their version, over every bridge (tests and reports).
    var earlyKeysWaiting: Int {
        lock.lock()
        defer { lock.unlock() }
        return earlyKeys.count
    }
}
