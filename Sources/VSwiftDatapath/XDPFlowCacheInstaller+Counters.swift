import CXDP
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket

/// The installer's counters job (DESIGN.md, "XDP flow cache", *Counters*): once a second every
/// entry's per-CPU counters are read and what is new is added to its rule and ports in
/// `KernelPathCounters`; idle entries expire; a deleted entry's last counts are read right after
/// its delete and folded into the table version it was computed from. Under the installer's lock.
extension XDPFlowCacheInstaller {
    /// Reads every entry's counters and adds what is new to its rule and ports (under the lock).
    func foldAndExpire(now: UInt64) {
        foldDecapLocked()
        for key in Array(bridges.keys) {
            guard var bridge = bridges.removeValue(forKey: key) else { continue }
            fold(&bridge, now: now)
            let expired = bridge.megaflows.expireIdle(now: now, idle: Self.idleNanoseconds)
            stats.expired &+= UInt64(expired.count)
            let table = bridge.table
            delete(expired, from: &bridge, table: table, now: now)
            bridges[key] = bridge
        }
    }

    func fold(_ bridge: inout Bridge, now: UInt64) {
        for entry in bridge.megaflows.all {
            let pair = FlowKeyPair(mask: entry.flow.mask, maskedKey: entry.flow.maskedKey)
            guard let installed = bridge.installed[pair] else { continue }
            let c = cache.counters(id: installed.id)
            guard let delta = bridge.megaflows.noteCounters(mask: pair.mask, maskedKey: pair.maskedKey, packets: c.packets,
                                                            bytes: c.bytes, now: now) else { continue }
            account(delta, rule: entry.flow.rule, installed, table: bridge.table)
        }
    }

    func account(_ delta: (packets: UInt64, bytes: UInt64), rule: RuleIndex, _ installed: Installed,
                         table: CompiledFlowTable) {
        guard delta.packets > 0 || delta.bytes > 0 else { return }
        let port = counters.ports + installed.inPort.index
        vs_add_relaxed_u64(&port.pointee.rxPackets, delta.packets)
        vs_add_relaxed_u64(&port.pointee.rxBytes, delta.bytes)
        if let slot = table.counterSlot(rule) {
            let counter = counters.rules + slot
            vs_add_relaxed_u64(&counter.pointee.packets, delta.packets)
            vs_add_relaxed_u64(&counter.pointee.bytes, delta.bytes)
            // Seconds, as the workers' `now`: flow expiry sees kernel-path packets as use.
            vs_store_relaxed_u64(&counter.pointee.lastUsed, Worker.monotonicSeconds())
        } else {
            vs_add_relaxed_u64(&port.pointee.rxDropped, delta.packets)
        }
        // Bytes as the workers count them on output: the frame after its actions.
        func plus(_ perPacket: Int) -> UInt64 { delta.bytes &+ delta.packets &* UInt64(bitPattern: Int64(perPacket)) }
        let lisp = installed.bytes.lisp
        for out in installed.outPorts where out.index < DatapathLimits.maxPorts {
            let tx = counters.ports + out.index
            vs_add_relaxed_u64(&tx.pointee.txPackets, delta.packets)
            vs_add_relaxed_u64(&tx.pointee.txBytes, plus(lisp?.egressDelta ?? installed.bytes.outputDelta))
        }
        if let lisp, lisp.port.index < DatapathLimits.maxPorts {
            // The LISP port sent the inner frame (tx) and encapsulated it, as `sendThroughTunnel` counts.
            let tx = counters.ports + lisp.port.index
            vs_add_relaxed_u64(&tx.pointee.txPackets, delta.packets)
            vs_add_relaxed_u64(&tx.pointee.txBytes, plus(installed.bytes.outputDelta))
            vs_add_relaxed_u64(counters.encapsulated + lisp.port.index, delta.packets)
        }
    }

    /// Deletes `entries` (already out of the bridge's `MegaflowTable`) from the XDP maps, then
    /// folds what they counted since the last read into `table`'s rules (the version they
    /// were computed from).
    func delete(_ entries: [MegaflowTable.Entry], from bridge: inout Bridge, table: CompiledFlowTable, now: UInt64) {
        for entry in entries {
            let pair = FlowKeyPair(mask: entry.flow.mask, maskedKey: entry.flow.maskedKey)
            guard let installed = bridge.installed.removeValue(forKey: pair) else { continue }
            cache.remove(id: installed.id)
            let c = cache.counters(id: installed.id)
            account((c.packets &- entry.packets, c.bytes &- entry.bytes), rule: entry.flow.rule, installed, table: table)
            maskUse[installed.maskSlot] -= 1
            releaseMaskIfUnused(installed.maskSlot)
            stats.removed &+= 1
        }
    }
}
