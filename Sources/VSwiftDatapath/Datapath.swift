// Over 500 lines on purpose: `Datapath` is the one holder of the datapath's records (bridges, ports,
// published tables, tunnel routing) in one `Mutex`-guarded `State`, and every method here reads or
// changes that private state under the lock; split across files, the state would have to lose its
// privacy. Port summaries' text lives in VSwiftControl, flow-table publishing in FlowTableAPI.swift.
import CXDP
import Foundation
import Glibc
import Synchronization
import VSwiftClassifier
import VSwiftFlowCache
import VSwiftPacket

/// How an attached port is driven, for `show`.
public struct PortAttachment: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// A device (NIC, veth, tap) driven through AF_XDP sockets.
        case afxdp
        /// A bridge's own tap device (OVS `internal`, port LOCAL).
        case `internal`
        /// A LISP tunnel port (no device: encapsulation and decapsulation in the datapath).
        case lisp
        /// A device shared with the host, driven in underlay mode: only LISP to a local RLOC
        /// reaches vswift, everything else goes on to the kernel.
        case underlay
    }
    public var kind: Kind
    public var xdpMode: XDPAttachMode?
    public var bindMode: XSKBindMode?
    public var queues: Int
    /// The device was removed from the system after it was attached (its sockets are unbound;
    /// del-port releases them). nil when present.
    public var deviceGone: Bool?
    /// LISP ports: where encapsulated packets go now (route, source, next hop) or why they cannot.
    public var tunnelState: TunnelState?
    /// AF_XDP devices: whether the driver offers AF_XDP TX checksum offload (netdev xsk-features).
    public var txChecksumOffload: Bool?
    /// AF_XDP devices: who computes the outer IPv6 UDP checksum of LISP packets vswift sends out
    /// of this device directly (a route through a bridge's internal port is always `software`:
    /// the egress is not known when the packet is encapsulated).
    public var txChecksum: TxChecksum?

    /// `tunnelState` is asked of the datapath when wanted, not part of the attachment's record.
    private enum CodingKeys: String, CodingKey {
        case kind, xdpMode, bindMode, queues, deviceGone, txChecksumOffload, txChecksum
    }
}

/// Who computes a checksum vswift asks for on transmit (the outer IPv6 UDP checksum of LISP).
public enum TxChecksum: String, Sendable, Codable {
    /// The NIC, through AF_XDP TX metadata (a zero-copy driver with xsk-features tx-checksum).
    case driver
    /// The kernel on the CPU at transmit, through AF_XDP TX metadata (copy mode, with the UMEM
    /// registered for XDP_UMEM_TX_SW_CSUM).
    case kernel
    /// vswift, while encapsulating.
    case software
}

/// `vswiftd --tx-checksum`: when to hand checksums to the device.
public enum TxChecksumPolicy: String, Sendable, CaseIterable {
    /// Where the driver offers AF_XDP TX checksum offload (netdev xsk-features).
    case auto
    /// Also on devices without it, in copy mode: the kernel computes them at transmit.
    case offload
    /// Never: vswift computes every checksum.
    case software

    /// The choice for one device.
    public func choice(driverOffers: Bool, bindMode: XSKBindMode, umemHasTxMetadata: Bool) -> TxChecksum {
        guard umemHasTxMetadata, self != .software else { return .software }
        switch bindMode {
        case .zeroCopy:
            // A zero-copy driver without the offload would send the pseudo-header sum as it is.
            return driverOffers ? .driver : .software
        case .copy:
            return driverOffers || self == .offload ? .kernel : .software
        }
    }
}

/// The switch's data plane: workers, their UMEMs and sockets, bridges and their ports.
///
/// Control-thread API; every call is serialized by an internal lock (`state`, a `Mutex`). Changes
/// reach the workers by parking them between bursts, editing their tables, and letting them run
/// on — a worker never sees a half-applied change, and no packet is touched by two configurations.
public final class Datapath: Sendable {
    public struct Configuration: Sendable {
        public var workers = 1
        public var framesPerWorker: UInt32 = 16384
        public var frameSize: UInt32 = 4096
        public var rings = RingSizes()
        public var rxBatch = 64
        /// Directory holding the compiled BPF objects (see `BPFObjects.locate`).
        public var bpfDirectory: String?
        /// Pin worker i to CPU cpus[i % cpus.count].
        public var cpus: [Int] = []
        public var macAgingSeconds: UInt64 = 300
        public var txChecksum: TxChecksumPolicy = .auto
        /// Forward established flows in XDP (issue 17, DESIGN.md "XDP flow cache"): workers install
        /// megaflow entries for cacheable misses into maps the devices' XDP programs consult first.
        /// Off: every frame takes the AF_XDP path, as before.
        public var xdpFlowCache = false
        public init() {}
    }

    private struct BridgeRecord {
        let name: String
        let slot: BridgeSlot
        let macTable: MACLearningTable
        /// Port slots in order of addition; the internal port first.
        var members: [PortSlot]
        /// OpenFlow numbers of the bridge's ports, by name (set by the control plane).
        var portNumbers: [String: OpenFlowPortNumber] = [:]
        /// The published flow table; nil = plain learning switch.
        var flowTable: CompiledFlowTable?
    }

    private struct PortRecord {
        let name: String
        let slot: PortSlot
        let bridge: String
        let attachment: PortAttachment
        let program: XDPRedirectProgram?
        let tap: TapDevice?
        /// (worker, socket slot, queue) for AF_XDP ports.
        let sockets: [(worker: Int, slot: Int, queue: UInt32)]
        /// LISP ports: their settings.
        var tunnel: LISPPortOptions? = nil
        /// The device's ifindex (AF_XDP and internal ports), for routing encapsulated frames.
        var ifindex: UInt32 = 0
    }

    public let configuration: Configuration
    private let workers: [Worker]
    private let redirectObject: String
    /// Everything the control thread changes: read and written only inside `state.withLock`
    /// (directly, or through `locked` and the `…Locked` helpers, which take it `inout`).
    private let state = Mutex(State())
    /// The published LISP map-cache version (Datapath+MapCache.swift).
    let mapCachePublication = MapCachePublication()
    /// With `configuration.xdpFlowCache`: the XDP flow cache's maps and installer thread.
    let flowCacheInstaller: XDPFlowCacheInstaller?

    private struct State {
        var bridges: [String: BridgeRecord] = [:]
        var ports: [String: PortRecord] = [:]
        var isShutDown = false
        /// Started with the first LISP port.
        var resolver: TunnelResolver?
        /// What the resolver last published (re-applied when a LISP port is added).
        var tunnelRouting = TunnelResolver.Published()
        var isShuttingDown = false
    }

    public init(configuration: Configuration = Configuration()) throws(DatapathError) {
        guard configuration.workers >= 1 else { throw .unsupported("at least one worker is needed") }
        guard let object = BPFObjects.locate(BPFObjects.redirect, directory: configuration.bpfDirectory) else {
            throw .unsupported("cannot find \(BPFObjects.redirect): run scripts/build.sh, or set VSWIFT_BPF_DIR")
        }
        self.redirectObject = object
        self.configuration = configuration
        // Build lookup tables now, not on the first SCTP packet a worker rewrites.
        Checksum.prepareCRC32c()
        var workers: [Worker] = []
        for i in 0..<configuration.workers {
            workers.append(try Worker(
                index: i, frameCount: configuration.framesPerWorker, frameSize: configuration.frameSize,
                rings: configuration.rings, rxBatch: configuration.rxBatch))
        }
        self.workers = workers
        if configuration.xdpFlowCache {
            let cache = try XDPFlowCache(portSlots: DatapathLimits.maxPorts)
            try cache.setEnabled(true)
            for worker in workers { worker.flowCacheInstalling = true }
            flowCacheInstaller = XDPFlowCacheInstaller(cache: cache, rings: workers.map(\.flowCacheRequests),
                                                       forgets: workers.map(\.flowCacheForgets))
        } else {
            flowCacheInstaller = nil
        }
        for (i, worker) in workers.enumerated() {
            worker.start(cpu: configuration.cpus.isEmpty ? nil : configuration.cpus[i % configuration.cpus.count])
        }
        flowCacheInstaller?.start()
    }

    deinit { shutdown() }

    /// Kernel thread ids of the workers (for /proc/self/task/TID/stat CPU accounting).
    public var workerThreadIDs: [Int32] {
        workers.map { $0.threadID.load(ordering: .acquiring) }
    }

    /// What each worker did: frames received and sent over all its ports, and where its time
    /// went (read without stopping it).
    public func workerStatistics() -> [WorkerStatistics] {
        state.withLock { s in
            workers.enumerated().map { i, worker in
                var statistics = WorkerStatistics(worker: i, cycles: worker.cycleAccounting())
                (statistics.cacheHits, statistics.cacheMisses) = worker.cacheCounts()
                statistics.cpu = configuration.cpus.isEmpty ? nil : configuration.cpus[i % configuration.cpus.count]
                for port in s.ports.values {
                    let c = worker.portCounters(port.slot)
                    statistics.rxPackets += c.rxPackets
                    statistics.txPackets += c.txPackets
                }
                return statistics
            }
        }
    }

    // MARK: Bridges

    public func addBridge(_ name: String) throws(DatapathError) {
        try locked { (s: inout State) throws(DatapathError) in
            guard s.bridges[name] == nil, s.ports[name] == nil else { throw .bridgeExists(name) }
            guard let slot = (0..<DatapathLimits.maxBridges).first(where: { candidate in !s.bridges.values.contains { $0.slot.index == candidate } }) else {
                throw .unsupported("the datapath supports at most \(DatapathLimits.maxBridges) bridges")
            }
            guard let portSlot = freePortSlot(s) else { throw .tooManyPorts(DatapathLimits.maxPorts) }
            // The internal port: a tap named after the bridge, one queue per worker.
            let tap = try TapDevice(name: name, queues: workers.count)
            let table = MACLearningTable(agingSeconds: configuration.macAgingSeconds)
            s.bridges[name] = BridgeRecord(name: name, slot: BridgeSlot(slot), macTable: table, members: [portSlot])
            s.ports[name] = PortRecord(
                name: name, slot: portSlot, bridge: name,
                attachment: PortAttachment(kind: .internal, queues: workers.count),
                program: nil, tap: tap, sockets: [], ifindex: tap.ifindex)
            withWorkersParked {
                for (i, worker) in workers.enumerated() {
                    worker.setPort(portSlot, kind: .tap, bridge: BridgeSlot(slot), txSlot: -1, tapFD: tap.fds[i])
                    worker.setBridge(BridgeSlot(slot), table: table, members: [portSlot])
                }
            }
        }
    }

    public func deleteBridge(_ name: String) throws(DatapathError) {
        try locked { (s: inout State) throws(DatapathError) in
            guard let bridge = s.bridges[name] else { throw .noSuchBridge(name) }
            for port in s.ports.values where port.bridge == name && port.name != name {
                removePortLocked(&s, port)
            }
            if let internalPort = s.ports[name] { removePortLocked(&s, internalPort) }
            withWorkersParked {
                for worker in workers {
                    worker.setBridge(bridge.slot, table: nil, members: [])
                    worker.setFlowTable(bridge.slot, nil)
                }
            }
            flowCacheInstaller?.refresh(bridge: bridge.slot.rawValue, table: nil, ports: [:], ofport: [:])
            bridge.macTable.destroy()
            s.bridges[name] = nil
        }
    }

    // MARK: Ports

    /// Attaches a network device (NIC, veth, tap) to `bridge` through AF_XDP: loads the redirect
    /// program on it and opens one socket per rx queue, queue q on worker q % workers.
    @discardableResult
    public func addPort(_ name: String, bridge bridgeName: String) throws(DatapathError) -> PortAttachment {
        try locked { (s: inout State) throws(DatapathError) -> PortAttachment in
            guard s.bridges[bridgeName] != nil else { throw .noSuchBridge(bridgeName) }
            return try attachDeviceLocked(&s, name, bridge: bridgeName)
        }
    }

    /// Attaches a device the host keeps using (its addresses, routes, other traffic) as a LISP
    /// underlay: the XDP program steers only UDP to a local RLOC on a LISP port's UDP port to
    /// vswift, which decapsulates it; encapsulated packets whose route leaves by the device go
    /// straight to its tx ring. The device belongs to no bridge.
    @discardableResult
    public func addUnderlay(_ name: String) throws(DatapathError) -> PortAttachment {
        let attachment = try locked { (s: inout State) throws(DatapathError) -> PortAttachment in
            let attachment = try attachDeviceLocked(&s, name, bridge: nil)
            syncUnderlayFiltersLocked(s)
            syncDecapLocked(s)
            s.resolver?.wake()
            return attachment
        }
        return attachment
    }

    /// The common part of addPort and addUnderlay (bridge nil: underlay mode).
    private func attachDeviceLocked(_ s: inout State, _ name: String, bridge bridgeName: String?) throws(DatapathError) -> PortAttachment {
        guard s.ports[name] == nil, s.bridges[name] == nil else { throw .portExists(name) }
        var bridge = bridgeName.flatMap { s.bridges[$0] }
        let device = try NetworkDevice(name: name)
        let queueCount = device.rxQueueCount
        guard queueCount >= workers.count else {
            throw .deviceInUse(name, reason: "it has \(queueCount) rx queue(s) but vswiftd runs \(workers.count) workers, and every worker needs a queue of every port to transmit on (add queues, e.g. numrxqueues/numtxqueues for veth, or run fewer workers)")
        }
        guard queueCount <= 256 else { throw .unsupported("\(name) has more than 256 rx queues") }
        guard let portSlot = freePortSlot(s) else { throw .tooManyPorts(DatapathLimits.maxPorts) }
        let program = try XDPRedirectProgram(
            device: device, objectPath: redirectObject, mode: bridge == nil ? .underlay : .port,
            // Underlay programs too: they decapsulate with the shared decap entries and megaflows.
            cache: flowCacheInstaller?.cache, cacheInPort: XDPFlowCacheTranslation.inPortID(portSlot))
        let bridgeSlot = bridge?.slot ?? .unbridged

        var opened: [(worker: Int, slot: Int, queue: UInt32)] = []
        var failure: DatapathError?
        withWorkersParked {
            for queue in 0..<UInt32(queueCount) {
                let w = Int(queue) % workers.count
                do throws(DatapathError) {
                    let slot = try workers[w].openSocket(device: device, queue: queue, port: portSlot)
                    opened.append((w, slot, queue))
                    try program.setSocket(queue: queue, fd: workers[w].sockets[slot].fd)
                } catch {
                    failure = error
                    break
                }
            }
            if failure != nil {
                // Nothing half-added: close what was opened and take its frames back.
                for socket in opened { workers[socket.worker].closeSocket(slot: socket.slot) }
                return
            }
            bridge?.members.append(portSlot)
            for (w, worker) in workers.enumerated() {
                let txSlot = opened.first { $0.worker == w }!.slot
                worker.setPort(portSlot, kind: .xsk, bridge: bridgeSlot, txSlot: Int32(txSlot), tapFD: -1)
                if let bridge {
                    worker.setPortNumber(portSlot, ofport: bridge.portNumbers[name] ?? .unassigned)
                    worker.setBridge(bridge.slot, table: bridge.macTable, members: bridge.members)
                }
            }
        }
        if failure == nil {
            do throws(DatapathError) { try program.attach() } catch { failure = error }
            if failure != nil {
                withWorkersParked {
                    if var b = bridge {
                        b.members.removeLast()
                        for worker in workers { worker.setBridge(b.slot, table: b.macTable, members: b.members) }
                    }
                    for worker in workers { worker.clearPort(portSlot) }
                    for socket in opened { workers[socket.worker].closeSocket(slot: socket.slot) }
                }
            }
        }
        if let failure { throw failure }
        let modes = Set(opened.map { workers[$0.worker].sockets[$0.slot].mode })
        var attachment = PortAttachment(
            kind: bridge == nil ? .underlay : .afxdp, xdpMode: program.attachMode,
            bindMode: modes.count == 1 ? modes.first : .copy, queues: queueCount)
        let driverOffers = Netlink.xskTxChecksumSupported(ifindex: device.ifindex)
        attachment.txChecksumOffload = driverOffers
        attachment.txChecksum = configuration.txChecksum.choice(
            driverOffers: driverOffers, bindMode: attachment.bindMode ?? .copy,
            umemHasTxMetadata: workers.allSatisfy { $0.umem.hasTxMetadata })
        if let bridge, let bridgeName { s.bridges[bridgeName] = bridge }
        s.ports[name] = PortRecord(
            name: name, slot: portSlot, bridge: bridgeName ?? "", attachment: attachment,
            program: program, tap: nil, sockets: opened, ifindex: device.ifindex)
        // A DEVMAP slot for every device, underlay too: a LISP port's cached encapsulation
        // redirects its outer frames to the device its route leaves by.
        flowCacheInstaller?.setDevicePort(portSlot, ifindex: device.ifindex)
        if let bridgeName { refreshFlowCacheLocked(s, bridge: bridgeName) }
        return attachment
    }

    /// Adds a LISP tunnel port to `bridge`. It has no device: output to it encapsulates (see
    /// Worker+Tunnel.swift) and LISP packets for a local RLOC that match it enter the bridge on it.
    @discardableResult
    public func addTunnelPort(_ name: String, bridge bridgeName: String, options: LISPPortOptions) throws(DatapathError) -> PortAttachment {
        let attachment = try locked { (s: inout State) throws(DatapathError) -> PortAttachment in
            guard var bridge = s.bridges[bridgeName] else { throw .noSuchBridge(bridgeName) }
            guard s.ports[name] == nil, s.bridges[name] == nil else { throw .portExists(name) }
            guard let portSlot = freePortSlot(s) else { throw .tooManyPorts(DatapathLimits.maxPorts) }
            if s.resolver == nil { startResolverLocked(&s) }
            let state = TunnelPortState(options)
            let routing = s.tunnelRouting
            let requestFD = s.resolver?.requestFD ?? -1
            withWorkersParked {
                bridge.members.append(portSlot)
                for worker in workers {
                    worker.tunnelResolverFD = requestFD
                    worker.setTunnelPort(portSlot, bridge: bridge.slot, state: state)
                    worker.setTunnelRouting(localRLOCs: routing.localRLOCs, nextHops: routing.nextHops,
                                             endpoints: routing.registeredEndpoints)
                    worker.setPortNumber(portSlot, ofport: bridge.portNumbers[name] ?? .unassigned)
                    worker.setBridge(bridge.slot, table: bridge.macTable, members: bridge.members)
                }
            }
            s.bridges[bridgeName] = bridge
            let attachment = PortAttachment(kind: .lisp, queues: 0)
            s.ports[name] = PortRecord(
                name: name, slot: portSlot, bridge: bridgeName, attachment: attachment,
                program: nil, tap: nil, sockets: [], tunnel: options)
            syncDecapLocked(s)
            refreshFlowCacheLocked(s, bridge: bridgeName)
            syncUnderlayFiltersLocked(s)
            s.resolver?.wake()
            return attachment
        }
        return attachment
    }

    public func deletePort(_ name: String) throws(DatapathError) {
        try locked { (s: inout State) throws(DatapathError) in
            guard let port = s.ports[name] else { throw .noSuchPort(name) }
            guard port.attachment.kind != .internal else {
                throw .unsupported("\"\(name)\" is the internal port of bridge \"\(port.bridge)\": delete the bridge instead")
            }
            removePortLocked(&s, port)
        }
    }

    private func removePortLocked(_ s: inout State, _ port: PortRecord) {
        if let program = port.program {
            for socket in port.sockets { program.clearSocket(queue: socket.queue) }
        }
        // The port's slot may be reused by the next port: recompile the bridge's flow table so no
        // output action can reach a port that is not the one the rule named.
        if var bridge = s.bridges[port.bridge], bridge.flowTable != nil {
            bridge.portNumbers[port.name] = nil
            if let old = bridge.flowTable {
                let table = CompiledFlowTable(old, removingPortSlot: port.slot)
                withWorkersParked { for worker in workers { worker.setFlowTable(bridge.slot, table) } }
                bridge.flowTable = table
            }
            s.bridges[port.bridge] = bridge
        }
        withWorkersParked {
            if var bridge = s.bridges[port.bridge] {
                bridge.members.removeAll { $0 == port.slot }
                s.bridges[port.bridge] = bridge
                bridge.macTable.forget(port: port.slot)
                for worker in workers { worker.setBridge(bridge.slot, table: bridge.macTable, members: bridge.members) }
            }
            for worker in workers {
                if port.tunnel != nil { worker.clearTunnelPort(port.slot) }
                worker.clearPort(port.slot)
            }
            for socket in port.sockets { workers[socket.worker].closeSocket(slot: socket.slot) }
        }
        s.ports[port.name] = nil
        // Its decap entries (a LISP port, or the underlay device they were heard on) go first.
        if port.tunnel != nil || port.attachment.kind == .underlay { syncDecapLocked(s) }
        // Entries naming the port leave the XDP maps before its DEVMAP slot and program go; a
        // device may be any bridge's LISP egress (XDPFlowCacheLISPEgress).
        if port.attachment.kind == .afxdp || port.attachment.kind == .underlay {
            for name in s.bridges.keys { refreshFlowCacheLocked(s, bridge: name) }
            flowCacheInstaller?.clearDevicePort(port.slot)
        } else {
            refreshFlowCacheLocked(s, bridge: port.bridge)
        }
        port.program?.detach()
        port.tap?.closeAll()
        if port.tunnel != nil {
            syncUnderlayFiltersLocked(s)
            s.resolver?.wake()
        }
    }

    /// The host addresses LISP ports currently accept as local RLOCs (as last published).
    public var tunnelLocalAddresses: [IPAddress] {
        state.withLock { s in s.tunnelRouting.localRLOCs }
    }

    public func attachment(of port: String) -> PortAttachment? {
        state.withLock { s in
            guard let record = s.ports[port] else { return nil }
            var attachment = record.attachment
            if let program = record.program, !program.device.exists { attachment.deviceGone = true }
            if let options = record.tunnel {
                attachment.tunnelState = tunnelStateLocked(s, options)
            }
            return attachment
        }
    }

    /// Counters of one port summed over workers, with its sockets' kernel statistics.
    public func statistics(port name: String) -> PortStatistics? {
        state.withLock { s -> PortStatistics? in
            guard let port = s.ports[name] else { return nil }
            var total = PortStatistics()
            for worker in workers {
                let c = worker.portCounters(port.slot)
                total.rxPackets += c.rxPackets
                total.rxBytes += c.rxBytes
                total.rxDropped += c.rxDropped
                total.rxErrors += c.rxErrors
                total.txPackets += c.txPackets
                total.txBytes += c.txBytes
                total.txDropped += c.txDropped
                total.txErrors += c.txErrors
            }
            if let kernel = flowCacheInstaller?.counters.ports[port.slot.index] {
                // Frames the XDP flow cache forwarded without a worker.
                total.rxPackets += kernel.rxPackets
                total.rxBytes += kernel.rxBytes
                total.rxDropped += kernel.rxDropped
                total.txPackets += kernel.txPackets
                total.txBytes += kernel.txBytes
            }
            if port.attachment.kind == .afxdp {
                var xsk = XSKStatistics()
                for socket in port.sockets { xsk = xsk + workers[socket.worker].sockets[socket.slot].statistics() }
                total.xsk = xsk
                // Frames the XDP program dropped for want of a socket are drops on this port too.
                if let program = port.program { total.rxDropped += program.counters().dropped }
                total.rxDropped += xsk.rxDropped + xsk.rxRingFull
            }
            if port.tunnel != nil {
                var tunnel = workers.reduce(TunnelStatistics()) { $0 + $1.tunnelStatistics(port.slot) }
                // Packets the XDP flow cache encapsulated without a worker.
                tunnel.encapsulated += flowCacheInstaller?.counters.encapsulated[port.slot.index] ?? 0
                tunnel.decapsulated += flowCacheInstaller?.counters.decapsulated[port.slot.index] ?? 0
                total.tunnel = tunnel
                // Received packets the port refused, and packets it could not send.
                total.rxDropped += tunnel.droppedBadHeader + tunnel.droppedUnknownRLOC + tunnel.droppedIIDMismatch
                    + tunnel.droppedBadInnerLength + tunnel.droppedEncrypted + tunnel.droppedCENotECT + tunnel.droppedTTLExpired
                total.txDropped += tunnel.droppedNonIP + tunnel.droppedNoRoute + tunnel.droppedNoNeighbour + tunnel.droppedTooBig
                    + tunnel.droppedMapMiss + tunnel.droppedMapDrop + tunnel.droppedMapNative
            }
            return total
        }
    }

    /// The frame census of every worker, taken with the workers parked (so in-flight is 0).
    public func frameAccounting() -> [FrameAccounting] {
        state.withLock { s in
            var result: [FrameAccounting] = []
            withWorkersParked {
                // Let completions land so the census also shows frames coming home.
                for worker in workers {
                    for i in 0..<worker.activeCount { worker.reclaimCompletions(slot: Int(worker.activeSlots[i])) }
                    result.append(worker.accounting())
                }
            }
            return result
        }
    }

    /// Stops the workers, closes every socket, detaches every program, removes every tap.
    public func shutdown() {
        // The resolver takes the lock to read its inputs: stop it first.
        state.withLock { s in s.isShuttingDown = true }
        let resolver = state.withLock { s in s.resolver }
        resolver?.stop()
        flowCacheInstaller?.stop()
        flowCacheInstaller?.removeEverything()
        state.withLock { s in
            guard !s.isShutDown else { return }
            s.isShutDown = true
            for worker in workers { worker.stop() }
            for port in s.ports.values {
                port.program?.detach()
                port.tap?.closeAll()
                for socket in port.sockets { workers[socket.worker].closeSocket(slot: socket.slot) }
            }
            for bridge in s.bridges.values { bridge.macTable.destroy() }
            s.ports = [:]
            s.bridges = [:]
        }
    }

    // MARK: Flow tables (implementation)

    func installPortNumbers(bridge: String, _ numbers: [String: OpenFlowPortNumber]) throws(DatapathError) {
        try locked { (s: inout State) throws(DatapathError) in
            guard var record = s.bridges[bridge] else { throw .noSuchBridge(bridge) }
            record.portNumbers = numbers
            s.bridges[bridge] = record
            let slots = numbers.compactMap { name, ofport in s.ports[name].map { ($0.slot, ofport) } }
            withWorkersParked {
                for worker in workers {
                    for (slot, ofport) in slots { worker.setPortNumber(slot, ofport: ofport) }
                }
            }
            refreshFlowCacheLocked(s, bridge: bridge)
        }
    }

    func installFlowTable(
        bridge: String, count: Int, rule: (Int) -> DatapathRule, match: (Int) -> Match
    ) throws(DatapathError) {
        // Compile outside the lock's critical section for the workers: they keep forwarding with
        // the old table until the swap.
        let (slot, slotOfPort) = try locked { (s: inout State) throws(DatapathError) -> (BridgeSlot, [OpenFlowPortNumber: PortSlot]) in
            guard let record = s.bridges[bridge] else { throw .noSuchBridge(bridge) }
            var map: [OpenFlowPortNumber: PortSlot] = [:]
            for (name, ofport) in record.portNumbers {
                if let port = s.ports[name], port.bridge == bridge { map[ofport] = port.slot }
            }
            return (record.slot, map)
        }
        // With the XDP cache, the exact-match cache keys on the megaflow shape (CompiledFlowTable.xdpFlowCache).
        let table = try CompiledFlowTable(count: count, rule: rule, match: match, portSlot: { slotOfPort[$0] },
                                          xdpFlowCache: flowCacheInstaller != nil)
        try locked { (s: inout State) throws(DatapathError) in
            guard var record = s.bridges[bridge], record.slot == slot else { throw .noSuchBridge(bridge) }
            // Workers adopt the new version at a burst boundary; after the handshake none can still
            // be reading the old one, which is released when `record.flowTable` is overwritten.
            withWorkersParked {
                for worker in workers { worker.setFlowTable(slot, table) }
            }
            record.flowTable = table
            s.bridges[bridge] = record
            refreshFlowCacheLocked(s, bridge: bridge)
        }
    }

    /// Adds `rules` to the bridge's published table (see `CompiledFlowTable(_:adding:portSlot:)`);
    /// false, changing nothing, when the table does not hold `expectedCount - rules.count` rules.
    func extendFlowTable(bridge: String, adding rules: [DatapathRule], expectedCount: Int) throws(DatapathError) -> Bool {
        let (slot, slotOfPort, old) = try locked { (s: inout State) throws(DatapathError) -> (BridgeSlot, [OpenFlowPortNumber: PortSlot], CompiledFlowTable?) in
            guard let record = s.bridges[bridge] else { throw .noSuchBridge(bridge) }
            var map: [OpenFlowPortNumber: PortSlot] = [:]
            for (name, ofport) in record.portNumbers {
                if let port = s.ports[name], port.bridge == bridge { map[ofport] = port.slot }
            }
            return (record.slot, map, record.flowTable)
        }
        guard let old, old.liveRules + rules.count == expectedCount else { return false }
        let table = try CompiledFlowTable(old, adding: rules, portSlot: { slotOfPort[$0] })
        return try locked { (s: inout State) throws(DatapathError) -> Bool in
            // Another change in between (a port went): the caller publishes the whole table instead.
            guard var record = s.bridges[bridge], record.slot == slot, record.flowTable === old else { return false }
            withWorkersParked {
                for worker in workers { worker.setFlowTable(slot, table) }
            }
            record.flowTable = table
            s.bridges[bridge] = record
            refreshFlowCacheLocked(s, bridge: bridge)
            return true
        }
    }

    /// Removes the rules with `matches` and `counterSlots` from the bridge's published table in
    /// place (see `CompiledFlowTable(_:removing:counterSlots:)`); false, changing nothing, when
    /// that cannot be done or the table does not hold `expectedCount + matches.count` rules.
    func shrinkFlowTable(bridge: String, removing matches: [Match], counterSlots: Set<Int>, expectedCount: Int) -> Bool {
        guard let current = try? locked({ (s: inout State) throws(DatapathError) -> (slot: BridgeSlot, table: CompiledFlowTable?) in
            guard let record = s.bridges[bridge] else { throw .noSuchBridge(bridge) }
            return (record.slot, record.flowTable)
        }), let old = current.table, old.liveRules - matches.count == expectedCount,
            // Unreachable rules pile up: past a quarter of the table, compile it afresh.
            (old.ruleCount - old.liveRules + matches.count) * 4 <= old.ruleCount,
            let table = CompiledFlowTable(old, removing: matches, counterSlots: counterSlots)
        else { return false }
        return (try? locked { (s: inout State) throws(DatapathError) -> Bool in
            guard var record = s.bridges[bridge], record.slot == current.slot, record.flowTable === old else { return false }
            withWorkersParked {
                for worker in workers { worker.setFlowTable(current.slot, table) }
            }
            record.flowTable = table
            s.bridges[bridge] = record
            refreshFlowCacheLocked(s, bridge: bridge)
            return true
        }) ?? false
    }

    func readRuleStatistics(_ slot: Int) -> RuleStatistics {
        guard slot >= 0 && slot < DatapathLimits.maxRules else { return RuleStatistics() }
        var total = RuleStatistics()
        for worker in workers {
            let c = worker.ruleCounters(slot)
            total.packets += c.packets
            total.bytes += c.bytes
            total.lastUsed = max(total.lastUsed, c.lastUsed)
        }
        if let kernel = flowCacheInstaller?.counters.rules[slot] {
            // Packets the XDP flow cache forwarded for the rule without a worker.
            total.packets += kernel.packets
            total.bytes += kernel.bytes
            total.lastUsed = max(total.lastUsed, kernel.lastUsed)
        }
        return total
    }

    /// No handshake needed: a slot is only reset before it is given to a new rule, i.e. while no
    /// published table uses it, so no worker writes it (the handshake that retired its previous
    /// rule already happened).
    func clearRuleStatistics(_ slot: Int) {
        guard slot >= 0 && slot < DatapathLimits.maxRules else { return }
        for worker in workers { worker.clearRuleCounters(slot) }
        flowCacheInstaller?.counters.clearRule(slot)
    }

    // MARK: Helpers

    /// Runs `body` with the state locked, unless the datapath is shut down (or shutting down).
    /// The result is `sending`, as `Mutex.withLock` requires: it must not alias the locked state.
    private func locked<T>(_ body: (inout State) throws(DatapathError) -> sending T) throws(DatapathError) -> sending T {
        try state.withLock { (s: inout State) throws(DatapathError) -> sending T in
            guard !s.isShutDown, !s.isShuttingDown else { throw .unsupported("the datapath is shut down") }
            return try body(&s)
        }
    }

    /// For a flow trace (DatapathTrace.swift): `body` runs under the lock (so the published flow
    /// tables it traces through stay alive) with worker 0, the slot of `port` (which must be in
    /// `bridge`) and the names of every port and bridge.
    func withTraceSource<T: Sendable>(
        bridge: String, port: String, _ body: (Worker, PortSlot, TraceNames) throws(DatapathError) -> T
    ) throws(DatapathError) -> T {
        try locked { (s: inout State) throws(DatapathError) -> T in
            guard s.bridges[bridge] != nil else { throw .noSuchBridge(bridge) }
            guard let record = s.ports[port], record.bridge == bridge else { throw .noSuchPort(port) }
            let names = TraceNames(
                ports: Dictionary(uniqueKeysWithValues: s.ports.values.map { ($0.slot.rawValue, $0.name) }),
                bridges: Dictionary(uniqueKeysWithValues: s.bridges.values.map { ($0.slot.rawValue, $0.name) }))
            return try body(workers[0], record.slot, names)
        }
    }

    /// For port capture (Datapath+Capture.swift): runs `body` under the lock with port `name`'s
    /// slot (nil: no such port) and the workers, parked if `parking`.
    func withCapturePort(_ name: String, parking: Bool, _ body: (PortSlot?, [Worker]) -> Void) {
        state.withLock { s in
            let slot = s.ports[name]?.slot
            if parking { withWorkersParked { body(slot, workers) } } else { body(slot, workers) }
        }
    }

    /// For the map-cache (Datapath+MapCache.swift): runs `body` under the lock with the workers
    /// parked, then wakes the tunnel resolver (the RLOCs to resolve may have changed); false,
    /// running nothing, when the datapath is shut down.
    func withWorkersParkedForMapCache(_ body: ([Worker]) -> Void) -> Bool {
        state.withLock { s in
            guard !s.isShutDown, !s.isShuttingDown else { return false }
            withWorkersParked { body(workers) }
            s.resolver?.wake()
            return true
        }
    }

    /// Wakes the tunnel resolver: something it resolves changed (Datapath+MapCache.swift).
    func wakeTunnelResolver() {
        state.withLock { s in s.resolver?.wake() }
    }

    /// The workers, for draining their map-cache miss queues (no lock: the rings are theirs).
    var workersForMapCache: [Worker] { workers }

    private func withWorkersParked(_ body: () -> Void) {
        for worker in workers { worker.park() }
        body()
        for worker in workers { worker.unpark() }
    }

    // MARK: Tunnels (implementation)

    private func startResolverLocked(_ s: inout State) {
        let resolver = TunnelResolver(
            inputs: { [weak self] in self?.tunnelInputs() },
            publish: { [weak self] routing in self?.publishTunnelRouting(routing) })
        s.resolver = resolver
        resolver.start()
    }

    /// The resolver's view of the configuration (resolver thread).
    private func tunnelInputs() -> TunnelResolver.Inputs? {
        state.withLock { s -> TunnelResolver.Inputs? in
            guard !s.isShutDown, !s.isShuttingDown else { return nil }
            var inputs = TunnelResolver.Inputs()
            for port in s.ports.values {
                if let options = port.tunnel, case .address(let remote) = options.remote {
                    inputs.targets.insert(TunnelTarget(
                        remote: remote, local: options.local ?? IPAddress(), udpPort: options.udpPort))
                }
                if let options = port.tunnel, options.remote == .map {
                    // The published map-cache's RLOCs (bounded): their routes are where packets to
                    // them go (and underlay endpoints); our registered RLOCs are endpoints too.
                    inputs.registeredRLOCs = mapCachePublication.registeredRLOCs
                    for remote in mapCachePublication.rlocsToResolve {
                        inputs.targets.insert(TunnelTarget(
                            remote: remote, local: options.local ?? IPAddress(), udpPort: options.udpPort))
                    }
                }
                guard port.ifindex != 0 else { continue }
                switch port.attachment.kind {
                case .internal:
                    if let bridge = s.bridges[port.bridge] {
                        inputs.egress[port.ifindex] = .init(port: port.slot, bridge: bridge.slot, name: port.name,
                                                            checksumOffload: false)
                    }
                case .afxdp, .underlay:
                    let checksum = port.attachment.txChecksum ?? .software
                    inputs.egress[port.ifindex] = .init(port: port.slot, bridge: .unbridged, name: port.name,
                                                        checksumOffload: checksum != .software)
                case .lisp:
                    break
                }
            }
            inputs.requests = workers.map(\.tunnelRequests)
            return inputs
        }
    }

    /// Installs a new underlay view in every worker (resolver thread).
    private func publishTunnelRouting(_ routing: TunnelResolver.Published) {
        state.withLock { s in
            guard !s.isShutDown else { return }
            s.tunnelRouting = routing
            withWorkersParked {
                for worker in workers {
                    worker.setTunnelRouting(localRLOCs: routing.localRLOCs, nextHops: routing.nextHops,
                                             endpoints: routing.registeredEndpoints)
                }
            }
            syncUnderlayFiltersLocked(s)
            syncDecapLocked(s)
            for name in s.bridges.keys { refreshFlowCacheLocked(s, bridge: name) }
        }
    }

    /// Points every underlay device's XDP filter at the local RLOCs and the LISP ports' UDP ports.
    private func syncUnderlayFiltersLocked(_ s: State) {
        let udpPorts = Set(s.ports.values.compactMap { $0.tunnel?.udpPort })
        var wanted: Set<XDPRedirectProgram.UnderlayKey> = []
        for address in s.tunnelRouting.localRLOCs {
            for udpPort in udpPorts { wanted.insert(.init(address: address, port: udpPort)) }
        }
        for port in s.ports.values where port.attachment.kind == .underlay {
            port.program?.setUnderlayFilter(wanted)
        }
    }

    private func tunnelStateLocked(_ s: State, _ options: LISPPortOptions) -> TunnelState {
        if options.remote == .map, case .id(let instanceID) = options.key {
            return .remoteFromMap(
                instanceID: instanceID, entries: mapCachePublication.entryCount,
                resolvedNextHops: s.tunnelRouting.nextHops.filter { $0.status == .resolved }.count)
        }
        guard case .address(let remote) = options.remote else {
            return .remoteFromFlow(resolvedNextHops: s.tunnelRouting.nextHops.filter { $0.status == .resolved }.count)
        }
        let target = TunnelTarget(remote: remote, local: options.local ?? IPAddress(), udpPort: options.udpPort)
        return .remote(remote, s.resolver?.route(target))
    }

    /// The XDP flow cache's state for reports (`Datapath+XDPFlowCacheReport.swift`): every
    /// installed entry with its bridge's name, and each bridge device port's program outcomes.
    /// Empty with the cache off.
    func flowCacheState() -> (entries: [(bridge: String, entry: XDPFlowCacheInstaller.EntrySnapshot)],
                              ports: [(name: String, bridge: String, slot: PortSlot, statistics: XDPFlowCacheProgram.Statistics)]) {
        guard let flowCacheInstaller else { return ([], []) }
        let (names, ports) = state.withLock { s in
            (Dictionary(uniqueKeysWithValues: s.bridges.values.map { ($0.slot.rawValue, $0.name) }),
             // Underlay devices too: their programs decapsulate LISP in XDP (hits, misses and
             // punts of the decap stage; the host's own traffic is not counted there).
             s.ports.values.filter { $0.attachment.kind == .afxdp || $0.attachment.kind == .underlay }
                .map { ($0.name, $0.bridge, $0.slot, $0.program?.flowCacheStatistics() ?? .init()) })
        }
        let entries = flowCacheInstaller.snapshot().map { (bridge: names[$0.bridge] ?? "", entry: $0) }
        return (entries, ports.map { (name: $0.0, bridge: $0.1, slot: $0.2, statistics: $0.3) })
    }

    /// Tells the XDP flow cache's installer the bridge's current table and ports (after the
    /// table is published to the workers): it removes what they made stale before returning.
    private func refreshFlowCacheLocked(_ s: State, bridge name: String) {
        guard let flowCacheInstaller, let record = s.bridges[name] else { return }
        var ports: [UInt32: XDPCachePortInfo] = [:]
        var ofport: [PortSlot: UInt32] = [:]
        // Devices with a DEVMAP slot (attachDeviceLocked): where XDP can send an encapsulated frame.
        // (One that cannot receive redirects now — a veth whose peer runs no NAPI — is taken out
        // by the installer, which knows and follows each device's capability.)
        let redirectTargets = Set(s.ports.values.filter { $0.attachment.kind == .afxdp || $0.attachment.kind == .underlay }.map(\.slot))
        for (portName, number) in record.portNumbers {
            guard let port = s.ports[portName], port.bridge == name else { continue }
            switch port.attachment.kind {
            case .afxdp: ports[number.rawValue] = XDPCachePortInfo(cache: CachePort(kind: .device), slot: port.slot)
            case .internal: ports[number.rawValue] = XDPCachePortInfo(cache: CachePort(kind: .internal), slot: port.slot)
            case .underlay: continue
            case .lisp:
                // The template from the resolver's published next hop, or no direct egress.
                guard let options = port.tunnel else { continue }
                ports[number.rawValue] = XDPFlowCacheLISPEgress.portInfo(
                    slot: port.slot, options: options, nextHops: s.tunnelRouting.nextHops, redirectTargets: redirectTargets)
            }
            ofport[port.slot] = number.rawValue
        }
        flowCacheInstaller.refresh(bridge: record.slot.rawValue, table: record.flowTable, ports: ports, ofport: ofport)
    }

    /// Tells the XDP flow cache's installer the LISP ports it may decapsulate for (in the
    /// workers' order), from the published next hops and the underlay devices: it makes the decap
    /// entries match before returning (XDPFlowCacheInstaller+Decap.swift).
    private func syncDecapLocked(_ s: State) {
        guard let flowCacheInstaller, let worker = workers.first else { return }
        let tunnels = Dictionary(uniqueKeysWithValues: s.ports.values.compactMap { p in p.tunnel.map { (p.slot, $0) } })
        // The control thread writes the workers' port order, under this lock: it reads it here.
        let ordered = (0..<worker.tunnelPortCount).compactMap { i in
            tunnels[worker.tunnelPorts[i]].map { (slot: worker.tunnelPorts[i], options: $0) }
        }
        let underlays = Dictionary(uniqueKeysWithValues: s.ports.values.filter { $0.attachment.kind == .underlay }.map { ($0.slot, $0.ifindex) })
        flowCacheInstaller.setDecapPorts(XDPFlowCacheLISPIngress.ports(
            ordered: ordered, nextHops: s.tunnelRouting.nextHops, underlays: underlays))
    }

    private func freePortSlot(_ s: State) -> PortSlot? {
        let used = Set(s.ports.values.map(\.slot))
        return (0..<UInt16(DatapathLimits.maxPorts)).lazy.map { PortSlot(rawValue: $0) }.first { !used.contains($0) }
    }
}

// MARK: Flow tables (API used by the control plane)

extension Datapath {
    /// Seconds on the datapath's monotonic clock (the clock of `RuleStatistics.lastUsed`).
    public static func monotonicSeconds() -> UInt64 { Worker.monotonicSeconds() }

    /// Maps OpenFlow port numbers of `bridge` to ports, for output actions and in_port matching.
    /// Call whenever the bridge's ports or their numbers change (before installing flows that use them).
    public func setPortNumbers(bridge: String, _ numbers: [String: OpenFlowPortNumber]) throws(DatapathError) {
        try installPortNumbers(bridge: bridge, numbers)
    }

    /// Replaces the bridge's whole flow table with `rules` (built off the packet path, then
    /// swapped in between bursts: no packet sees half a table).
    public func setFlowTable(bridge: String, rules: [DatapathRule]) throws(DatapathError) {
        try installFlowTable(bridge: bridge, count: rules.count, rule: { rules[$0] }, match: { rules[$0].match })
    }

    /// `setFlowTable(bridge:rules:)` with rule i read from `rule(i)` (more than once: it must give
    /// the same rule each time), so a caller need not build an array of a million rules first.
    /// `match(i)` is rule i's match alone (the classifier reads matches several times).
    public func setFlowTable(
        bridge: String, count: Int, rule: (Int) -> DatapathRule, match: (Int) -> Match
    ) throws(DatapathError) {
        try installFlowTable(bridge: bridge, count: count, rule: rule, match: match)
    }

    /// Adds `rules` — new flows only, each with a higher sequence than every rule in the table —
    /// to the bridge's table without recompiling the rules already there. Returns false, changing
    /// nothing, when the published table does not hold `expectedCount - rules.count` rules (the
    /// caller then publishes the whole table with `setFlowTable`).
    public func addToFlowTable(bridge: String, rules: [DatapathRule], expectedCount: Int) throws(DatapathError) -> Bool {
        try extendFlowTable(bridge: bridge, adding: rules, expectedCount: expectedCount)
    }

    /// Removes a few rules — each given by its match and counter slot — from the bridge's table
    /// without recompiling the others. Returns false, changing nothing, when it cannot (the
    /// caller then publishes the whole table with `setFlowTable`). No other rule of the table may
    /// have one of these matches.
    public func removeFromFlowTable(bridge: String, matches: [Match], counterSlots: Set<Int>, expectedCount: Int) -> Bool {
        shrinkFlowTable(bridge: bridge, removing: matches, counterSlots: counterSlots, expectedCount: expectedCount)
    }

    /// Counters of the rule in `counterSlot`, summed over workers.
    public func ruleStatistics(counterSlot: Int) -> RuleStatistics {
        readRuleStatistics(counterSlot)
    }

    /// Zeroes a counter slot before it is given to a new rule.
    public func resetRuleStatistics(counterSlot: Int) {
        clearRuleStatistics(counterSlot)
    }
}
