import VSwiftFlowCache
import VSwiftPacket

/// The installer's redirect-target bookkeeping (DESIGN.md, "XDP flow cache", *Redirect targets*):
/// which device ports have a DEVMAP slot, which of them XDP_REDIRECT cannot send to now and why,
/// and what follows when a device gains or loses that capability (its slot, the entries that
/// output to it, the flows that wait for it). The pure part, a bridge's ports given the problems,
/// is `XDPFlowCacheRedirectTargets`.
extension XDPFlowCacheInstaller {
    /// Output slot `slot` of the programs sends to device `ifindex` (a device port added), if
    /// the kernel can redirect there now (`capability`, read by the caller: checked at port add).
    func setDevicePort(_ slot: PortSlot, ifindex: UInt32, capability: RedirectCapability? = nil) {
        let capability = capability ?? Netlink.redirectCapability(ifindex: ifindex)
        lock.lock()
        defer { lock.unlock() }
        devices[slot] = ifindex
        applyRedirectCapability(slot, ifindex: ifindex, capability)
    }

    /// A device port removed (after `refresh` took every entry naming it out).
    func clearDevicePort(_ slot: PortSlot) {
        lock.lock()
        defer { lock.unlock() }
        devices[slot] = nil
        redirectProblems[slot] = nil
        cache.clearPort(slot: UInt32(slot.rawValue))
    }

    /// Why the cache cannot output to device port `slot` now; nil when it can (or no such port).
    func redirectProblem(_ slot: PortSlot) -> String? {
        lock.lock()
        defer { lock.unlock() }
        return redirectProblems[slot]
    }

    /// Reads every device port's XDP features (netlink, outside the lock) and applies changes.
    func checkRedirectTargets() {
        lock.lock()
        let current = devices
        lock.unlock()
        for (slot, ifindex) in current {
            setRedirectCapability(slot, ifindex: ifindex, Netlink.redirectCapability(ifindex: ifindex))
        }
    }

    /// Device `slot` (still device `ifindex`: a bridge's port or an underlay) can or cannot be
    /// redirected to now. Losing it: the DEVMAP slot is cleared first (a hit on an entry still
    /// outputting there is punted to the workers by the program, not dropped), then every entry
    /// that outputs to the device goes — directly, or encapsulated by a LISP port whose egress it
    /// is (that port loses its direct egress) — and their flows wait (`waitingForPorts`: the
    /// workers' exact-match caches hold them and would not hand them over again). Gaining it: the
    /// slot is set, the ports are recomputed (a LISP port gets its template back), and the
    /// waiting misses are tried again.
    func setRedirectCapability(_ slot: PortSlot, ifindex: UInt32, _ capability: RedirectCapability) {
        lock.lock()
        defer { lock.unlock() }
        guard devices[slot] == ifindex, redirectProblems[slot] != capability.problem else { return }
        applyRedirectCapability(slot, ifindex: ifindex, capability)
    }

    /// `setRedirectCapability`'s work (under the lock), also for a device just added.
    func applyRedirectCapability(_ slot: PortSlot, ifindex: UInt32, _ capability: RedirectCapability) {
        redirectProblems[slot] = capability.problem
        let capable = capability.problem == nil
        if capable {
            try? cache.setPort(slot: UInt32(slot.rawValue), ifindex: ifindex)
        } else {
            cache.clearPort(slot: UInt32(slot.rawValue))
        }
        let now = Self.monotonicNanoseconds()
        forEachBridgeWhosePortsChanged(now: now) { _, bridge in
            let table = bridge.table
            // Recomputed as for a table change: exactly the entries that output to the device go.
            let removed = capable ? [] : bridge.megaflows.revalidate(view(bridge))
            delete(removed, from: &bridge, table: table, now: now)
            for entry in removed { bridge.wait(for: entry.flow.maskedKey) }
            return []
        }
        // The misses refused for want of a target (`waitingForPorts`) are tried again.
        guard capable else { return }
        for key in Array(bridges.keys) {
            guard let waiting = bridges[key]?.waitingForPorts, !waiting.isEmpty else { continue }
            bridges[key]!.waitingForPorts = []
            for k in waiting { installEntry(for: k, bridge: key) }
        }
    }
}
