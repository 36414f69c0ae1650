import CXDP
import Foundation
import Glibc
import Synchronization
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket

/// The XDP flow cache's installer (DESIGN.md, "Megaflows and revalidation"): one thread that
/// drains the workers' miss rings, computes each entry with `FlowCacheView.decide` from the
/// bridge's current table (the workers do no megaflow work), translates it for the XDP program
/// and installs it; once a second it folds the entries' per-CPU counters into the rule and port
/// counters (`KernelPathCounters`) and expires idle entries. The control thread's changes
/// (`refresh`, `setCapturing`, `removeBridge`) run synchronously under the same lock, so when
/// they return every entry they made stale is out of the XDP maps.
///
/// Owns the per-bridge `MegaflowTable`s and the `XDPFlowCache` (its maps). Lock order: the
/// datapath's lock, then this one; this one never waits for the datapath's.
///
/// This file: the thread's loop, the install of a miss and the control thread's changes. The
/// other jobs are extensions: counters folding and expiry (`+Counters`), redirect targets
/// (`+RedirectTargets`), LISP decapsulation (`+Decap`), early hand-overs (`+Early`), keys sent
/// back for the workers to forget (`+Forget`).
// @unchecked: every mutable field is read and written only under `lock`; `running` is atomic.
final class XDPFlowCacheInstaller: @unchecked Sendable {
    /// Entries unused this long are removed (checked every `foldInterval`).
    static let idleNanoseconds: UInt64 = 10_000_000_000
    static let foldInterval: UInt64 = 1_000_000_000

    struct Statistics: Sendable, Equatable {
        var requests: UInt64 = 0
        var installed: UInt64 = 0
        /// Computed from an older table version than the installer's: refused (the worker's
        /// exact-match entry of that version died with it, so the flow asks again).
        var stale: UInt64 = 0
        /// Computed from a newer version than the installer's (published, `refresh` not called
        /// yet): held until it arrives (`XDPFlowCacheEarlyKeys`), then installed as a miss of it.
        var early: UInt64 = 0
        /// Held early keys dropped: a still newer version replaced theirs, or the bridge went.
        var earlyDropped: UInt64 = 0
        /// Held early keys pushed out by the bound (`maxWaitingKeys` per bridge).
        var earlyOverflow: UInt64 = 0
        var duplicate: UInt64 = 0
        var notCacheable: UInt64 = 0
        var untranslatable: UInt64 = 0
        /// Not cacheable because an output goes to a device the kernel cannot redirect to now.
        var redirectUnsupported: UInt64 = 0
        /// The cache (or the bridge's `MegaflowTable`) was full.
        var refusedFull: UInt64 = 0
        /// Misses a worker could not hand over: its ring to the installer was full (not an install
        /// refused: the installer never saw them; counted by the rings).
        var handoverRingFull: UInt64 = 0
        /// Keys to forget the installer could not send back: the worker's forget ring was full
        /// (counted by the rings; those flows stay on the workers' path until their exact-match
        /// entries go).
        var forgetOverflow: UInt64 = 0
        var refusedNoMask: UInt64 = 0
        var failed: UInt64 = 0
        var removed: UInt64 = 0
        var expired: UInt64 = 0
    }

    /// One entry as the XDP maps hold it.
    struct Installed {
        var id: UInt32
        var maskSlot: Int
        var inPort: PortSlot
        var outPorts: [PortSlot]
        /// What the actions do to the frame's length, for the port counters.
        var bytes = XDPFlowCacheByteAccounting()
    }

    struct Bridge {
        var table: CompiledFlowTable
        /// The ports as the installer uses them: `offered` with captures and redirect problems
        /// applied (`effectivePorts`).
        var ports: [UInt32: XDPCachePortInfo]
        /// The ports as the datapath gave them in the last `refresh`: recomputed into `ports` when a
        /// device's redirect capability changes.
        var offered: [UInt32: XDPCachePortInfo] = [:]
        var ofport: [PortSlot: UInt32]
        var megaflows: MegaflowTable
        /// By the entry's (mask, masked key) as `MegaflowTable` records it.
        var installed: [FlowKeyPair: Installed] = [:]
        /// Keys refused only because of what a port is now — a LISP port without direct egress or
        /// decap entry, an output device that is no redirect target, a capture — retried when the
        /// ports change (a next hop published, a capability regained, a capture stopped): the
        /// workers' exact-match caches hold those flows, which would not ask again. Bounded by
        /// `maxWaitingKeys` (the oldest goes).
        var waitingForPorts: [FlowKey] = []

        /// Keeps `key` in `waitingForPorts` (once; the oldest goes past `maxWaitingKeys`).
        mutating func wait(for key: FlowKey) {
            guard !waitingForPorts.contains(key) else { return }
            if waitingForPorts.count >= XDPFlowCacheInstaller.maxWaitingKeys { waitingForPorts.removeFirst() }
            waitingForPorts.append(key)
        }
    }

    struct FlowKeyPair: Hashable {
        var mask: FlowKey
        var maskedKey: FlowKey
    }

    let cache: XDPFlowCache
    let counters: KernelPathCounters
    /// Per worker, by index: its misses (`rings`) and the keys sent back for it to forget
    /// (`forgets`, XDPFlowCacheInstaller+Forget.swift).
    let rings: [FlowCacheKeyRing]
    let forgets: [FlowCacheKeyRing]
    let lock = NSLock()
    var bridges: [Int32: Bridge] = [:]
    var capturing: [PortSlot: Int] = [:]
    /// Misses classified with a table version newer than the bridge's here (XDPFlowCacheInstaller+Early.swift).
    var earlyKeys = XDPFlowCacheEarlyKeys(bound: XDPFlowCacheInstaller.maxWaitingKeys)
    /// Per bridge slot the installer has no table for: the last version it had (the bridge went),
    /// so a late request of it is stale, not early.
    var retiredVersion: [Int32: UInt64] = [:]
    /// LISP decapsulation in XDP (XDPFlowCacheInstaller+Decap.swift).
    let decapEntries: XDPDecapEntries
    var decap = XDPDecapState()
    /// Device ports (their DEVMAP slots) and, for those XDP_REDIRECT cannot send to now, why:
    /// such a port's DEVMAP slot stays empty and no entry outputs to it (`RedirectCapability`).
    /// (XDPFlowCacheInstaller+RedirectTargets.swift)
    var devices: [PortSlot: UInt32] = [:]
    var redirectProblems: [PortSlot: String] = [:]
    /// Entries per mask slot: a slot no entry uses is freed (fewer masks for a miss to scan).
    var maskUse = [Int](repeating: 0, count: XDPFlowCache.maxMasks)
    var stats = Statistics()
    private let running = Atomic<Bool>(false)
    private var thread: pthread_t?

    /// `forgets` nil: rings of the installer's own, which no worker drains (tests without workers).
    init(cache: XDPFlowCache, rings: [FlowCacheKeyRing], forgets: [FlowCacheKeyRing]? = nil) {
        precondition(forgets == nil || forgets!.count == rings.count, "one forget ring per worker")
        self.cache = cache
        self.rings = rings
        self.forgets = forgets ?? rings.map { _ in FlowCacheKeyRing() }
        self.counters = KernelPathCounters()
        self.decapEntries = XDPDecapEntries(cache: cache)
    }

    func start() {
        running.store(true, ordering: .releasing)
        thread = startThread { self.run() }
    }

    func stop() {
        guard let thread else { return }
        running.store(false, ordering: .releasing)
        pthread_join(thread, nil)
        self.thread = nil
    }

    var statistics: Statistics {
        lock.lock()
        defer { lock.unlock() }
        var s = stats
        s.handoverRingFull = rings.reduce(0) { $0 &+ $1.refusedFull.load(ordering: .relaxed) }
        s.forgetOverflow = forgets.reduce(0) { $0 &+ $1.refusedFull.load(ordering: .relaxed) }
        return s
    }

    var entryCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return bridges.values.reduce(0) { $0 + $1.installed.count }
    }

    // MARK: The installer thread

    private func run() {
        var lastFold = Self.monotonicNanoseconds()
        // The devices' XDP features change when a veth's peer starts or stops NAPI: notified on
        // the netdev family's "mgmt" group, and read again every `foldInterval` regardless (a
        // kernel without the group, a lost notification).
        let monitor = NetdevMonitor()
        while running.load(ordering: .acquiring) {
            if monitor?.drain() == true { checkRedirectTargets() }
            let drained = drainRings()
            let now = Self.monotonicNanoseconds()
            if now &- lastFold >= Self.foldInterval {
                lastFold = now
                checkRedirectTargets()
                lock.lock()
                foldAndExpire(now: now)
                lock.unlock()
            }
            // A new flow's first frames go through the workers meanwhile: 1 ms is the longest an
            // entry waits to be installed.
            if drained == 0 { usleep(1000) }
        }
    }

    /// Every worker's misses waiting in its ring (at most a ring's worth each), installed one by
    /// one under the lock; returns how many.
    private func drainRings() -> Int {
        var drained = 0
        for (worker, ring) in rings.enumerated() {
            drained += ring.drain(limit: FlowCacheKeyRing.capacity) { request in
                lock.lock()
                install(request, worker: worker)
                lock.unlock()
            }
        }
        return drained
    }

    /// Computes, translates and installs the entry for the miss of worker `worker` (under the lock).
    private func install(_ request: FlowCacheKeyRing.Request, worker: Int) {
        stats.requests &+= 1
        // Only the version is read here: a `let` of the bridge would hold a second reference to its
        // storage while `installEntry` changes it (a copy of the whole table per install).
        // A bridge without a table here: its first one is being published (any version is newer),
        // or it went (its last version and older ones are stale).
        let current = bridges[request.bridge]?.table.classifier.version
        let version = current ?? retiredVersion[request.bridge, default: 0]
        if request.version > version, request.bridge >= 0, request.bridge < DatapathLimits.maxBridges {
            holdEarly(request, worker: worker)
        } else if request.version != version || current == nil {
            stats.stale &+= 1
            // Refused, but the worker is told to forget the key: normally a no-op (the worker
            // classifies with a newer table by now, whose exact-match entries are others, and it
            // forgets only under the request's version), but should it still classify with that
            // version (a table it got back, a bridge slot reused), its exact-match entry would
            // keep the flow from ever asking again.
            forget(request.key, version: request.version, bridge: request.bridge, worker: worker)
        } else if installEntry(for: request.key, bridge: request.bridge) == .askAgain {
            forget(request.key, version: request.version, bridge: request.bridge, worker: worker)
        }
    }

    /// At most this many keys per bridge wait for a port change (`waitingForPorts`), and as many
    /// early misses for their table version (`XDPFlowCacheEarlyKeys`).
    static let maxWaitingKeys = 256

    /// Installs the entry for frames like `key` from the bridge's current table and ports (under
    /// the lock): a worker's miss, or an entry a port change took out (`refresh`). `.askAgain`: refused
    /// for a reason that may not recur, the worker that handed `key` over should forget it.
    ///
    /// Which refusals ask again (the worker's exact-match cache otherwise holds the flow, which
    /// then never asks again): only `failed` — a map update the kernel refused (ENOMEM and the
    /// like), or the bookkeeping disagreeing with the maps — which the next try may not meet.
    /// Not the others: a result that is not cacheable or not translatable is the same on every
    /// try with this table and these ports (a table change makes every flow miss anyway; a port
    /// change retries the keys kept in `waitingForPorts`); a duplicate is installed already; a
    /// full cache or mask table stays full until entries expire (`idleNanoseconds`), so asking
    /// again would send every frame of every such flow through the classifier and the hand-over
    /// ring while it lasts — the workers' path costing more exactly when it is busiest.
    @discardableResult
    func installEntry(for key: FlowKey, bridge slot: Int32) -> InstallOutcome {
        // Taken out of the dictionary while it changes, so `bridge` is the only reference to its
        // storage: written back in place, a dictionary-held copy would make every install copy the
        // whole MegaflowTable and `installed` (O(capacity) per install: ~400 installs in seconds).
        guard var bridge = bridges.removeValue(forKey: slot) else { return .settled }
        defer { bridges[slot] = bridge }
        let decision = view(bridge).decide(key)
        guard case .install(let flow) = decision else {
            stats.notCacheable &+= 1
            if decision == .notCacheable(.redirectUnsupported) { stats.redirectUnsupported &+= 1 }
            // A LISP port whose next hop is not (yet) direct, or an output to a device that is no
            // redirect target (yet): the worker's exact-match cache will keep the flow from
            // missing again, so the key waits here for the next port change.
            // Likewise a decapsulated frame's key from a LISP port whose decap entry is not in yet
            // (the worker decapsulates as soon as the next hop is published, before the installer's sync).
            // And a flow a capture keeps out, until the capture stops.
            if decision == .notCacheable(.lispIndirectEgress) || decision == .notCacheable(.redirectUnsupported)
                || decision == .notCacheable(.capture)
                || (decision == .notCacheable(.inputNotDevice) && Self.isLISP(bridge.ports[UInt32(truncatingIfNeeded: key.get(.inPort))])) {
                bridge.wait(for: key)
            }
            return .settled
        }
        let pair = FlowKeyPair(mask: flow.mask, maskedKey: flow.maskedKey)
        guard bridge.installed[pair] == nil else {
            stats.duplicate &+= 1
            return .settled
        }
        guard let translation = XDPFlowCacheTranslation.translate(flow, port: { bridge.ports[$0] }) else {
            stats.untranslatable &+= 1
            return .settled
        }
        guard cache.entryCount < cache.capacity, bridge.megaflows.count < bridge.megaflows.capacity else {
            stats.refusedFull &+= 1
            return .settled
        }
        let maskSlot: Int
        do throws(DatapathError) {
            guard let slot = try cache.addMask(translation.mask) else {
                stats.refusedNoMask &+= 1
                return .settled
            }
            maskSlot = slot
            if let template = translation.lispTemplate { try cache.setLISPTemplate(slot: template.slot, template.headers) }
        } catch {
            stats.failed &+= 1
            return .askAgain
        }
        let id: UInt32
        do throws(XDPFlowCache.InstallError) {
            id = try cache.install(maskSlot: maskSlot, key: translation.maskedKey, actions: translation.actions)
        } catch {
            releaseMaskIfUnused(maskSlot)
            guard error == .full else {
                stats.failed &+= 1
                return .askAgain
            }
            stats.refusedFull &+= 1
            return .settled
        }
        guard bridge.megaflows.install(flow, now: Self.monotonicNanoseconds()) == .installed else {
            cache.remove(id: id)
            releaseMaskIfUnused(maskSlot)
            stats.failed &+= 1
            return .askAgain
        }
        maskUse[maskSlot] += 1
        var outPorts: [PortSlot] = []
        for case .output(let slot) in translation.actions { outPorts.append(PortSlot(rawValue: UInt16(truncatingIfNeeded: slot))) }
        let lisp = translation.lispTemplate.flatMap { t in bridge.ports.values.first { $0.lisp?.template == t.slot } }
        let bytes = XDPFlowCacheByteAccounting(flow: flow, actions: translation.actions, lispPort: lisp?.slot,
                                               lispIPv6: translation.lispTemplate?.headers.isIPv6 ?? false)
        bridge.installed[pair] = Installed(id: id, maskSlot: maskSlot, inPort: bridge.ports[flow.inPort]!.slot, outPorts: outPorts,
                                           bytes: bytes)
        stats.installed &+= 1
        return .settled
    }

    private static func isLISP(_ info: XDPCachePortInfo?) -> Bool {
        if case .lisp = info?.cache.kind { return true }
        return false
    }

    func view(_ bridge: Bridge) -> FlowCacheView {
        let table = bridge.table
        let ofport = bridge.ofport
        let ports = bridge.ports
        return FlowCacheView(
            table: table.classifier,
            rule: { table.cacheRule($0, ofport: { ofport[$0] }) },
            port: { ports[$0]?.cache ?? CachePort(kind: .absent) })
    }

    func releaseMaskIfUnused(_ slot: Int) {
        guard maskUse[slot] == 0 else { return }
        try? cache.removeMask(slot: slot)
    }

    // MARK: Control-thread changes (synchronous)

    /// The bridge's table or ports changed (after the new table is published to the workers):
    /// entries whose result changed are removed from the XDP maps before this returns — all of
    /// them when a port changed (its kind, slot, number, LISP template or capture), the
    /// revalidated ones (`MegaflowTable.revalidate`) otherwise. `table` nil: no flow table
    /// (NORMAL, never cached), every entry goes.
    func refresh(bridge slot: Int32, table: CompiledFlowTable?, ports newPorts: [UInt32: XDPCachePortInfo],
                 ofport: [PortSlot: UInt32]) {
        lock.lock()
        defer { lock.unlock() }
        let now = Self.monotonicNanoseconds()
        let ports = effectivePorts(newPorts)
        // Out of the dictionary while it changes (see `installEntry`); every path puts it back.
        guard var bridge = bridges.removeValue(forKey: slot) else {
            guard let table else {
                dropEarly(bridge: slot)
                return
            }
            bridges[slot] = Bridge(table: table, ports: ports, offered: newPorts, ofport: ofport,
                                   megaflows: MegaflowTable(capacity: cache.capacity, version: table.classifier.version))
            retiredVersion[slot] = nil
            installEarly(bridge: slot)
            return
        }
        bridge.offered = newPorts
        fold(&bridge, now: now)
        let old = bridge.table
        guard let table else {
            let removed = bridge.megaflows.removeAll()
            delete(removed, from: &bridge, table: old, now: now)
            bridges[slot] = nil
            retiredVersion[slot] = old.classifier.version
            dropEarly(bridge: slot)
            return
        }
        let portsChanged = bridge.ports != ports || bridge.ofport != ofport
        // The same table and ports compute the same entries (the tunnel resolver refreshes every
        // bridge when any next hop changes): nothing to revalidate.
        if !portsChanged && table === old {
            bridges[slot] = bridge
            return
        }
        bridge.table = table
        bridge.ports = ports
        bridge.ofport = ofport
        var removed: [MegaflowTable.Entry] = []
        if portsChanged { removed = bridge.megaflows.removeAll() }
        // Moves the version (an install computed from the old table is refused from here on).
        removed += bridge.megaflows.revalidate(view(bridge))
        delete(removed, from: &bridge, table: old, now: now)
        let waiting = bridge.waitingForPorts
        if portsChanged { bridge.waitingForPorts = [] }
        bridges[slot] = bridge
        // Misses a worker classified with this version before this call: theirs now.
        defer { installEarly(bridge: slot) }
        guard portsChanged else { return }
        // A port changed (a LISP port's next hop, template or egress, a port added or removed):
        // every entry went out of the maps above, and the ones the new ports still allow go back
        // in now, computed afresh (a LISP entry with its new template), since the workers'
        // exact-match cache would keep those flows from missing again. Keys that waited for a
        // LISP port's direct egress are tried again too.
        for entry in removed { installEntry(for: entry.flow.maskedKey, bridge: slot) }
        for key in waiting { installEntry(for: key, bridge: slot) }
    }

    /// A capture started or stopped on port `slot`: a capturing port is in no entry (the capture
    /// must see every frame), so its entries go before this returns; the bridge's other entries
    /// go back in at once, and the capturing port's flows wait (`waitingForPorts`) for the
    /// capture to stop — the workers' exact-match caches hold all of them, so none would miss again.
    func setCapturing(_ slot: PortSlot, _ on: Bool) {
        lock.lock()
        defer { lock.unlock() }
        capturing[slot, default: 0] += on ? 1 : -1
        let now = Self.monotonicNanoseconds()
        // First the decap entries: a capture on a LISP port or its underlay device must see the
        // outer frames (no decap entry), so none is left to decapsulate for an entry put back below.
        syncDecapLocked(now: now)
        rederivePorts(now: now)
    }

    /// Every bridge whose effective ports (`effectivePorts(offered)`) differ from those it holds
    /// (a capture, a decap entry gained or lost) takes the new ones: all its entries go (an entry
    /// from or to a port whose mark changed may be wrong now) and the ones the new ports allow are
    /// installed again at once, with the keys that waited, as after a port change in `refresh` —
    /// the workers' exact-match caches keep those flows from missing again. Under the lock.
    func rederivePorts(now: UInt64) {
        forEachBridgeWhosePortsChanged(now: now) { key, bridge in
            let table = bridge.table
            let removed = bridge.megaflows.removeAll()
            delete(removed, from: &bridge, table: table, now: now)
            let waiting = bridge.waitingForPorts
            bridge.waitingForPorts = []
            return removed.map(\.flow.maskedKey) + waiting
        }
    }

    /// For every bridge whose effective ports (`effectivePorts(offered)`) differ from those it
    /// holds: folds its counters, gives it the new ports, lets `change` update its entries (the
    /// bridge out of the dictionary, so that it is the only reference to its tables), puts it back
    /// and installs the keys `change` returned. Under the lock.
    func forEachBridgeWhosePortsChanged(now: UInt64, _ change: (Int32, inout Bridge) -> [FlowKey]) {
        for key in Array(bridges.keys) {
            // Fields only: a copy of the bridge would share its tables while they change below.
            guard let offered = bridges[key]?.offered else { continue }
            let ports = effectivePorts(offered)
            guard ports != bridges[key]!.ports, var bridge = bridges.removeValue(forKey: key) else { continue }
            fold(&bridge, now: now)
            bridge.ports = ports
            let reinstall = change(key, &bridge)
            bridges[key] = bridge
            for k in reinstall { installEntry(for: k, bridge: key) }
        }
    }

    /// `offered` as the installer uses it: captures marked (before the redirect problems, which
    /// may take a LISP port's egress away), decap entries, then devices that cannot be redirected
    /// to now (`XDPFlowCacheRedirectTargets`). Under the lock. The one derivation of a bridge's
    /// ports: `refresh`, `setCapturing`, a decap change (`applyDecapFlags`) and a capability
    /// change (`applyRedirectCapability`) all store `effectivePorts(offered)`, so after each of
    /// them `bridge.ports == effectivePorts(bridge.offered)` and no mark can undo another.
    func effectivePorts(_ offered: [UInt32: XDPCachePortInfo]) -> [UInt32: XDPCachePortInfo] {
        var ports = offered
        markCapturing(&ports)
        markDecap(&ports)
        return XDPFlowCacheRedirectTargets.effective(ports, problems: redirectProblems)
    }

    /// A port is capturing when a capture runs on it or, for a LISP port with direct egress, on
    /// the device its encapsulated frames leave by (the capture must see them there too).
    private func markCapturing(_ ports: inout [UInt32: XDPCachePortInfo]) {
        for (number, info) in ports {
            let egressCapturing = info.lisp.map { capturing[$0.egress, default: 0] > 0 } ?? false
            if capturing[info.slot, default: 0] > 0 || egressCapturing { ports[number]!.cache.capturing = true }
        }
    }

    /// Every entry of every bridge out of the maps (shutdown).
    func removeEverything() {
        lock.lock()
        defer { lock.unlock() }
        let now = Self.monotonicNanoseconds()
        decap.ports = []
        syncDecapLocked(now: now)
        for key in Array(earlyKeys.held.keys) { dropEarly(bridge: key) }
        for key in Array(bridges.keys) {
            guard var bridge = bridges.removeValue(forKey: key) else { continue }
            retiredVersion[key] = bridge.table.classifier.version
            fold(&bridge, now: now)
            let table = bridge.table
            let removed = bridge.megaflows.removeAll()
            delete(removed, from: &bridge, table: table, now: now)
        }
        bridges = [:]
    }

    /// A snapshot of the installed entries (for reports and tests).
    struct EntrySnapshot: Sendable {
        var bridge: Int32
        var entry: MegaflowTable.Entry
        var id: UInt32
        var xdpActions: [XDPFlowCacheAction]?
    }

    func snapshot() -> [EntrySnapshot] {
        lock.lock()
        defer { lock.unlock() }
        var result: [EntrySnapshot] = []
        for (key, bridge) in bridges {
            for entry in bridge.megaflows.all {
                guard let installed = bridge.installed[FlowKeyPair(mask: entry.flow.mask, maskedKey: entry.flow.maskedKey)] else { continue }
                let actions = XDPFlowCacheTranslation.translate(entry.flow, port: { bridge.ports[$0] })?.actions
                result.append(EntrySnapshot(bridge: key, entry: entry, id: installed.id, xdpActions: actions))
            }
        }
        return result
    }

    /// Runs one pass of the thread's work now (tests: no waiting for the thread's period).
    func runOnce(fold: Bool) {
        _ = drainRings()
        if fold {
            lock.lock()
            foldAndExpire(now: Self.monotonicNanoseconds())
            lock.unlock()
        }
    }

    static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
